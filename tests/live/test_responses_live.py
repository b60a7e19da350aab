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


def test_credit_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client.responses.create(model="credit-error", input="x")
    assert caught.value.status_code == 402
