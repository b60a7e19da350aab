"""Anthropic's Messages API through the official ``anthropic`` SDK against the real servers
(``python -m mokku`` and gunicorn): plain, streamed, tools, structured output, token counting,
every fault as the SDK's own exception class."""

from __future__ import annotations

import json
from typing import Any, Iterator, List

import anthropic
import anthropic.types as types
import pydantic
import pytest

from ..sdk_types import strict
from ..servers import LiveServer

MODEL = "claude-haiku-4-5"
WEATHER = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
def claude(live_server: LiveServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=live_server.url, api_key="sk-ant-test", max_retries=0) as client:
        yield client


def test_create(claude: anthropic.Anthropic) -> None:
    raw = claude.messages.with_raw_response.create(
        model=MODEL, max_tokens=100, system="Be brief.", messages=[{"role": "user", "content": "Hello ✓"}]
    )
    message = strict(types.Message, json.loads(raw.http_response.content))
    assert message.content[0].text == "Hello ✓" and message.stop_reason == "end_turn"
    assert raw.parse()._request_id == raw.headers["request-id"]


def test_stream_helper_reassembles_the_message(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "one two three"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "one two three" == final.content[0].text
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 3
    strict(types.Message, final.model_dump(mode="json", exclude_unset=True))


def test_a_tool_loop_ends(claude: anthropic.Anthropic) -> None:
    messages: list = [{"role": "user", "content": "Oslo"}]
    for _ in range(3):
        reply = claude.messages.create(model=MODEL, max_tokens=200, tools=[WEATHER], messages=messages)  # type: ignore[list-item]
        if reply.stop_reason != "tool_use":
            break
        calls = [block for block in reply.content if block.type == "tool_use"]
        messages += [
            {"role": "assistant", "content": reply.content},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": call.id,
                        "content": f"Sunny in {call.input['city']}",
                    }  # type: ignore[index]
                    for call in calls
                ],
            },
        ]
    assert reply.content[0].text == "Sunny in Oslo" and len(messages) == 3  # type: ignore[union-attr]


def test_a_message_thread_sends_only_new_messages_and_its_tool_runner_ends(
    claude: anthropic.Anthropic,
) -> None:
    # The SDK's message threads (the message-threads beta) send each turn's new messages only, the
    # first of them answering calls of a reply the server holds; the beta tool runner runs on them.
    thread = claude.beta.messages.thread(model=MODEL, max_tokens=200, tools=[WEATHER])  # type: ignore[list-item]
    first = thread.send({"role": "user", "content": "Oslo"})
    calls = [block for block in first.content if block.type == "tool_use"]
    assert first.stop_reason == "tool_use" and calls
    results = [{"type": "tool_result", "tool_use_id": call.id, "content": "Sunny in Oslo"} for call in calls]
    second = thread.send({"role": "user", "content": results})  # type: ignore[typeddict-item]
    assert second.stop_reason == "end_turn" and second.content[0].text == "Sunny in Oslo"  # type: ignore[union-attr]

    @anthropic.beta_tool
    def get_weather(city: str) -> str:
        """Weather in a city."""
        return f"Rain in {city}"

    runner = claude.beta.messages.tool_runner(
        model=MODEL, max_tokens=200, messages=[{"role": "user", "content": "Bergen"}], tools=[get_weather]
    )
    assert runner.until_done().content[0].text == "Rain in Bergen"  # type: ignore[union-attr]


def _streamed_call_with_thinking(claude: anthropic.Anthropic) -> Any:
    with claude.messages.stream(
        model=MODEL,
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "Bergen"}],
    ) as stream:
        return stream.get_final_message()


def test_a_streamed_tool_call_and_thinking(claude: anthropic.Anthropic) -> None:
    final = _streamed_call_with_thinking(claude)
    assert [block.type for block in final.content] == ["thinking", "tool_use"]
    assert final.content[1].input == {"city": "Bergen"} and final.stop_reason == "tool_use"  # type: ignore[union-attr]


def test_the_sdk_reads_stop_details_thinking_tokens_and_the_caller(claude: anthropic.Anthropic) -> None:
    final = _streamed_call_with_thinking(claude)
    details = final.usage.output_tokens_details
    assert details is not None and 0 < details.thinking_tokens < final.usage.output_tokens
    assert final.stop_details is None and final.usage.inference_geo == "not_available"
    assert final.content[1].caller.type == "direct"  # type: ignore[union-attr]
    refused = claude.messages.create(
        model=f"{MODEL}@content_filter", max_tokens=10, messages=[{"role": "user", "content": "x"}]
    )
    assert refused.stop_reason == "refusal" and refused.stop_details is not None
    assert refused.stop_details.type == "refusal" and refused.stop_details.category is None


def test_structured_output(claude: anthropic.Anthropic) -> None:
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["title", "tags"],
        "additionalProperties": False,
    }
    reply = claude.messages.create(
        model=MODEL,
        max_tokens=300,
        messages=[{"role": "user", "content": "A note"}],
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )
    document = json.loads(reply.content[0].text)  # type: ignore[union-attr]
    assert isinstance(document["title"], str) and isinstance(document["tags"], list)


class Ticket(pydantic.BaseModel):
    code: str = pydantic.Field(min_length=5, max_length=8, pattern="^[a-z]+$")
    tags: List[str] = pydantic.Field(min_length=2, max_length=4)
    priority: int = pydantic.Field(ge=10, le=20, multiple_of=5)


def test_parse_meets_the_constraints_the_sdk_moved_into_descriptions(claude: anthropic.Anthropic) -> None:
    """Claude refuses ``minLength`` and the like, so the SDK sends them as description text, then
    validates the answer against the whole model: a document that ignored them raised."""
    reply = claude.messages.parse(
        model=MODEL, max_tokens=300, messages=[{"role": "user", "content": "A ticket"}], output_format=Ticket
    )
    ticket = reply.parsed_output
    assert ticket is not None and len(ticket.tags) >= 2 and ticket.priority in (10, 15, 20)


def test_count_tokens_and_models(claude: anthropic.Anthropic) -> None:
    counted = claude.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "count me"}])
    made = claude.messages.create(
        model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "count me"}]
    )
    assert counted.input_tokens == made.usage.input_tokens
    models = list(claude.models.list(limit=2))
    assert len(models) > 2 and models[0].type == "model"  # the SDK pages through them
    assert claude.models.retrieve(models[0].id).id == models[0].id


def test_each_generation_s_rules_reach_the_sdk(claude: anthropic.Anthropic) -> None:
    hello: list = [{"role": "user", "content": "hello"}]
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(
            model="claude-opus-4-7",
            max_tokens=2048,
            thinking={"type": "enabled", "budget_tokens": 1024},
            messages=hello,
        )
    assert caught.value.body["error"]["message"].startswith('"thinking.type.enabled" is not supported')  # type: ignore[index]
    reply = claude.messages.create(
        model="claude-sonnet-5-5", max_tokens=100, thinking={"type": "between_tools"}, messages=hello
    )
    assert reply.content[0].text == "hello"  # type: ignore[union-attr]
    retiring = claude.models.retrieve("claude-sonnet-4-5")
    assert retiring.lifecycle == "deprecated" and retiring.retires_at is not None
    assert claude.models.retrieve("claude-opus-5-5").max_input_tokens == 1_000_000


@pytest.mark.parametrize(
    "fault, exception",
    [
        ("overloaded", anthropic.OverloadedError),
        ("rate_limit", anthropic.RateLimitError),
        ("invalid_api_key", anthropic.AuthenticationError),
        ("permission", anthropic.PermissionDeniedError),
        ("server_error", anthropic.InternalServerError),
        ("credit", anthropic.BadRequestError),
    ],
)
def test_faults_raise_the_sdk_exceptions(claude: anthropic.Anthropic, fault: str, exception: type) -> None:
    with pytest.raises(exception) as caught:
        claude.messages.create(
            model=f"{MODEL}@{fault}", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.request_id and caught.value.body["type"] == "error"  # type: ignore[attr-defined, index]


def test_validation_errors(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(model=MODEL, max_tokens=10, messages=[])
    assert caught.value.body["error"]["message"] == "messages: at least one message is required"  # type: ignore[index]


def test_the_sdks_version_takes_no_sampling_parameters(live_server: LiveServer) -> None:
    # The SDK sends anthropic-version 2026-10-21, which refuses temperature (the SDK's create() no
    # longer names it: a client passes it on in extra_body); 2023-06-01 takes it.
    hello: list = [{"role": "user", "content": "hello"}]
    sampling = {"temperature": 0.2}
    with anthropic.Anthropic(base_url=live_server.url, api_key="sk-ant-test", max_retries=0) as latest:
        with pytest.raises(anthropic.BadRequestError) as caught:
            latest.messages.create(model=MODEL, max_tokens=10, messages=hello, extra_body=sampling)
    assert caught.value.body["error"]["message"] == "temperature: Extra inputs are not permitted"  # type: ignore[index]
    with anthropic.Anthropic(
        base_url=live_server.url,
        api_key="sk-ant-test",
        max_retries=0,
        default_headers={"anthropic-version": "2023-06-01"},
    ) as older:
        reply = older.messages.create(model=MODEL, max_tokens=10, messages=hello, extra_body=sampling)
    assert reply.content[0].text == "hello"  # type: ignore[union-attr]


def test_a_broken_stream_raises(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.APIStatusError) as caught:
        with claude.messages.stream(
            model=f"{MODEL}@stream_error:3",
            max_tokens=100,
            messages=[{"role": "user", "content": "one two three four"}],
        ) as stream:
            for _ in stream:
                pass
    assert "api_error" in str(caught.value)
