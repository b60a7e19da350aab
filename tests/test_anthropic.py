"""Anthropic's Messages API in-process: every answer parsed strictly as the ``anthropic`` SDK's own
types, errors in Anthropic's envelope with its statuses and wording, the stream's event order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import anthropic.types as types
import jsonschema
import pytest
import webtest

from mokku import config
from mokku.server.app import App

from .sdk_types import strict

URL = "/v1/messages"
HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "sk-ant-test"}
WEATHER = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def body(text: str = "Hello, Claude", **extra: Any) -> Dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def create(app: webtest.TestApp, **payload: Any) -> Any:
    answer = app.post_json(URL, payload, headers=HEADERS)
    assert answer.headers["request-id"].startswith("req_")
    return strict(types.Message, answer.json)


def error(app: webtest.TestApp, payload: Any, status: int, headers: Any = None) -> Dict[str, Any]:
    answer = app.post_json(URL, payload, headers=headers or HEADERS, status=status)
    envelope = answer.json
    assert envelope["type"] == "error" and envelope["request_id"] == answer.headers["request-id"]
    assert set(envelope) == {"type", "error", "request_id"} and set(envelope["error"]) == {"type", "message"}
    return envelope["error"]


def events(app: webtest.TestApp, **payload: Any) -> List[Dict[str, Any]]:
    raw = app.post_json(URL, dict(payload, stream=True), headers=HEADERS).body
    out = []
    for frame in raw.split(b"\n\n")[:-1]:
        kind, data = frame.split(b"\n")
        event = json.loads(data[len(b"data: ") :])
        assert kind == b"event: " + event["type"].encode()
        if event["type"] not in ("ping", "error"):
            strict(types.RawMessageStreamEvent, event)
        out.append(event)
    return out


def test_a_message_echoes_the_last_user_turn(app: webtest.TestApp) -> None:
    turns = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "text", "text": "part"}]},
    ]
    message = create(app, **body(system=[{"type": "text", "text": "Be brief."}], messages=turns))
    assert message.id.startswith("msg_") and message.role == "assistant"
    assert message.model == "claude-sonnet-4-5-20250929"  # the alias answers as its dated model
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "second\npart"
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.output_tokens == 3 and message.usage.input_tokens > 0


def test_fields_the_node_sdk_types_as_always_there_are_sent(app: webtest.TestApp) -> None:
    """Required though nullable in ``@anthropic-ai/sdk``: sent, in the message and in its stream. Not a
    text block's ``citations``: the AI SDK refuses a null there, as the real API never sends one."""
    answer = app.post_json(URL, body("hi", model="claude-opus-4-6"), headers=HEADERS).json
    assert answer["model"] == "claude-opus-4-6"  # no dated id to name
    assert answer["container"] is None and "citations" not in answer["content"][0]
    assert answer["usage"]["server_tool_use"] is None and answer["usage"]["speed"] == "standard"
    raw = app.post_json(URL, body("hi", stream=True), headers=HEADERS).text
    events = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: ")]
    start, block, delta = events[0], events[1], events[-2]
    assert start["message"]["container"] is None and start["message"]["model"] == "claude-sonnet-4-5-20250929"
    assert block["content_block"] == {"type": "text", "text": ""}
    assert delta["type"] == "message_delta" and delta["usage"]["server_tool_use"] is None


def test_count_tokens_matches_the_usage(app: webtest.TestApp) -> None:
    payload = body("count these words", system="You count.")
    counted = app.post_json(
        URL + "/count_tokens", {k: v for k, v in payload.items() if k != "max_tokens"}, headers=HEADERS
    )
    strict(types.MessageTokensCount, counted.json)
    assert counted.json["input_tokens"] == create(app, **payload).usage.input_tokens


def test_stop_sequences_max_tokens_and_refusal(app: webtest.TestApp) -> None:
    stopped = create(app, **body("one two STOP three", stop_sequences=["STOP"]))
    assert stopped.content[0].text == "one two " and stopped.stop_reason == "stop_sequence"
    assert stopped.stop_sequence == "STOP"
    cut = create(app, **body("one two three four", max_tokens=2))
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 2
    refused = create(app, **body("anything", model="claude@content_filter"))
    assert refused.stop_reason == "refusal" and refused.model == "claude"


def test_a_flagged_prompt_is_refused_in_a_message_not_answered_with_openais_error(
    app: webtest.TestApp,
) -> None:
    refused = create(app, **body("anything", model="claude-haiku-4-5@prompt_filter"))
    assert refused.stop_reason == "refusal" and refused.stop_details is not None
    streamed = events(app, **body("anything", model="claude-haiku-4-5@prompt_filter"))
    assert streamed[-2]["delta"]["stop_reason"] == "refusal" and streamed[-1]["type"] == "message_stop"
    answer = app.post_json(
        "/v1/chat/completions",
        {"model": "gpt-4o@prompt_filter", "messages": [{"role": "user", "content": "hi"}]},
        status=400,
    )
    assert answer.json["error"]["code"] == "invalid_prompt"  # OpenAI's routes keep OpenAI's answer


def test_after_a_handoff_the_agent_handed_to_acts_on_the_request(app: webtest.TestApp) -> None:
    """LangGraph's swarm on Claude: a ``transfer_to_<agent>`` result is no answer to echo."""
    back = {"name": "transfer_to_triage", "input_schema": {"type": "object"}}
    handoff = {"type": "tool_use", "id": "toolu_9", "name": "transfer_to_weather", "input": {}}
    turns = [
        {"role": "user", "content": "Oslo"},
        {"role": "assistant", "content": [handoff]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "Transferred"}],
        },
    ]
    acting = create(app, **body(messages=turns, tools=[back, WEATHER]))
    assert acting.stop_reason == "tool_use" and [(b.name, b.input) for b in acting.content] == [
        ("get_weather", {"city": "Oslo"})
    ]
    alone = create(app, **body(messages=turns, tools=[back]))
    assert alone.stop_reason == "end_turn" and alone.content[0].text == "Oslo"


def test_a_supervisor_handed_back_passes_on_the_answer_it_got(app: webtest.TestApp) -> None:
    """LangGraph's supervisor on Claude: ``transfer_back_to_supervisor``'s result is no answer."""
    handoff = {"name": "transfer_to_weather_expert", "input_schema": {"type": "object"}}
    back = {"type": "tool_use", "id": "toolu_2", "name": "transfer_back_to_supervisor", "input": {}}
    turns = [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": [{"type": "text", "text": "Sunny in Oslo"}, back]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_2", "content": "Transferred back"}],
        },
    ]
    answer = create(app, **body(messages=turns, tools=[handoff]))
    assert answer.stop_reason == "end_turn" and answer.content[0].text == "Sunny in Oslo"


def test_tools_are_called_and_the_loop_ends_after_a_result(app: webtest.TestApp) -> None:
    first = create(app, **body("Oslo", tools=[WEATHER]))
    assert first.stop_reason == "tool_use"
    (call,) = first.content
    assert call.type == "tool_use" and call.id.startswith("toolu_") and call.input == {"city": "Oslo"}
    turns = [
        {"role": "user", "content": "Oslo"},
        {"role": "assistant", "content": [call.model_dump()]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Sunny in Oslo"}],
        },
    ]
    final = create(app, **body(messages=turns, tools=[WEATHER]))
    assert final.stop_reason == "end_turn" and final.content[0].text == "Sunny in Oslo"
    # Text after the results in the same turn, as the docs allow, still ends the loop.
    beside = [
        *turns[:2],
        {"role": "user", "content": [*turns[2]["content"], {"type": "text", "text": "Now say it"}]},
    ]
    after_text = create(app, **body(messages=beside, tools=[WEATHER]))
    assert after_text.stop_reason == "end_turn" and after_text.content[0].text == "Sunny in Oslo"
    # So does another agent's result handed over as user text (google-adk, through LiteLLM).
    adk = [
        {"role": "user", "content": "Oslo"},
        {
            "role": "user",
            "content": "For context:\n[root] `get_weather` tool returned result: {'result': 'Sunny'}",
        },
    ]
    assert create(app, **body(messages=adk, tools=[WEATHER])).stop_reason == "end_turn"
    other = dict(WEATHER, name="final_answer")
    forced = create(app, **body(messages=turns, tools=[WEATHER, other], tool_choice={"type": "any"}))
    assert [block.name for block in forced.content] == ["final_answer"]  # a tool not called yet
    named = create(
        app, **body("x", tools=[WEATHER, other], tool_choice={"type": "tool", "name": "final_answer"})
    )
    assert named.content[0].name == "final_answer"
    none = create(app, **body("plain", tools=[WEATHER], tool_choice={"type": "none"}))
    assert none.content[0].text == "plain"
    server_only = create(app, **body("search", tools=[{"type": "web_search_20250305", "name": "web_search"}]))
    assert server_only.content[0].text == "search"


@pytest.mark.parametrize(
    "tool, called",
    [
        ({"type": "bash_20250124", "name": "bash"}, {"command": "ls"}),
        (
            {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
            {"command": "view", "path": "ls"},
        ),
        ({"type": "memory_20250818", "name": "memory"}, {"command": "view", "path": "/memories"}),
        (
            {
                "type": "computer_20250124",
                "name": "computer",
                "display_width_px": 1024,
                "display_height_px": 768,
            },
            {"action": "screenshot"},
        ),
    ],
)
def test_the_tools_a_client_runs_are_called(
    app: webtest.TestApp, tool: Dict[str, Any], called: Dict[str, Any]
) -> None:
    """bash, the text editor, memory and computer use are Anthropic's tools that the client runs:
    Claude writes their calls, as for a client's own tool (web search, which Anthropic runs, is not)."""
    first = create(app, **body("ls", tools=[tool]))
    (call,) = first.content
    assert first.stop_reason == "tool_use" and (call.name, call.input) == (tool["name"], called)
    result = {"type": "tool_result", "tool_use_id": call.id, "content": "a.txt"}
    turns = [
        {"role": "user", "content": "ls"},
        {"role": "assistant", "content": [call.model_dump()]},
        {"role": "user", "content": [result]},
    ]
    assert create(app, **body(messages=turns, tools=[tool])).content[0].text == "a.txt"


def test_max_tokens_inside_a_tool_call_stops_with_max_tokens(app: webtest.TestApp) -> None:
    whole = create(app, **body("Oslo", tools=[WEATHER]))
    assert whole.usage.output_tokens > 8
    cut = create(app, **body("Oslo", tools=[WEATHER], max_tokens=8))
    # The call was being written when the limit came: no input to show, so the fixed text instead.
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 8
    assert [(block.type, block.text) for block in cut.content] == [("text", "…")]
    streamed = events(app, **body("Oslo", tools=[WEATHER], max_tokens=8))
    assert [e["delta"]["text"] for e in streamed if e["type"] == "content_block_delta"] == ["…"]
    assert streamed[-2]["delta"]["stop_reason"] == "max_tokens"


def test_thinking_comes_first_and_is_signed(app: webtest.TestApp) -> None:
    message = create(
        app, **body("think", max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024})
    )
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].signature and message.content[0].thinking


@pytest.mark.parametrize("choice", [{"type": "any"}, {"type": "tool", "name": "get_weather"}])
def test_thinking_does_not_take_a_forced_tool(app: webtest.TestApp, choice: Dict[str, Any]) -> None:
    thinking = {"type": "enabled", "budget_tokens": 1024}
    asked = body("Oslo", max_tokens=2048, thinking=thinking, tools=[WEATHER], tool_choice=choice)
    assert error(app, asked, 400) == {
        "type": "invalid_request_error",
        "message": "Thinking may not be enabled when tool_choice forces tool use.",
    }
    asked["tool_choice"] = {"type": "auto"}
    assert [block.type for block in create(app, **asked).content] == ["thinking", "tool_use"]


def test_structured_output_follows_the_schema(app: webtest.TestApp) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    for field in (
        {"output_config": {"format": {"type": "json_schema", "schema": schema}}},
        {"output_format": {"type": "json_schema", "schema": schema}},
    ):
        document = json.loads(create(app, **body("Ada is 36", **field)).content[0].text)
        assert set(document) == {"name", "age"} and isinstance(document["age"], int)


PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
# How prompt-instructed clients ask for JSON: instructor's Mode.ANTHROPIC_JSON, pydantic-ai's PromptedOutput.
INSTRUCTOR = (
    "As a genius expert, your task is to understand the content and provide the parsed objects in json that "
    f"match the following json_schema:\n\n{json.dumps(PERSON, indent=2)}\n\nMake sure to return an instance "
    "of the JSON, not the schema itself"
)
PYDANTIC_AI = (
    "Always respond with a JSON object that's compatible with this schema:\n\n"
    f"{json.dumps(dict(PERSON, title='Person'))}\n\nDon't include any text or Markdown fencing before or after."
)


@pytest.mark.parametrize(
    "system",
    [INSTRUCTOR, PYDANTIC_AI, [{"type": "text", "text": "Be exact."}, {"type": "text", "text": INSTRUCTOR}]],
)
def test_a_schema_the_system_prompt_asks_json_of_is_answered(app: webtest.TestApp, system: Any) -> None:
    reply = create(app, **body("Ada is 36", system=system))
    document = json.loads(reply.content[0].text)
    jsonschema.validate(document, PERSON)
    streamed = events(app, **body("Ada is 36", system=system))
    deltas = [e["delta"]["text"] for e in streamed if e["type"] == "content_block_delta"]
    jsonschema.validate(json.loads("".join(deltas)), PERSON)


def test_a_prompted_schema_yields_to_tools_formats_and_plain_prompts(app: webtest.TestApp) -> None:
    called = create(app, **body("Oslo", system=INSTRUCTOR, tools=[WEATHER]))
    assert [block.type for block in called.content] == ["tool_use"]
    result = {"type": "tool_result", "tool_use_id": called.content[0].id, "content": "Ada, 36"}
    turns = [
        {"role": "user", "content": "Oslo"},
        {"role": "assistant", "content": [called.content[0].model_dump()]},
        {"role": "user", "content": [result]},
    ]
    final = create(app, **body(messages=turns, system=INSTRUCTOR, tools=[WEATHER]))  # no call: the answer
    jsonschema.validate(json.loads(final.content[0].text), PERSON)
    city = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    formatted = create(
        app,
        **body("Oslo", system=INSTRUCTOR, output_config={"format": {"type": "json_schema", "schema": city}}),
    )
    assert set(json.loads(formatted.content[0].text)) == {"city"}
    without_json = INSTRUCTOR.replace("json", "format").replace("JSON", "object")
    impossible = INSTRUCTOR.replace('"type": "integer"', '"not": {}')
    # agno's JSON mode: a map of fields that reads as a schema ($defs) but has no root type.
    field_map = (
        'Provide your output as a JSON containing the following fields: <json_field_properties>{"kind": '
        '{"enum": ["a", "b"], "type": "string"}, "$defs": {"Step": {"output": {"type": "string"}}}}'
        "</json_field_properties> Start your response with `{`."
    )
    for system in (without_json, "Answer in JSON.", impossible, field_map):
        assert create(app, **body("Ada is 36", system=system)).content[0].text == "Ada is 36"


def test_the_stream_sends_the_real_event_sequence(app: webtest.TestApp) -> None:
    sequence = events(app, **body("one two three"))
    assert [event["type"] for event in sequence] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert (
        "".join(e["delta"]["text"] for e in sequence if e["type"] == "content_block_delta") == "one two three"
    )
    assert sequence[0]["message"]["content"] == [] and sequence[0]["message"]["stop_reason"] is None
    assert sequence[-2]["delta"]["stop_reason"] == "end_turn" and sequence[-2]["usage"]["output_tokens"] == 3


def test_the_stream_carries_thinking_and_tool_input(app: webtest.TestApp) -> None:
    sequence = events(
        app,
        **body("Oslo", max_tokens=4096, tools=[WEATHER], thinking={"type": "enabled", "budget_tokens": 2048}),
    )
    deltas = [e["delta"] for e in sequence if e["type"] == "content_block_delta"]
    kinds = [d["type"] for d in deltas]
    assert kinds[0] == "thinking_delta" and "signature_delta" in kinds and kinds[-1] == "input_json_delta"
    partial = "".join(d["partial_json"] for d in deltas if d["type"] == "input_json_delta")
    assert json.loads(partial) == {"city": "Oslo"}
    starts = [e["content_block"]["type"] for e in sequence if e["type"] == "content_block_start"]
    assert starts == ["thinking", "tool_use"] and sequence[-2]["delta"]["stop_reason"] == "tool_use"


def test_a_stream_error_fault_ends_with_an_error_event(app: webtest.TestApp) -> None:
    sequence = events(app, **body("one two three four five", model="claude@stream_error:3"))
    last = sequence[-1]
    assert (
        last["type"] == "error"
        and last["error"]["type"] == "api_error"
        and last["request_id"].startswith("req_")
    )
    assert "message_stop" not in [event["type"] for event in sequence]


def test_a_malformed_event_fault_breaks_the_json_of_whichever_event_it_strikes(app: webtest.TestApp) -> None:
    kinds = [event["type"] for event in events(app, **body("one two three"))]
    count = len(kinds)
    for asked in range(count):
        raw = app.post_json(
            URL, body("one two three", model=f"claude@stream_malformed:{asked}", stream=True), headers=HEADERS
        ).body
        frames = raw.split(b"\n\n")[:-1]
        assert len(frames) == count
        # The SDKs skip a ping without parsing it: cut, it would break nothing. The next event is cut.
        index = asked + 1 if kinds[asked] == "ping" else asked
        kind, data = frames[index].split(b"\n")
        assert kind.startswith(b"event: ") and data.startswith(b"data: {")
        with pytest.raises(ValueError):
            json.loads(data[len(b"data: ") :])
        for frame in frames[:index] + frames[index + 1 :]:
            json.loads(frame.split(b"\n")[1][len(b"data: ") :])


@pytest.mark.parametrize(
    "fault, status, kind, words",
    [
        ("overloaded", 529, "overloaded_error", "Overloaded"),
        ("credit", 400, "invalid_request_error", "Your credit balance is too low"),
        ("rate_limit", 429, "rate_limit_error", "would exceed the rate limit"),
        ("invalid_api_key", 401, "authentication_error", "invalid x-api-key"),
        ("permission", 403, "permission_error", "does not have permission"),
        ("server_error", 500, "api_error", "Internal server error"),
    ],
)
def test_faults_answer_as_anthropic_does(
    app: webtest.TestApp, fault: str, status: int, kind: str, words: str
) -> None:
    for payload, headers in (
        (body(model=f"claude@{fault}"), HEADERS),
        (body(), dict(HEADERS, **{"X-Mokku-Fault": fault})),
    ):
        found = error(app, payload, status, headers)
        assert found["type"] == kind and words in found["message"]


def test_a_rate_limit_carries_retry_after(app: webtest.TestApp) -> None:
    answer = app.post_json(URL, body(model="claude@rate_limit:2000"), headers=HEADERS, status=429)
    assert answer.headers["retry-after"] == "2" and "x-ratelimit-limit-requests" not in answer.headers


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"model": "c", "messages": [{"role": "user", "content": "x"}]}, "max_tokens: Field required"),
        ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "model: Field required"),
        (
            {"model": "c", "max_tokens": "5", "messages": [{"role": "user", "content": "x"}]},
            "max_tokens: Input should be a valid integer",
        ),
        ({"model": "c", "max_tokens": 5}, "messages: Field required"),
        ({"model": "c", "max_tokens": 5, "messages": []}, "messages: at least one message is required"),
        (
            {"model": "c", "max_tokens": 5, "messages": [{"role": "robot", "content": "x"}]},
            "messages.0.role: Input should be 'user' or 'assistant'",
        ),
        (
            {"model": "c", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
            'Unexpected role "system"',
        ),
        (
            {
                "model": "c",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}],
            },
            "messages.0.content.0.text: text content blocks must be non-empty",
        ),
        (
            {
                "model": "c",
                "max_tokens": 5,
                "temperature": 1.5,
                "messages": [{"role": "user", "content": "x"}],
            },
            "temperature: Input should be less than or equal to 1",
        ),
        (
            {
                "model": "c",
                "max_tokens": 5,
                "service_tier": "gold",
                "messages": [{"role": "user", "content": "x"}],
            },
            "service_tier: Input should be 'auto' or 'standard_only'",
        ),
        (
            {
                "model": "c",
                "max_tokens": 5000,
                "thinking": {"type": "enabled", "budget_tokens": 100},
                "messages": [{"role": "user", "content": "x"}],
            },
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
        ),
        (
            {
                "model": "c",
                "max_tokens": 1024,
                "thinking": {"type": "enabled", "budget_tokens": 1024},
                "messages": [{"role": "user", "content": "x"}],
            },
            "`max_tokens` must be greater than `thinking.budget_tokens`.",
        ),
        (
            {
                "model": "c",
                "max_tokens": 5,
                "tools": [{"name": "t"}],
                "messages": [{"role": "user", "content": "x"}],
            },
            "tools.0.custom.input_schema: Field required",
        ),
        (
            {
                "model": "c",
                "max_tokens": 5,
                "tool_choice": {"type": "sometimes"},
                "messages": [{"role": "user", "content": "x"}],
            },
            "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'",
        ),
    ],
)
def test_validation_is_worded_as_anthropic_words_it(
    app: webtest.TestApp, payload: Dict[str, Any], message: str
) -> None:
    found = error(app, payload, 400)
    assert found["type"] == "invalid_request_error" and message in found["message"]


USE = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}


def _result(used: str = "toolu_1") -> Dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": used, "content": "Sunny"}


@pytest.mark.parametrize(
    "messages, message",
    [
        (
            [{"role": "user", "content": [_result()]}],
            "messages.0.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_1. "
            "Each `tool_result` block must have a corresponding `tool_use` block in the previous message.",
        ),
        (
            [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": [USE]},
                {"role": "user", "content": [{"type": "text", "text": "well?"}, _result("toolu_2")]},
            ],
            "messages.2.content.1: unexpected `tool_use_id` found in `tool_result` blocks: toolu_2.",
        ),
        (
            [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": [USE, dict(USE, id="toolu_2")]},
                {"role": "user", "content": [_result()]},
            ],
            "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_2. "
            "Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
        ),
        (
            [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": [USE]},
                {"role": "user", "content": "never mind"},
            ],
            "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_1.",
        ),
        (
            [{"role": "user", "content": []}],
            "messages.0: all messages must have non-empty content except for the optional final assistant message",
        ),
    ],
)
def test_tool_results_pair_with_the_calls_before_them(
    app: webtest.TestApp, messages: List[Any], message: str
) -> None:
    found = error(app, {"model": "c", "max_tokens": 5, "messages": messages}, 400)
    assert found["type"] == "invalid_request_error" and message in found["message"]


def test_paired_calls_and_a_final_call_are_accepted(app: webtest.TestApp) -> None:
    asked = {"role": "user", "content": "weather?"}
    called = {"role": "assistant", "content": [{"type": "text", "text": "Checking."}, USE]}
    answered = {"role": "user", "content": [_result()]}
    assert create(app, **body(messages=[asked, called, answered])).content[0].text == "Sunny"
    # A final assistant turn (a prefill) may end on a call; an empty one is allowed too.
    create(app, **body(messages=[asked, called]))
    create(app, **body(messages=[asked, {"role": "assistant", "content": []}]))


def test_a_thread_turn_may_answer_calls_it_does_not_show(app: webtest.TestApp) -> None:
    # The message-threads beta: the server holds the reply whose calls the first message answers.
    answer = [{"role": "user", "content": [_result()]}]
    continued = {"type": "continue", "previous_message_id": "msg_1"}
    assert create(app, **body(messages=answer, thread=continued)).content[0].text == "Sunny"
    error(app, body(messages=answer, thread={"type": "create"}), 400)
    later = [*answer, {"role": "assistant", "content": "ok"}, {"role": "user", "content": [_result()]}]
    error(app, body(messages=later, thread=continued), 400)  # only the first message is exempt


def test_metadata_user_id_must_be_a_string(app: webtest.TestApp) -> None:
    found = error(app, body(metadata={"user_id": 5}), 400)
    assert found["message"] == "metadata.user_id: Input should be a valid string"
    create(app, **body(metadata={"user_id": "user-1"}))


def test_malformed_json_and_unknown_paths_answer_in_the_envelope(app: webtest.TestApp) -> None:
    answer = app.post(
        URL, b"{not json", headers=dict(HEADERS, **{"Content-Type": "application/json"}), status=400
    )
    assert answer.json["type"] == "error" and answer.json["error"]["type"] == "invalid_request_error"


def test_models_answer_in_anthropic_shape_with_its_header(app: webtest.TestApp) -> None:
    page = app.get("/v1/models?limit=3", headers=HEADERS).json
    assert page["has_more"] is True and len(page["data"]) == 3
    for info in page["data"]:
        strict(types.ModelInfo, info)
    following = app.get(f"/v1/models?limit=3&after_id={page['last_id']}", headers=HEADERS).json
    assert following["data"][0]["id"] != page["data"][-1]["id"]
    back = app.get(f"/v1/models?limit=3&before_id={following['first_id']}", headers=HEADERS).json
    assert back["data"] == page["data"]
    one = app.get("/v1/models/claude-sonnet-4-5-20250929", headers=HEADERS).json
    assert strict(types.ModelInfo, one).display_name == "Claude Sonnet 4.5" and one["line"] == "sonnet"
    # An alias names the dated model it stands for.
    assert app.get("/v1/models/claude-sonnet-4-5", headers=HEADERS).json == one
    missing = app.get("/v1/models/claude-none", headers=HEADERS, status=404).json
    assert missing["error"] == {"type": "not_found_error", "message": "model: claude-none"}
    assert app.get("/v1/models").json["object"] == "list"  # without the header: OpenAI's shape


def test_api_keys_and_rate_limit_headers(tmp_path: Path) -> None:
    settings = config.load(
        {"MOKKU_API_KEY": "sk-ant-right", "MOKKU_RPM": "60", "MOKKU_STATE": str(tmp_path / "s")}
    )
    app = webtest.TestApp(App(settings))
    for sent in ({"x-api-key": "sk-ant-right"}, {"Authorization": "Bearer sk-ant-right"}):
        answer = app.post_json(URL, body(), headers=dict(sent, **{"anthropic-version": "2023-06-01"}))
        assert answer.headers["anthropic-ratelimit-requests-limit"] == "60"
        assert answer.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    wrong = app.post_json(URL, body(), headers={"x-api-key": "sk-ant-wrong"}, status=401).json
    assert wrong["error"] == {"type": "authentication_error", "message": "invalid x-api-key"}
    none = app.post_json(URL, body(), headers={"anthropic-version": "2023-06-01"}, status=401).json
    assert none["error"] == {"type": "authentication_error", "message": "x-api-key header is required"}


def test_a_scripted_reply_targets_messages(tmp_path: Path) -> None:
    settings = config.load({"MOKKU_ADMIN": "1", "MOKKU_STATE": str(tmp_path / "s")})
    app = webtest.TestApp(App(settings))
    rule = {"match": {"endpoint": "messages"}, "reply": {"content": "scripted for Claude"}}
    app.post_json("/mokku/scenarios", rule)
    assert create(app, **body("anything")).content[0].text == "scripted for Claude"
    chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": "anything"}]}
    assert app.post_json("/v1/chat/completions", chat).json["choices"][0]["message"]["content"] == "anything"


def test_turns_without_text_and_tool_schemas(app: webtest.TestApp) -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    only_image = create(app, **body(messages=[{"role": "user", "content": [image]}]))
    assert only_image.content[0].text == "…"
    beta = create(
        app, **body(messages=[{"role": "user", "content": [{"type": "container_upload", "file_id": "f"}]}])
    )
    assert beta.stop_reason == "end_turn"
    not_object = dict(WEATHER, input_schema={"type": "string"})
    found = error(app, body("x", tools=[not_object]), 400)
    assert found["message"] == "tools.0.custom.input_schema.type: Input should be 'object'"


def test_a_stop_sequence_is_the_replys_own(tmp_path: Path) -> None:
    """A scripted reply without the stop sequence ends its turn, whatever the prompt holds."""
    settings = config.load({"MOKKU_ADMIN": "1", "MOKKU_STATE": str(tmp_path / "s")})
    app = webtest.TestApp(App(settings))
    app.post_json("/mokku/scenarios", {"match": {"endpoint": "messages"}, "reply": {"content": "Scripted."}})
    message = create(app, **body("prompt with STOP in it", stop_sequences=["STOP"]))
    assert message.content[0].text == "Scripted." and message.stop_reason == "end_turn"


def test_a_stream_fault_past_the_end_strikes_at_the_end(app: webtest.TestApp) -> None:
    sequence = events(app, **body("short", model="claude@stream_error:1000"))
    assert sequence[-1]["type"] == "error" and "message_stop" not in [e["type"] for e in sequence]


def test_rate_limited_answers_carry_anthropic_headers(tmp_path: Path) -> None:
    settings = config.load({"MOKKU_RPM": "1", "MOKKU_STATE": str(tmp_path / "s")})
    app = webtest.TestApp(App(settings))
    app.post_json(URL, body(), headers=HEADERS)
    limited = app.post_json(URL, body(), headers=HEADERS, status=429)
    assert (
        limited.json["error"]["type"] == "rate_limit_error"
        and "of 1 requests per minute" in limited.json["error"]["message"]
    )
    assert limited.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert (
        limited.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
        and int(limited.headers["retry-after"]) >= 1
    )


def test_context_window_errors_are_worded_as_anthropic_words_them(make_app: Any) -> None:
    app = make_app({"MOKKU_CONTEXT_WINDOW": "real"})
    long = "word " * 210_000
    found = error(app, body(long), 400)
    assert found["message"].startswith("prompt is too long: ") and found["message"].endswith(
        " > 200000 maximum"
    )
    near = error(app, body("word " * 190_000, max_tokens=60_000), 400)
    assert near["message"].startswith("input length and `max_tokens` exceed context limit: ")


def test_unknown_paths_answer_in_the_envelope_of_the_header(app: webtest.TestApp) -> None:
    missing = app.get("/v1/messages/nothing", headers=HEADERS, status=404).json
    assert missing["type"] == "error" and missing["error"]["type"] == "not_found_error"
    assert (
        "error" in app.get("/v1/nothing", status=404).json
        and "type" not in app.get("/v1/nothing", status=404).json
    )
    wrong = app.get(URL, headers=HEADERS, status=405).json
    assert wrong["type"] == "error"


def test_529_names_the_overloaded_fault(app: webtest.TestApp) -> None:
    assert error(app, body(model="claude@529"), 529)["type"] == "overloaded_error"


def test_stop_sequences_are_bounded(app: webtest.TestApp) -> None:
    many = error(app, body("x", stop_sequences=[f"s{n}" for n in range(65)]), 400)
    assert many["message"] == "stop_sequences: List should have at most 64 items after validation, not 65"
    long = error(app, body("x", stop_sequences=["a" * 1001]), 400)
    assert long["message"] == "stop_sequences.0: String should have at most 1000 characters"
    assert create(app, **body("x", stop_sequences=[f"s{n}" for n in range(64)])).stop_reason == "end_turn"


def test_a_body_that_is_not_json_is_said_in_anthropic_s_words(app: webtest.TestApp) -> None:
    hi = b'{"model":"claude-sonnet-4-5","max_tokens":20,"messages":[{"role":"user","content":"hi '
    for raw, why in (
        (b'{"model": ', "Expecting value: line 1 column 11"),
        (b"", "Expecting value: line 1 column 1"),
        # A lone surrogate, which Python's decoder takes and Anthropic's does not.
        (hi + b'\\ud800"}]}', "no low surrogate in string: line 1 column 87 (char 86)"),
        (hi + b'\\ud800x"}]}', "no low surrogate in string: line 1 column 87 (char 86)"),
        (hi + b'\\udc00"}]}', "invalid high surrogate in string: line 1 column 87 (char 86)"),
    ):
        answer = app.post(
            "/v1/messages", raw, headers={**HEADERS, "Content-Type": "application/json"}, status=400
        ).json
        assert answer["type"] == "error" and answer["error"]["type"] == "invalid_request_error"
        assert answer["error"]["message"].startswith("The request body is not valid JSON: " + why)
        assert "OpenAI" not in answer["error"]["message"]
    # A pair is one character; an escaped backslash before "u" is no escape at all.
    for text in (b"\\ud83d\\ude00", b"\\\\ud800"):
        answer = app.post(
            "/v1/messages", hi + text + b'"}]}', headers={**HEADERS, "Content-Type": "application/json"}
        )
        assert answer.json["type"] == "message"
    counted = app.post(
        "/v1/messages/count_tokens",
        hi + b'\\ud800"}]}',
        headers={**HEADERS, "Content-Type": "application/json"},
        status=400,
    )
    assert counted.json["error"]["message"].startswith("The request body is not valid JSON: no low surrogate")


IMAGE = {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}


@pytest.mark.parametrize(
    "last_turn",
    [
        [IMAGE],
        [{"type": "tool_result", "tool_use_id": "toolu_1", "content": ""}],
        [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [IMAGE]}],
    ],
)
def test_a_turn_without_text_is_answered_with_text_that_can_be_sent_back(
    app: webtest.TestApp, last_turn: List[Any]
) -> None:
    called = [{"role": "user", "content": "weather?"}, {"role": "assistant", "content": [USE]}]
    turns = [
        *(called if last_turn[0]["type"] == "tool_result" else []),
        {"role": "user", "content": last_turn},
    ]
    reply = create(app, **body(messages=turns))
    assert [(block.type, block.text) for block in reply.content] == [("text", "…")]
    assert reply.usage.output_tokens == 1
    streamed = events(app, **body(messages=turns))
    assert streamed[0]["message"]["usage"]["output_tokens"] == streamed[-2]["usage"]["output_tokens"] == 1
    following = [*turns, {"role": "assistant", "content": [reply.content[0].model_dump()]}]
    create(app, **body(messages=[*following, {"role": "user", "content": "and now?"}]))


def test_thinking_spends_max_tokens(app: webtest.TestApp) -> None:
    long = "word " * 2000
    thinking = {"type": "enabled", "budget_tokens": 1024}
    reply = create(app, **body(long, max_tokens=1100, thinking=thinking))
    assert reply.stop_reason == "max_tokens" and reply.usage.output_tokens == 1100
    streamed = events(app, **body(long, max_tokens=1100, thinking=thinking))
    assert streamed[-2]["usage"]["output_tokens"] == 1100
    deltas = [e["delta"] for e in streamed if e["type"] == "content_block_delta"]
    assert "".join(d["text"] for d in deltas if d["type"] == "text_delta") == reply.content[1].text
    # Adaptive thinking leaves no thinking block when max_tokens has no room for it.
    tight = create(app, **body(long, max_tokens=5, thinking={"type": "adaptive"}))
    assert [block.type for block in tight.content] == ["text"] and tight.usage.output_tokens == 5


@pytest.mark.parametrize(
    "sampling, words",
    [
        ({"temperature": 0.5}, "`temperature` may only be set to 1 when thinking is enabled. Please consult"),
        ({"top_k": 5}, "`top_k` must be unset when thinking is enabled. Please consult"),
    ],
)
def test_thinking_takes_no_sampling_changes(
    app: webtest.TestApp, sampling: Dict[str, Any], words: str
) -> None:
    thinking = {"type": "enabled", "budget_tokens": 1024}
    found = error(app, body(max_tokens=2048, thinking=thinking, **sampling), 400)
    assert found["type"] == "invalid_request_error" and found["message"].startswith(words)
    assert found["message"].endswith("#important-considerations-when-using-extended-thinking")
    create(app, **body(max_tokens=2048, thinking=thinking, temperature=1))
    create(app, **body(max_tokens=2048, thinking=thinking, top_p=0.95))
    create(app, **body(**sampling))  # without thinking: accepted


def _png(**source: Any) -> Dict[str, Any]:
    return {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo=", **source},
    }


@pytest.mark.parametrize(
    "turns, message",
    [
        (
            [{"role": "user", "content": " \n"}],
            "messages: text content blocks must contain non-whitespace text",
        ),
        (
            [{"role": "user", "content": [{"type": "text", "text": "\t"}]}],
            "messages: text content blocks must contain non-whitespace text",
        ),
        (
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Sure, "}],
            "messages: final assistant content cannot end with trailing whitespace",
        ),
        (
            [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "text", "text": "So\n"}]},
            ],
            "messages: final assistant content cannot end with trailing whitespace",
        ),
        (
            [{"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "mystery"}]}],
            "messages.0.content.1: Input tag 'mystery' found using 'type' does not match any of the expected "
            "tags: 'text', 'image', 'document',",
        ),
        (
            [{"role": "user", "content": [{"type": "image"}]}],
            "messages.0.content.0.image.source: Field required",
        ),
        (
            [{"role": "user", "content": [_png(type="path")]}],
            "messages.0.content.0.image.source: Input tag 'path' found using 'type' does not match any of the "
            "expected tags: 'base64', 'url', 'file'",
        ),
        (
            [{"role": "user", "content": [_png(media_type="image/bmp")]}],
            "messages.0.content.0.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', "
            "'image/gif' or 'image/webp'",
        ),
        (
            [{"role": "user", "content": [_png(data="not base64!")]}],
            "messages.0.content.0.image.source.base64: invalid base64 data",
        ),
        (
            [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": [USE]},
                {"role": "user", "content": [dict(_result(), content=[_png(data="@@")])]},
            ],
            "messages.2.content.0.content.0.image.source.base64: invalid base64 data",
        ),
        (
            [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": [USE]},
                {"role": "user", "content": [dict(_result(), content=[{"type": ["text"], "text": "r"}])]},
            ],
            "messages.2.content.0.content.0.type: Input should be a valid string",
        ),
        (
            [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": [USE]},
                {"role": "user", "content": [dict(_result(), content=[USE])]},
            ],
            "messages.2.content.0.content.0: Input tag 'tool_use' found using 'type' does not match any of the "
            "expected tags: 'text', 'image', 'search_result', 'document', 'tool_reference', 'browser_state'",
        ),
        (
            [{"role": "user", "content": [{"type": "document", "source": _png()["source"]}]}],
            "messages.0.content.0.document.source.base64.media_type: Input should be 'application/pdf'",
        ),
    ],
)
def test_content_is_checked_as_the_real_api_checks_it(
    app: webtest.TestApp, turns: List[Any], message: str
) -> None:
    found = error(app, body(messages=turns), 400)
    assert found["type"] == "invalid_request_error" and found["message"].startswith(message)


def test_images_documents_and_a_clean_prefill_are_accepted(app: webtest.TestApp) -> None:
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}}
    turn = [_png(), IMAGE, document, {"type": "text", "text": "what is it"}]
    assert create(app, **body(messages=[{"role": "user", "content": turn}])).content[0].text == "what is it"
    prefill = [{"role": "user", "content": "hi "}, {"role": "assistant", "content": "Sure"}]
    assert create(app, **body(messages=prefill)).content[0].text == "hi "


def _tool(name: str) -> Dict[str, Any]:
    return {"name": name, "input_schema": {"type": "object"}}


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"stop_sequences": ["END", None]}, "stop_sequences.1: Input should be a valid string"),
        ({"stop_sequences": [""]}, "stop_sequences: each stop sequence must contain non-whitespace"),
        ({"stop_sequences": ["END", "\n"]}, "stop_sequences: each stop sequence must contain non-whitespace"),
        ({"tools": [_tool("a"), _tool("a")]}, "tools: Tool names must be unique."),
        (
            {"tools": [_tool("web_search"), {"type": "web_search_20250305", "name": "web_search"}]},
            "tools: Tool names must be unique.",
        ),
        (
            {"tools": [_tool("ok"), _tool("files.read")]},
            "tools.1.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'",
        ),
        ({"tools": [_tool("a" * 129)]}, "tools.0.custom.name: String should have at most 128 characters"),
        (
            {"tool_choice": {"type": "any"}},
            "tool_choice: tool_choice may only be specified while providing tools.",
        ),
        (
            {"tools": [_tool("a")], "tool_choice": {"type": "tool", "name": "b"}},
            "tool_choice: Tool 'b' not found in provided tools.",
        ),
        ({"tools": [None]}, "tools.0: Input should be a valid dictionary"),
        ({"speed": "warp"}, "speed: Input should be 'standard' or 'fast'"),
        (
            {"output_config": {"effort": "bogus"}},
            "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'",
        ),
        ({"cache_control": {"type": "forever"}}, "cache_control.type: Input should be 'ephemeral'"),
        (
            {"cache_control": {"type": "ephemeral", "ttl": "2h"}},
            "cache_control.ttl: Input should be '5m' or '1h'",
        ),
        ({"mcp_servers": "x"}, "mcp_servers: Input should be a valid list"),
        ({"inference_geo": 5}, "inference_geo: Input should be a valid string"),
        ({"messages": [None]}, "messages.0: Input should be a valid dictionary"),
        (
            {"messages": [{"role": "user", "content": [None]}]},
            "messages.0.content.0: Input should be a valid dictionary",
        ),
    ],
)
def test_stop_sequences_tools_and_tool_choice_are_checked(
    app: webtest.TestApp, extra: Dict[str, Any], message: str
) -> None:
    found = error(app, body("x", **extra), 400)
    assert found == {"type": "invalid_request_error", "message": message}


def test_valid_tools_and_a_server_tool_choice_are_accepted(app: webtest.TestApp) -> None:
    named = create(app, **body("x", tools=[_tool("a-1_B"), _tool("b" * 128)], stop_sequences=[" END "]))
    assert named.stop_reason == "tool_use"
    search = {"type": "web_search_20250305", "name": "web_search"}
    forced = create(app, **body("x", tools=[search], tool_choice={"type": "tool", "name": "web_search"}))
    assert forced.content[0].text == "x"
    assert create(app, **body("x", tool_choice={"type": "none"})).content[0].text == "x"


def test_max_tokens_above_the_model_s_is_worded_as_anthropic_words_it(make_app: Any) -> None:
    app = make_app({"MOKKU_CONTEXT_WINDOW": "real"})
    found = error(app, body(model="claude-haiku-4-5", max_tokens=64_001), 400)
    assert found["message"] == (
        "max_tokens: 64001 > 64000, which is the maximum allowed number of output tokens for "
        "claude-haiku-4-5-20251001"
    )
    assert create(app, **body(model="claude-haiku-4-5", max_tokens=64_000)).stop_reason == "end_turn"
    # Each model's own: Opus 4.1 (retired, no longer listed) wrote at most 32,000 tokens.
    found = error(app, body(model="claude-opus-4-1-20250805", max_tokens=32_001), 400)
    assert found["message"].startswith("max_tokens: 32001 > 32000") and found["message"].endswith("20250805")


def test_strict_fields_and_huge_numbers_are_said_in_anthropic_s_words(make_app: Any) -> None:
    strict_app = make_app({"MOKKU_STRICT": "1"})
    assert error(strict_app, body(foo=1), 400)["message"] == "foo: Extra inputs are not permitted"
    create(strict_app, **body(thinking={"type": "disabled"}, metadata={"user_id": "u"}))
    raw = b'{"model": "c", "max_tokens": ' + b"9" * 5000 + b', "messages": []}'
    answer = strict_app.post(URL, raw, headers={**HEADERS, "Content-Type": "application/json"}, status=400)
    message = answer.json["error"]["message"]
    assert message.startswith("The request body is not valid JSON: ") and "sys." not in message


def test_count_tokens_refuses_max_tokens(app: webtest.TestApp) -> None:
    payload = {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5}
    answer = app.post_json(URL + "/count_tokens", payload, headers=HEADERS, status=400).json
    assert answer["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Extra inputs are not permitted",
    }


@pytest.mark.parametrize("path", [URL, URL + "/count_tokens"])
def test_anthropic_version_is_required(app: webtest.TestApp, path: str) -> None:
    payload = body() if path == URL else {k: v for k, v in body().items() if k != "max_tokens"}
    answer = app.post_json(path, payload, headers={"x-api-key": "sk-ant-test"}, status=400).json
    assert answer["error"] == {
        "type": "invalid_request_error",
        "message": "anthropic-version: header is required",
    }
    app.post_json(path, payload, headers=dict(HEADERS, **{"anthropic-version": "2023-01-01"}))


def test_tool_definitions_count_as_input(app: webtest.TestApp) -> None:
    plain = create(app, **body("Oslo")).usage.input_tokens
    payload = body("Oslo", tools=[WEATHER], tool_choice={"type": "none"})
    with_tools = create(app, **payload).usage.input_tokens
    del payload["max_tokens"]
    counted = app.post_json(URL + "/count_tokens", payload, headers=HEADERS).json["input_tokens"]
    assert with_tools == counted > plain + 10


def test_messages_are_bounded(app: webtest.TestApp) -> None:
    turns = [{"role": "user", "content": "x"}] * 100_001
    found = error(app, body(messages=turns), 400)
    assert found["message"] == "messages: List should have at most 100000 items after validation, not 100001"


def test_a_tool_type_outside_the_sdks_union_is_refused(app: webtest.TestApp) -> None:
    """An OpenAI-shaped ``{"type": "function"}`` tool sent to Claude, a common client mistake."""
    openai_shaped = {"type": "function", "name": "get_weather", "input_schema": {"type": "object"}}
    found = error(app, body("x", tools=[openai_shaped]), 400)
    assert found["message"].startswith(
        "tools.0: Input tag 'function' found using 'type' does not match any of the expected tags: 'custom', "
        "'bash_20241022', "
    )
    newer = {"type": "web_search_20260318", "name": "web_search"}  # a server tool of a later date
    assert create(app, **body("x", tools=[newer])).content[0].text == "x"


def test_a_reply_makes_one_call_and_the_next_turn_moves_on(app: webtest.TestApp) -> None:
    """An agent's tools and its final-answer tool (smolagents, pydantic-ai): calling both at once made
    the agent refuse the turn; one call, then the one not called yet, as a loop needs."""
    tools = [_tool("get_weather"), _tool("final_answer")]
    for choice in ({"type": "auto"}, {"type": "any"}, {"type": "any", "disable_parallel_tool_use": False}):
        first = create(app, **body("Weather in Oslo?", tools=tools, tool_choice=choice))
        assert [block.name for block in first.content if block.type == "tool_use"] == ["get_weather"]
    call = first.content[0]
    turns = [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": [call.model_dump(exclude_none=True)]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Sunny"}]},
    ]
    after = create(app, **dict(body("x", tools=tools, tool_choice={"type": "any"}), messages=turns))
    assert [block.name for block in after.content if block.type == "tool_use"] == ["final_answer"]


def test_calls_an_agent_wrote_in_its_text_count_as_called(app: webtest.TestApp) -> None:
    """smolagents keeps its calls as text in the history: the next forced call moves on, as chat's does."""
    written = "Calling tools:\n[{'id': 'call_1', 'type': 'function', 'function': {'name': 'get_weather', 'arguments': {}}}]"
    turns = [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": written},
        {"role": "user", "content": "Observation: Sunny"},
    ]
    tools = [_tool("get_weather"), _tool("final_answer")]
    after = create(app, **dict(body("x", tools=tools, tool_choice={"type": "any"}), messages=turns))
    assert [block.name for block in after.content if block.type == "tool_use"] == ["final_answer"]


def test_a_forced_call_on_a_later_turn_moves_on_to_the_tool_called_longest_ago(app: webtest.TestApp) -> None:
    """pydantic-ai's second run on Claude: every tool was called on the first turn; the output tool,
    called longest ago, ends this one too."""

    def called(use_id: str, name: str) -> List[Dict[str, Any]]:
        use = {"type": "tool_use", "id": use_id, "name": name, "input": {}}
        result = {"type": "tool_result", "tool_use_id": use_id, "content": "done"}
        return [{"role": "assistant", "content": [use]}, {"role": "user", "content": [result]}]

    turns = [
        {"role": "user", "content": "Oslo"},
        *called("toolu_1", "get_weather"),
        *called("toolu_2", "final_result"),
        {"role": "user", "content": "Bergen"},
        *called("toolu_3", "get_weather"),
    ]
    tools = [_tool("get_weather"), _tool("final_result")]
    after = create(app, **dict(body("x", tools=tools, tool_choice={"type": "any"}), messages=turns))
    assert [block.name for block in after.content if block.type == "tool_use"] == ["final_result"]


def test_a_tool_results_is_error_is_a_boolean(app: webtest.TestApp) -> None:
    use = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny", "is_error": "yes"}
    turns = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": [use]},
        {"role": "user", "content": [result]},
    ]
    found = error(app, dict(body("x", tools=[_tool("get_weather")]), messages=turns), 400)
    assert found == {
        "type": "invalid_request_error",
        "message": "messages.2.content.0.is_error: Input should be a valid boolean",
    }
    result["is_error"] = True
    assert (
        create(app, **dict(body("x", tools=[_tool("get_weather")]), messages=turns)).content[0].text
        == "Sunny"
    )


def test_an_mcp_toolset_is_named_by_its_server(app: webtest.TestApp) -> None:
    toolset = {"type": "mcp_toolset", "mcp_server_name": "docs"}
    assert create(app, **body("x", tools=[toolset])).content[0].text == "x"
    found = error(app, body("x", tools=[{"type": "mcp_toolset"}]), 400)
    assert found["message"] == "tools.0.mcp_server_name: Field required"


# The constraints of a schema, and the description each SDK moves them into for Claude.
CONSTRAINED = {
    "code": ({"type": "string", "minLength": 5, "maxLength": 8, "pattern": "^[a-z]+$"}, "A code"),
    "tags": ({"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 4}, None),
    "priority": ({"type": "integer", "minimum": 10, "maximum": 20, "multipleOf": 5}, None),
    "tag": ({"type": "string", "pattern": "^ab.*"}, None),  # zod's startsWith: a format beside it
}
HINTS = {  # TypeScript's, the AI SDK's, Python's (values as Python writes them)
    "anthropic-ts": {
        "code": 'A code\n\n{minLength: 5, maxLength: 8, pattern: "^[a-z]+$"}',
        "tags": "{minItems: 2, maxItems: 4}",
        "priority": "{minimum: 10, maximum: 20, multipleOf: 5}",
        "tag": '{pattern: "^ab.*", format: "starts_with"}',
    },
    "ai-sdk": {
        "code": "A code\nmin length: 5; max length: 8; pattern: ^[a-z]+$.",
        "tags": "min items: 2; max items: 4.",
        "priority": "minimum: 10; maximum: 20; multiple of: 5.",
        "tag": "pattern: ^ab.*; format: starts_with.",
    },
    "anthropic-python": {"code": "A code\n\n{minLength: 5, maxLength: 8, pattern: ^[a-z]+$}"},
}


@pytest.mark.parametrize("sdk", HINTS)
def test_constraints_an_sdk_moved_into_descriptions_are_kept_to(app: webtest.TestApp, sdk: str) -> None:
    """The SDKs check Claude's answer against the schema with its constraints: the document keeps to them."""
    whole: Dict[str, Any] = {"type": "object", "required": list(CONSTRAINED), "additionalProperties": False}
    whole["properties"] = {
        name: dict(schema, **({"description": description} if description else {}))
        for name, (schema, description) in CONSTRAINED.items()
    }
    sent = dict(whole, properties=dict(whole["properties"]))
    for name, hint in HINTS[sdk].items():  # as the SDK sends it: only the type and items, and the hint
        kept = {key: value for key, value in CONSTRAINED[name][0].items() if key in ("type", "items")}
        sent["properties"][name] = dict(kept, description=hint)
    answer = create(app, **body("x"), output_config={"format": {"type": "json_schema", "schema": sent}})
    jsonschema.validate(json.loads(answer.content[0].text), whole)
