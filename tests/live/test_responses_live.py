"""The Responses API through the official SDK: create, tools, parse, stream helpers, retrieve and delete."""

from __future__ import annotations

import json
from typing import List

import openai
import pydantic
import pytest

from mokku.api.tokens import tokenize

from ..spec import validate

TOOL = {
    "type": "function",
    "name": "search",
    "parameters": {
        "type": "object",
        "properties": {"q": {"type": "string"}},
        "required": ["q"],
        "additionalProperties": False,
    },
    "strict": True,
}


def test_create_text(client: openai.OpenAI) -> None:
    response = client.responses.create(model="gpt-4o", input="Hi from the SDK ✓", instructions="Be kind.")
    assert response.output_text == "Hi from the SDK ✓"
    assert response.status == "completed"
    validate(response.model_dump(mode="json", exclude_unset=True), "Response")


def test_tool_loop(client: openai.OpenAI) -> None:
    first = client.responses.create(model="gpt-4o", input="otters", tools=[TOOL])  # type: ignore[list-item]
    (call,) = first.output
    assert call.type == "function_call" and json.loads(call.arguments) == {"q": "otters"}
    second = client.responses.create(
        model="gpt-4o",
        input=[
            {"role": "user", "content": "otters"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "Otters hold hands."},
        ],
        tools=[TOOL],  # type: ignore[list-item]
    )
    assert second.output_text == "Otters hold hands."


class Recipe(pydantic.BaseModel):
    title: str
    steps: List[str]
    minutes: int


def test_parse_text_format(client: openai.OpenAI) -> None:
    parsed = client.responses.parse(model="gpt-4o", input="Pancakes", text_format=Recipe)
    assert isinstance(parsed.output_parsed, Recipe)
    assert parsed.output_parsed.title == "Pancakes"


def test_stream_helper(client: openai.OpenAI) -> None:
    kinds = []
    with client.responses.stream(model="gpt-4o", input="streamed answer") as stream:
        for event in stream:
            kinds.append(event.type)
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") == len(tokenize("streamed answer"))
    assert final.output_text == "streamed answer"


def test_retrieve_and_delete(client: openai.OpenAI) -> None:
    created = client.responses.create(model="gpt-4o", input="store me")
    fetched = client.responses.retrieve(created.id)
    assert fetched.id == created.id and fetched.output_text == "store me"
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)


def test_input_tokens_and_compaction(client: openai.OpenAI) -> None:
    from openai.types.responses.input_token_count_response import InputTokenCountResponse

    from ..sdk_types import strict

    first = client.responses.create(model="gpt-4o", input="count me", instructions="Be brief.")
    raw = client.responses.input_tokens.with_raw_response.count(
        model="gpt-4o", input="count me", instructions="Be brief."
    )
    counted = strict(InputTokenCountResponse, raw.http_response.json())
    assert counted.input_tokens == first.usage.input_tokens  # type: ignore[union-attr]
    # The SDK's output item type knows assistant messages only, while a compaction's output is the
    # user messages then the compaction item (as its docstring says): checked against the spec.
    compacted = client.responses.compact(model="gpt-4o", previous_response_id=first.id, input="and more")
    validate(compacted.model_dump(mode="json", exclude_unset=True), "CompactResource")
    assert [item.type for item in compacted.output] == ["message", "message", "compaction"]
    # The compacted items are the next turn's input.
    following = client.responses.create(
        model="gpt-4o",
        input=[item.model_dump(exclude_none=True) for item in compacted.output]
        + [{"role": "user", "content": "next"}],  # type: ignore[misc]
    )
    assert following.output_text == "next"


def test_a_failed_stream_raises_while_iterating_as_the_real_apis_does(client: openai.OpenAI) -> None:
    seen = []
    with pytest.raises(openai.APIError) as caught:
        for event in client.responses.create(
            model="gpt-4o@stream_error:4", input="one two three", stream=True
        ):
            seen.append(event.type)
    assert seen[-1] == "response.content_part.added" and len(seen) == 4
    assert "help.openai.com" in caught.value.message and caught.value.code == "server_error"


def test_credit_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client.responses.create(model="credit-error", input="x")
    assert caught.value.status_code == 402


def test_a_reasoning_models_items_go_back_on_the_next_turn(client: openai.OpenAI) -> None:
    """The reasoning item parses strictly as the SDK's; a client keeping its own context (``store``
    false) hands it back with the next input, streamed or not."""
    from openai.types.responses import ResponseReasoningItem

    from ..sdk_types import strict

    raw = client.responses.with_raw_response.create(model="o4-mini", input="reason", store=False)
    validate(raw.http_response.json(), "Response")
    reasoning = strict(ResponseReasoningItem, raw.http_response.json()["output"][0])
    first = raw.parse()
    assert (
        reasoning.encrypted_content and first.output[0].type == "reasoning" and first.output_text == "reason"
    )
    with client.responses.stream(
        model="o4-mini",
        store=False,
        include=["reasoning.encrypted_content"],
        input=[
            *(item.model_dump(exclude_none=True) for item in first.output),
            {"role": "user", "content": "on"},
        ],  # type: ignore[misc]
    ) as stream:
        added = [event.item.type for event in stream if event.type == "response.output_item.added"]
        final = stream.get_final_response()
    assert added == ["reasoning", "message"] and final.output_text == "on"
