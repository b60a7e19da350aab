"""The Responses API in-process: shapes against the official schemas, tools, formats, streams, the store."""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Optional

import jsonschema
import pytest
import webob
import webtest

from mokku.api.responses import REASONING_SUMMARY
from mokku.api.tokens import count

from .spec import validate

URL = "/v1/responses"
TOOL = {
    "type": "function",
    "name": "lookup",
    "parameters": {
        "type": "object",
        "properties": {"query": {"type": "string"}},
        "required": ["query"],
        "additionalProperties": False,
    },
    "strict": True,
}


def create(app: webtest.TestApp, **body: Any) -> Dict[str, Any]:
    body.setdefault("model", "gpt-4o")
    result = app.post_json(URL, body).json
    validate(result, "Response")
    return result


def events(app: webtest.TestApp, **body: Any) -> List[Dict[str, Any]]:
    body.setdefault("model", "gpt-4o")
    out = parsed(app.post_json(URL, dict(body, stream=True)).body)
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    return out


def parsed(raw: bytes) -> List[Dict[str, Any]]:
    assert raw.endswith(b"\n\n") and b"[DONE]" not in raw
    out = []
    for frame in raw.split(b"\n\n")[:-1]:
        event_line, data_line = frame.split(b"\n")
        assert event_line.startswith(b"event: ") and data_line.startswith(b"data: ")
        payload = json.loads(data_line[6:])
        assert payload["type"] == event_line[7:].decode()
        validate(payload, "ResponseStreamEvent")
        out.append(payload)
    return out


def test_text_deltas_end_with_obfuscation_unless_asked_not_to(app: webtest.TestApp) -> None:
    deltas = [e for e in events(app, input="padded words") if e["type"] == "response.output_text.delta"]
    assert len(deltas) == 2 and all(list(delta)[-1] == "obfuscation" for delta in deltas)
    assert all(delta["obfuscation"].isalnum() for delta in deltas)
    plain = events(app, input="padded words", stream_options={"include_obfuscation": False})
    assert not any("obfuscation" in event for event in plain)
    for tool in (TOOL, CUSTOM):  # a call's input deltas too
        called = [e for e in events(app, input="Paris", tools=[tool], tool_choice="required") if "delta" in e]
        assert called and all(list(event)[-1] == "obfuscation" for event in called)
    error = app.post_json(
        URL,
        {"model": "gpt-4o", "input": "x", "stream": True, "stream_options": {"include_obfuscation": "no"}},
        status=400,
    ).json["error"]
    assert error["param"] == "stream_options.include_obfuscation"


def test_text_response(app: webtest.TestApp) -> None:
    body = create(app, input="Hello there")
    assert body["object"] == "response" and body["id"].startswith("resp_")
    assert body["status"] == "completed"
    (message,) = body["output"]
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"] == [
        {"type": "output_text", "text": "Hello there", "annotations": [], "logprobs": []}
    ]
    assert body["usage"]["output_tokens"] == 2
    assert body["usage"]["total_tokens"] == body["usage"]["input_tokens"] + 2


def test_input_items_and_instructions(app: webtest.TestApp) -> None:
    body = create(
        app,
        instructions="Be brief.",
        input=[
            {"role": "developer", "content": "rules"},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "first"},
                    {"type": "input_image", "image_url": "data:x"},
                    {"type": "input_text", "text": "second"},
                ],
            },
        ],
    )
    assert body["output"][0]["content"][0]["text"] == "first\nsecond"
    assert body["instructions"] == "Be brief."


def test_completed_at_is_when_the_last_token_came_and_only_when_completed(app: webtest.TestApp) -> None:
    done = create(app, input="one two three")
    assert done["completed_at"] - done["created_at"] in (0, 1)  # no latency: the same second
    cut = create(app, input=" ".join(["w"] * 40), max_output_tokens=16)
    assert cut["status"] == "incomplete" and cut["completed_at"] is None


def test_a_function_tool_is_listed_with_every_field_the_spec_requires(app: webtest.TestApp) -> None:
    """``strict`` (true unless sent) and ``parameters`` (null unless sent): ``FunctionTool`` requires both."""
    bare = {"type": "function", "name": "ping"}
    loose = dict(TOOL, strict=False)
    listed = create(app, input="x", tools=[bare, loose], tool_choice="none")["tools"]
    assert listed == [dict(bare, strict=True, parameters=None), loose]


@pytest.mark.parametrize(
    ("extra", "param", "code"),
    [
        ({"tools": [{"type": "bogus"}]}, "tools[0].type", "invalid_value"),
        ({"tools": [TOOL, {"type": "custom"}]}, "tools[1].name", "missing_required_parameter"),
        ({"tools": [{"type": "file_search"}]}, "tools[0].vector_store_ids", "missing_required_parameter"),
        ({"tools": [{"type": "mcp"}]}, "tools[0].server_label", "missing_required_parameter"),
        ({"tools": [TOOL], "tool_choice": {"type": "bogus"}}, "tool_choice.type", "invalid_value"),
        (
            {"tools": [TOOL], "tool_choice": {"type": "custom"}},
            "tool_choice.name",
            "missing_required_parameter",
        ),
        ({"tools": [{"type": "mcp", "server_label": 5}]}, "tools[0].server_label", "invalid_type"),
        (
            {"tools": [{"type": "file_search", "vector_store_ids": "x"}]},
            "tools[0].vector_store_ids",
            "invalid_type",
        ),
        ({"tools": [{"type": "code_interpreter", "container": 5}]}, "tools[0].container", "invalid_type"),
        ({"tools": [dict(TOOL, description=5)]}, "tools[0].description", "invalid_type"),
        (
            {"tools": [TOOL], "tool_choice": {"type": "custom", "name": []}},
            "tool_choice.name",
            "invalid_type",
        ),
    ],
)
def test_tools_and_tool_choices_are_of_the_types_the_api_knows(
    app: webtest.TestApp, extra: Dict[str, Any], param: str, code: str
) -> None:
    """Else they would be given back in a response no schema describes."""
    error = app.post_json(URL, {"model": "gpt-4o", "input": "x", **extra}, status=400).json["error"]
    assert (error["param"], error["code"]) == (param, code)
    if code == "invalid_value":
        assert error["message"].startswith("Invalid value: 'bogus'. Supported values are: ")
    hosted = [{"type": "web_search"}, {"type": "file_search", "vector_store_ids": ["vs_1"]}, TOOL]
    assert create(app, input="x", tools=hosted, tool_choice={"type": "file_search"})["tools"][0] == hosted[0]


@pytest.mark.parametrize("kind", ["web_search", "web_search_2025_08_26", "tool_search", "local_shell", "mcp"])
def test_a_hosted_tool_is_forced_as_agent_sdks_force_it(app: webtest.TestApp, kind: str) -> None:
    """openai-agents and the AI SDK force web search with ``{"type": "web_search"}`` and an MCP
    server's tools with a bare ``{"type": "mcp"}``, which the spec's enum lags behind."""
    tools = [{"type": "mcp", "server_label": "s"} if kind == "mcp" else {"type": kind}, TOOL]
    made = create(app, input="news", tools=tools, tool_choice={"type": kind})
    assert [item["type"] for item in made["output"]] == ["message"]  # never the function in its place
    listed = {"web_search": {"type": "web_search_preview"}, "local_shell": {"type": "shell"}}
    listed.update(web_search_2025_08_26=listed["web_search"], mcp={"type": "mcp", "server_label": "s"})
    assert made["tool_choice"] == listed.get(kind, "required")  # as the spec's schema has it


@pytest.mark.parametrize(
    ("choice", "named"),
    [
        ({"type": "file_search"}, "file_search"),
        ({"type": "image_generation"}, "image_generation"),
        ({"type": "web_search"}, "web_search"),
        ({"type": "custom", "name": "nope"}, "nope"),
        ({"type": "mcp", "server_label": "nope"}, "nope"),
        (
            {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "zzz"}]},
            "zzz",
        ),
        (
            {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "code_interpreter"}]},
            "code_interpreter",
        ),
    ],
)
def test_a_tool_forced_or_allowed_must_be_given(
    app: webtest.TestApp, choice: Dict[str, Any], named: str
) -> None:
    given = [TOOL, {"type": "mcp", "server_label": "s"}, {"type": "custom", "name": "c"}]
    error = app.post_json(
        URL, {"model": "m", "input": "x", "tools": given, "tool_choice": choice}, status=400
    ).json
    validate(error, "ErrorResponse")
    assert error["error"] == {
        "message": f"Tool choice '{named}' not found in 'tools' parameter.",
        "type": "invalid_request_error",
        "param": "tool_choice",
        "code": None,
    }
    namespaced = {"type": "namespace", "name": "ns", "description": "d", "tools": [dict(TOOL, name="zzz")]}
    for name in ("zzz", "ns.zzz"):  # a namespace's function, by its name or its qualified one
        allowed = {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": name}]}
        assert (
            create(app, input="x", tools=[*given, namespaced], tool_choice=allowed)["status"] == "completed"
        )
    # A stored prompt brings tools of its own, not seen here: a hosted tool it forces is taken.
    forced = {"type": "web_search"}
    assert create(app, input="x", prompt={"id": "pmpt_1"}, tool_choice=forced)["status"] == "completed"


def test_input_items_are_listed_as_their_schemas_require(app: webtest.TestApp) -> None:
    """A part sent without a field its schema requires is listed with the field's default; an item
    kept as context without one is refused, naming it."""
    said = {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "yo"}]}
    shown = {"role": "user", "content": [{"type": "input_image", "image_url": "https://x.test/y.png"}]}
    made = create(app, input=[said, shown, {"role": "user", "content": "hi"}])
    listed = app.get(f"{URL}/{made['id']}/input_items?order=asc").json["data"]
    for item in listed:
        validate(item, "ItemResource")
    assert listed[0]["content"] == [{"annotations": [], "logprobs": [], "type": "output_text", "text": "yo"}]
    assert listed[1]["content"][0]["detail"] == "auto"
    for noted, param in (([1, 2], "annotations[0]"), ([{"url": "x"}], "annotations[0].type")):
        bad = dict(said, content=[{"type": "output_text", "text": "yo", "annotations": noted}])
        refused = app.post_json(URL, {"model": "gpt-4o", "input": [bad]}, status=400).json["error"]
        assert refused["param"] == f"input[0].content[0].{param}"
    nulled = dict(said, content=[{"type": "output_text", "text": "yo", "annotations": None}])
    assert create(app, input=[nulled, {"role": "user", "content": "hi"}])["status"] == "completed"
    image = {"type": "input_image", "image_url": "https://x.test/y.png", "detail": "tiny"}
    for item, param, code in [
        ({"type": "reasoning", "id": "rs_1", "summary": "x"}, "input[1].summary", "invalid_type"),
        ({"type": "reasoning", "id": "rs_1", "summary": [1]}, "input[1].summary[0]", "invalid_type"),
        ({"type": "web_search_call", "id": "w", "action": "x"}, "input[1].action", "invalid_type"),
        (
            dict(said, content=[{"type": "output_text", "text": "yo", "annotations": "x"}]),
            "input[1].content[0].annotations",
            "invalid_type",
        ),
        ({"role": "user", "content": [image]}, "input[1].content[0].detail", "invalid_value"),
    ]:
        body = {
            "model": "gpt-4o",
            "input": [{"role": "user", "content": "a"}, item, {"role": "user", "content": "b"}],
        }
        error = app.post_json(URL, body, status=400).json["error"]
        assert (error["param"], error["code"]) == (param, code)
    for item, param in [
        ({"type": "reasoning", "id": "rs_1"}, "input[1].summary"),
        ({"type": "web_search_call", "id": "ws_1", "status": "completed"}, "input[1].action"),
        ({"role": "assistant", "content": [{"type": "refusal"}]}, "input[1].content[0].refusal"),
    ]:
        body = {
            "model": "gpt-4o",
            "input": [{"role": "user", "content": "a"}, item, {"role": "user", "content": "b"}],
        }
        error = app.post_json(URL, body, status=400).json["error"]
        assert error == {
            "message": f"Missing required parameter: '{param}'.",
            "type": "invalid_request_error",
            "param": param,
            "code": "missing_required_parameter",
        }


def test_max_output_tokens_is_incomplete(app: webtest.TestApp) -> None:
    body = create(app, input=" ".join(["w"] * 40), max_output_tokens=16)
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["usage"]["output_tokens"] == 16


def test_function_calls_and_loop_end(app: webtest.TestApp) -> None:
    body = create(app, input="cats", tools=[TOOL])
    (call,) = body["output"]
    assert (
        call["type"] == "function_call" and call["name"] == "lookup" and call["call_id"].startswith("call_")
    )
    jsonschema.validate(json.loads(call["arguments"]), TOOL["parameters"])
    follow_up = create(
        app,
        input=[
            {"role": "user", "content": "cats"},
            {
                "type": "function_call",
                "call_id": call["call_id"],
                "name": "lookup",
                "arguments": call["arguments"],
            },
            {"type": "function_call_output", "call_id": call["call_id"], "output": "3 cats found"},
        ],
        tools=[TOOL],
    )
    assert follow_up["output"][0]["content"][0]["text"] == "3 cats found"
    forced = create(
        app,
        input="x",
        tools=[TOOL, dict(TOOL, name="other")],
        tool_choice={"type": "function", "name": "other"},
    )
    assert forced["output"][0]["name"] == "other"


def test_text_formats(app: webtest.TestApp) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "n": {"type": "integer"}},
        "required": ["city", "n"],
        "additionalProperties": False,
    }
    body = create(
        app,
        input="Lima",
        text={"format": {"type": "json_schema", "name": "place", "schema": schema, "strict": True}},
    )
    jsonschema.validate(json.loads(body["output"][0]["content"][0]["text"]), schema)
    plain = create(app, input="Lima, in json", text={"format": {"type": "json_object"}})
    assert json.loads(plain["output"][0]["content"][0]["text"]) == {"echo": "Lima, in json"}
    # JSON mode needs the word in the input's messages, as the real API does: instructions do not count.
    for asked in ({"input": "Lima"}, {"input": "Lima", "instructions": "Answer in JSON."}):
        body = {"model": "gpt-4o", **asked, "text": {"format": {"type": "json_object"}}}
        refused = app.post_json(URL, body, status=400).json
        validate(refused, "ErrorResponse")
        assert refused["error"] == {
            "message": "Response input messages must contain the word 'json' in some form to use "
            "'text.format' of type 'json_object'.",
            "type": "invalid_request_error",
            "param": "text.format",
            "code": None,
        }


def test_stream_event_sequence(app: webtest.TestApp) -> None:
    sequence = events(app, input="one two three")
    assert [e["type"] for e in sequence] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert (
        "".join(e["delta"] for e in sequence if e["type"] == "response.output_text.delta") == "one two three"
    )
    assert sequence[-1]["response"]["output"][0]["content"][0]["text"] == "one two three"


def test_stream_function_call_events(app: webtest.TestApp) -> None:
    sequence = events(app, input="dogs", tools=[TOOL])
    kinds = [e["type"] for e in sequence]
    assert kinds[2] == "response.output_item.added" and kinds[-2:] == [
        "response.output_item.done",
        "response.completed",
    ]
    arguments = "".join(e["delta"] for e in sequence if e["type"] == "response.function_call_arguments.delta")
    done = next(e for e in sequence if e["type"] == "response.function_call_arguments.done")
    assert arguments == done["arguments"] and done["name"] == "lookup"


def test_store_retrieve_delete(app: webtest.TestApp) -> None:
    body = create(app, input="keep me")
    assert app.get(f"{URL}/{body['id']}").json == body
    deleted = app.delete(f"{URL}/{body['id']}").json
    assert deleted == {"id": body["id"], "object": "response", "deleted": True}
    missing = app.get(f"{URL}/{body['id']}", status=404).json
    validate(missing, "ErrorResponse")
    app.delete(f"{URL}/{body['id']}", status=404)
    unstored = create(app, input="forget me", store=False)
    app.get(f"{URL}/{unstored['id']}", status=404)


def test_credit_error_and_faults(app: webtest.TestApp) -> None:
    response = app.post_json(URL, {"model": "credit-error", "input": "x"}, status=402)
    assert response.json["error"]["code"] == "insufficient_quota"
    app.post_json(URL, {"model": "gpt-4o@429", "input": "x"}, status=429)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m"}, "input"),
        ({"model": "m", "input": 3}, "input"),
        ({"model": "m", "input": [{"role": "user", "content": "x"}, 7]}, "input[1]"),
        ({"model": "m", "input": [{"role": "robot", "content": "x"}]}, "input[0]"),
        ({"model": "m", "input": "x", "max_output_tokens": 5}, "max_output_tokens"),
        ({"model": "o3", "input": "x", "reasoning": {"effort": "extreme"}}, "reasoning.effort"),
        ({"model": "o3", "input": "x", "reasoning": {"summary": 1}}, "reasoning.summary"),
        ({"model": "o3", "input": "x", "reasoning": "high"}, "reasoning"),
        ({"model": "m", "input": "x", "truncation": "middle"}, "truncation"),
        ({"model": "m", "input": "x", "service_tier": 1}, "service_tier"),
        ({"model": "m", "input": "x", "safety_identifier": "x" * 65}, "safety_identifier"),
        ({"model": "m", "input": "x", "text": {"format": {"type": "xml"}}}, "text.format.type"),
        ({"model": "m", "input": "x", "tools": [{"type": "function"}]}, "tools[0].name"),
        (
            {
                "model": "m",
                "input": "x",
                "tools": [TOOL],
                "tool_choice": {"type": "function", "name": "nope"},
            },
            "tool_choice",
        ),
        (
            {"model": "m", "input": "x", "tools": [TOOL], "tool_choice": {"type": "function"}},
            "tool_choice.name",
        ),
        (
            {
                "model": "m",
                "input": "x",
                "tools": [TOOL],
                "tool_choice": {"type": "function", "function": {"name": "f"}},
            },
            "tool_choice.name",
        ),
    ],
)
def test_validation(app: webtest.TestApp, body: Dict[str, Any], param: str) -> None:
    response = app.post_json(URL, body, status=400)
    validate(response.json, "ErrorResponse")
    assert response.json["error"]["param"] == param


ROLES = "Supported values are: 'assistant', 'system', 'developer', and 'user'."
USER_PARTS = (
    "Supported values are: 'input_text', 'input_image', 'input_file', 'scoped_content', and 'input_audio'."
)


@pytest.mark.parametrize(
    ("item", "param", "message"),
    [
        ({"role": "robot", "content": "x"}, "input[0]", f"Invalid value: 'robot'. {ROLES}"),
        ({}, "input[0]", f"Invalid value: ''. {ROLES}"),
        (
            {"type": "bogus_item"},
            "input[0]",
            "Invalid value: 'bogus_item'. Supported values are: 'additional_tools'",
        ),
        (
            {"type": 7, "role": "user", "content": "x"},
            "input[0]",
            "Invalid value: ''. Supported values are: 'add",
        ),
        (
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            "input[0].content[0].type",
            "Invalid value: 'text'. Supported values are: 'input_text', 'input_image', 'input_audio', "
            "'output_text', 'refusal', 'input_file', 'computer_screenshot', 'summary_text', and 'encrypted_content'.",
        ),
        (
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
            "input[0].content[0].type",
            "Invalid value: 'image_url'.",
        ),
        (
            {"role": "user", "content": [{"type": "output_text", "text": "x"}]},
            "input[0].content[0]",
            f"Invalid value: 'output_text'. {USER_PARTS}",
        ),
        (
            {"role": "assistant", "content": [{"type": "input_text", "text": "x"}]},
            "input[0].content[0]",
            "Invalid value: 'input_text'. Supported values are: 'output_text' and 'refusal'.",
        ),
        (
            {
                "type": "function_call_output",
                "call_id": "c",
                "output": [{"type": "output_text", "text": "x"}],
            },
            "input[0].output[0]",
            "Invalid value: 'output_text'. Supported values are: 'input_text', 'input_image', and 'input_file'.",
        ),
        (
            {"role": "user", "content": [{"type": "input_text"}]},
            "input[0].content[0].text",
            "Missing required",
        ),
    ],
)
def test_items_and_their_parts_are_the_types_the_api_takes(
    app: webtest.TestApp, item: Dict[str, Any], param: str, message: str
) -> None:
    """A chat-style part (``text``, ``image_url``), a part of the other side's kind, an unknown item
    or role: the real API's 400, naming the item or part."""
    error = app.post_json(URL, {"model": "m", "input": [item]}, status=400).json["error"]
    assert (error["param"], error["code"]) == (
        param,
        "invalid_value" if "Invalid" in message else error["code"],
    )
    assert error["message"].startswith(message)


@pytest.mark.parametrize(
    ("body", "param", "code", "message"),
    [
        (
            {"input": []},
            None,
            "missing_required_parameter",
            "One of \"input\" or \"previous_response_id\" or 'prompt' or 'conversation' must be provided.",
        ),
        ({"input": ""}, None, "missing_required_parameter", 'One of "input" or'),
        ({"model": "", "input": "x"}, "model", "model_not_found", "The requested model '' does not exist."),
        (
            {"input": [], "previous_response_id": "resp_x"},
            "previous_response_id",
            "previous_response_not_found",
            "Previous response with id 'resp_x' not found.",
        ),
        (
            {"input": None},
            "input",
            "invalid_type",
            "Invalid type for 'input': expected a string, but got null instead.",
        ),
        (
            {"input": {"a": 1}},
            "input",
            "invalid_type",
            "Invalid type for 'input': expected one of a string or array of input items, but got an object instead.",
        ),
        (
            {"input": [7]},
            "input[0]",
            "invalid_type",
            "Invalid type for 'input[0]': expected an input item, but got an integer instead.",
        ),
        (
            {"input": "x", "temperature": "hot"},
            "temperature",
            "invalid_type",
            "Invalid type for 'temperature': expected a decimal, but got a string instead.",
        ),
        (
            {"input": "x", "tool_choice": 7},
            "tool_choice",
            "invalid_type",
            "Invalid type for 'tool_choice': expected one of an object or 'none', 'auto', or 'required', but got an "
            "integer instead.",
        ),
        *(
            (
                {"input": "x", name: "x"},
                name,
                "invalid_type",
                f"Invalid type for '{name}': expected an object,",
            )
            for name in ("prompt", "stream_options", "moderation")
        ),
        (
            {"input": "x", "context_management": "x"},
            "context_management",
            "invalid_type",
            "Invalid type for 'context_management': expected an array of objects, but got a string instead.",
        ),
        (
            {"input": "x", "text": {"format": {"type": "bogus"}}},
            "text.format.type",
            "invalid_value",
            "Invalid value: 'bogus'. Supported values are: 'json_object', 'text', and 'json_schema'.",
        ),
        (
            {"input": "x", "reasoning": {"summary": "bogus"}},
            "reasoning.summary",
            "invalid_value",
            "Invalid value: 'bogus'. Supported values are: 'concise', 'detailed', and 'auto'.",
        ),
        (
            {"input": "x", "conversation": "conv_x", "previous_response_id": "resp_x"},
            None,
            "mutually_exclusive_parameters",
            "Mutually exclusive parameters: ''. Ensure you are only providing one of: 'pre..._id' or 'conversation'.",
        ),
        (
            {"model": "gpt-5.6-terra", "input": "x", "top_logprobs": 1},
            "top_logprobs",
            "unsupported_parameter",
            "logprobs are not supported with reasoning models.",
        ),
        (
            {
                "model": "gpt-5.6-terra",
                "input": "x",
                "include": ["message.output_text.logprobs"],
                "top_logprobs": 1,
            },
            "include",
            "unsupported_parameter",
            "logprobs are not supported with reasoning models.",
        ),
        (
            {"model": "gpt-5.6-terra", "input": "x", "reasoning": {"effort": "minimal"}},
            "reasoning.effort",
            "unsupported_value",
            "Unsupported value: 'minimal' is not supported with the 'gpt-5.6-terra' model. Supported values are: 'none', 'low', 'medium', 'high', 'xhigh', and 'max'.",
        ),
    ],
)
def test_refusals_in_the_apis_words(
    app: webtest.TestApp, body: Dict[str, Any], param: Any, code: str, message: str
) -> None:
    """As the real API answered these (observed against gpt-5.6-terra)."""
    error = app.post_json(URL, {"model": "m", **body}, status=400).json["error"]
    assert (error["param"], error["code"]) == (param, code)
    assert error["message"].startswith(message)


@pytest.mark.parametrize(
    ("body", "param", "code", "message"),
    [
        (
            {"prompt": {"version": "1"}},
            "prompt.id",
            "missing_required_parameter",
            "Missing required parameter: 'prompt.id'.",
        ),
        (
            {"prompt": {"id": 5}},
            "prompt.id",
            "invalid_type",
            "Invalid type for 'prompt.id': expected a string,",
        ),
        (
            {"prompt": {"id": "pmpt_1", "variables": "x"}},
            "prompt.variables",
            "invalid_type",
            "Invalid type for 'prompt.variables': expected an object,",
        ),
        (
            {"tools": [{"type": "web_search", "search_context_size": "huge"}]},
            "tools[0].search_context_size",
            "invalid_value",
            "Invalid value: 'huge'. Supported values are: 'low', 'medium', and 'high'.",
        ),
        (
            {"tools": [{"type": "web_search_preview", "user_location": "Oslo"}]},
            "tools[0].user_location",
            "invalid_type",
            "Invalid type for 'tools[0].user_location': expected an object,",
        ),
        (
            {"tools": [{"type": "custom", "name": "c", "format": {"type": "bogus"}}]},
            "tools[0].format.type",
            "invalid_value",
            "Invalid value: 'bogus'. Supported values are: 'text' and 'grammar'.",
        ),
        (
            {
                "tools": [
                    {
                        "type": "custom",
                        "name": "c",
                        "format": {"type": "grammar", "syntax": "bogus", "definition": "x"},
                    }
                ]
            },
            "tools[0].format.syntax",
            "invalid_value",
            "Invalid value: 'bogus'. Supported values are: 'lark' and 'regex'.",
        ),
        (
            {"tools": [{"type": "custom", "name": "c", "format": {"type": "grammar", "syntax": "lark"}}]},
            "tools[0].format.definition",
            "missing_required_parameter",
            "Missing required parameter: 'tools[0].format.definition'.",
        ),
    ],
)
def test_objects_are_checked_field_by_field(
    app: webtest.TestApp, body: Dict[str, Any], param: Any, code: str, message: str
) -> None:
    """The fields of ``prompt`` and of hosted and custom tools, as the spec types them."""
    error = app.post_json(URL, {"model": "m", "input": "x", **body}, status=400).json["error"]
    assert (error["param"], error["code"]) == (param, code)
    assert error["message"].startswith(message)
    assert app.post_json(
        URL, {"model": "m", "input": "x", "prompt": {"id": "pmpt_1", "version": "2", "variables": {"a": "b"}}}
    )


def test_a_reasoning_model_thinking_at_none_gives_logprobs(app: webtest.TestApp) -> None:
    body = {
        "model": "gpt-5.2",
        "input": "hi there",
        "include": ["message.output_text.logprobs"],
        "top_logprobs": 2,
    }
    answer = app.post_json(URL, body).json
    assert [entry["token"] for entry in answer["output"][-1]["content"][0]["logprobs"]] == ["hi", " there"]


def test_the_response_gives_back_what_it_was_asked_with(app: webtest.TestApp) -> None:
    asked = {
        "truncation": "auto",
        "max_tool_calls": 3,
        "text": {"verbosity": "low"},
        "user": "u-1",
        "safety_identifier": "s-1",
        "prompt_cache_key": "k-1",
        "prompt_cache_retention": "24h",
    }
    answer = app.post_json(URL, {"model": "m", "input": "hi", **asked}).json
    validate(answer, "Response")
    assert {name: answer[name] for name in asked} == dict(
        asked, text={"format": {"type": "text"}, "verbosity": "low"}
    )
    plain = app.post_json(URL, {"model": "m", "input": "hi"}).json
    assert (plain["truncation"], plain["max_tool_calls"], plain["text"]["verbosity"]) == (
        "disabled",
        None,
        "medium",
    )
    assert plain["safety_identifier"] is plain["prompt_cache_key"] is plain["prompt_cache_retention"] is None
    assert "user" not in plain  # a string in the spec, never null
    for bad, param in (
        ({"max_tool_calls": 0}, "max_tool_calls"),
        ({"text": {"verbosity": "loud"}}, "text.verbosity"),
        ({"prompt_cache_retention": "1h"}, "prompt_cache_retention"),
        ({"user": 7}, "user"),
    ):
        assert (
            app.post_json(URL, {"model": "m", "input": "hi", **bad}, status=400).json["error"]["param"]
            == param
        )


CUSTOM = {"type": "custom", "name": "apply", "description": "Apply a patch"}


@pytest.mark.parametrize("choice", [{"type": "custom", "name": "apply"}, "required"])
def test_a_custom_tool_forced_is_called_with_the_echo_as_its_input(app: webtest.TestApp, choice: Any) -> None:
    (call,) = create(app, input="fix the typo", tools=[CUSTOM], tool_choice=choice)["output"]
    assert (
        call["type"] == "custom_tool_call"
        and call["id"].startswith("ctc_")
        and call["call_id"].startswith("call_")
    )
    assert (call["name"], call["input"]) == (
        "apply",
        "fix the typo",
    ) and "status" not in call  # none in the spec
    streamed = events(app, input="fix the typo", tools=[CUSTOM], tool_choice=choice)
    kinds = [event["type"] for event in streamed]
    assert kinds[2:] == [
        "response.output_item.added",
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert "".join(e["delta"] for e in streamed if e["type"].endswith("input.delta")) == "fix the typo"
    assert streamed[-1]["response"]["output"][0]["input"] == "fix the typo"
    # auto leaves the choice to the model: text, as with hosted tools
    assert create(app, input="fix the typo", tools=[CUSTOM])["output"][0]["type"] == "message"


def test_a_custom_tools_output_is_answered_as_a_functions_is(app: webtest.TestApp) -> None:
    """The reply after a ``custom_tool_call_output`` is that output, so a loop around a custom tool
    (apply_patch, say) ends as one around a function does."""
    loop = [
        {"role": "user", "content": "patch it"},
        {"type": "custom_tool_call", "call_id": "call_1", "name": "apply", "input": "--- a\n+++ b"},
        {
            "type": "custom_tool_call_output",
            "call_id": "call_1",
            "output": [{"type": "input_text", "text": "applied"}],
        },
    ]
    answer = app.post_json(
        URL, {"model": "m", "input": loop, "tools": [{"type": "custom", "name": "apply"}]}
    ).json
    validate(answer, "Response")
    assert answer["output"][-1]["content"][0]["text"] == "applied"
    missing = [loop[0], {"type": "custom_tool_call_output", "call_id": "call_1"}]
    error = app.post_json(URL, {"model": "m", "input": missing}, status=400).json["error"]
    assert error["param"] == "input[1].output"


def test_items_of_every_kind_a_conversation_holds_are_taken(app: webtest.TestApp) -> None:
    parts = [
        {"type": "input_text", "text": "look"},
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "auto"},
        {"type": "input_file", "file_id": "file-1"},
    ]
    said = [{"type": "output_text", "text": "ok", "annotations": []}, {"type": "refusal", "refusal": "no"}]
    conversation = [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": parts},
        {"type": "message", "role": "assistant", "content": said},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"role": "user", "content": "again"},
    ]
    answer = app.post_json(URL, {"model": "m", "input": conversation}).json
    assert answer["output"][-1]["content"][0]["text"] == "again"


@pytest.mark.parametrize(
    ("key", "message"),
    [  # the real API's answers (gpt-5.6-terra)
        ("brand_new", "Unknown parameter: 'brand_new'."),
        ("stop", "Unknown parameter: 'stop'. Did you mean 'store'?"),
        ("sto", "Unknown parameter: 'sto'. Did you mean 'store'?"),
        ("st", "Unknown parameter: 'st'."),
        ("stre", "Unknown parameter: 'stre'. Did you mean 'store' or 'stream'?"),
        ("inclde", "Unknown parameter: 'inclde'. Did you mean 'include'?"),
        ("inpu", "Unknown parameter: 'inpu'."),
        ("max_tokens", "Unknown parameter: 'max_tokens'."),
    ],
)
def test_strict_mode_rejects_unknown_params(make_app: Any, key: str, message: str) -> None:
    app = make_app({"MOKKU_STRICT": "1"})
    response = app.post_json(URL, {"model": "m", "input": "hi", key: 1}, status=400)
    assert response.json["error"] == {
        "message": message,
        "type": "invalid_request_error",
        "param": key,
        "code": "unknown_parameter",
    }
    known = {"instructions": "Be brief.", "temperature": 1, "store": False, "reasoning": {"effort": "low"}}
    assert app.post_json(URL, {"model": "m", "input": "hi", **known}).status_int == 200


@pytest.mark.parametrize(
    ("name", "value", "param"),
    [  # the real API's answers (gpt-5.6-terra)
        ("reasoning", {"effort": "low", "generate_summary": "auto"}, "reasoning.generate_summary"),
        ("reasoning", {"bogus": 1}, "reasoning.bogus"),
        ("stream_options", {"include_usage": True}, "stream_options.include_usage"),
        ("text", {"zzz": 1}, "text.zzz"),
        ("prompt_cache_options", {"bogus": 1}, "prompt_cache_options.bogus"),
    ],
)
def test_strict_mode_rejects_unknown_members(make_app: Any, name: str, value: Any, param: str) -> None:
    app = make_app({"MOKKU_STRICT": "1"})
    response = app.post_json(URL, {"model": "m", "input": "hi", name: value}, status=400)
    assert response.json["error"] == {
        "message": f"Unknown parameter: '{param}'.",
        "type": "invalid_request_error",
        "param": param,
        "code": "unknown_parameter",
    }
    known = {"reasoning": {"effort": "low", "summary": "auto"}, "text": {"verbosity": "low"}}
    assert app.post_json(URL, {"model": "gpt-5", "input": "hi", **known}).status_int == 200


@pytest.mark.parametrize(
    ("extra", "param", "message"),
    [  # the real API's answers (gpt-5.6-terra), word for word
        (
            {"input": {}},
            "input",
            "Invalid type for 'input': expected one of a string or array of input items, but got an object instead.",
        ),
        (
            {"tools": "x"},
            "tools",
            "Invalid type for 'tools': expected an array of tools, but got a string instead.",
        ),
        (
            {"metadata": "x"},
            "metadata",
            "Invalid type for 'metadata': expected a metadata object, but got a string instead.",
        ),
        (
            {"include": "x"},
            "include",
            "Invalid type for 'include': expected an array of one of 'fil...lts', 'web...lts', 'web...ces', "
            "'mes...url', 'com...url', 'cod...uts', 'rea...ent', or 'mes...obs', but got a string instead.",
        ),
        (
            {"metadata": {"k" * 70: "v"}},
            "metadata." + "k" * 70,
            "Invalid property name in 'metadata': 'kkk...kkk' is too long. Expected a string with maximum "
            "length 64, but got a string with length 70 instead.",
        ),
    ],
)
def test_type_errors_name_what_the_field_holds(
    app: webtest.TestApp, extra: Dict[str, Any], param: str, message: str
) -> None:
    error = app.post_json(URL, {"model": "m", "input": "hi", **extra}, status=400).json["error"]
    assert (error["param"], error["message"]) == (param, message)


@pytest.mark.parametrize("name", ["a b", "n" * 65])
def test_a_text_format_name_is_one_the_spec_allows(app: webtest.TestApp, name: str) -> None:
    text = {"format": {"type": "json_schema", "name": name, "schema": {"type": "object"}}}
    error = app.post_json(URL, {"model": "m", "input": "hi", "text": text}, status=400).json["error"]
    assert error["param"] == "text.format.name" and error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("name", "values"),
    [  # the real API's words (gpt-5.6-terra) for the first two
        ("truncation", "'auto' or 'disabled'"),
        ("prompt_cache_retention", "'in_memory' or '24h'"),
        ("service_tier", "'auto', 'default', 'flex', 'scale', 'priority', 'fast', or 'ultrafast'"),
    ],
)
def test_an_enum_of_another_type_names_its_values(app: webtest.TestApp, name: str, values: str) -> None:
    error = app.post_json(URL, {"model": "m", "input": "hi", name: {}}, status=400).json["error"]
    assert (error["param"], error["code"], error["message"]) == (
        name,
        "invalid_type",
        f"Invalid type for '{name}': expected one of {values}, but got an object instead.",
    )


def test_messages_have_moved_to_input(app: webtest.TestApp) -> None:
    body = {"model": "m", "input": "ping", "messages": [{"role": "user", "content": "ping"}]}
    assert app.post_json(URL, body, status=400).json["error"] == {
        "message": "Unsupported parameter: 'messages'. In the Responses API, this parameter has moved to 'input'. "
        "Try again with the new parameter. See the API documentation for more information: "
        "https://platform.openai.com/docs/api-reference/responses/create.",
        "type": "invalid_request_error",
        "param": None,
        "code": "unsupported_parameter",
    }


@pytest.mark.parametrize("penalty", ["presence_penalty", "frequency_penalty"])
def test_penalties_are_checked_and_refused_by_reasoning_models(make_app: Any, penalty: str) -> None:
    app = make_app({"MOKKU_STRICT": "1"})
    assert app.post_json(URL, {"model": "gpt-4o", "input": "hi", penalty: 0.5}).status_int == 200
    error = app.post_json(URL, {"model": "gpt-5", "input": "hi", penalty: 0.5}, status=400).json["error"]
    assert (error["param"], error["message"]) == (
        penalty,
        f"Unsupported parameter: '{penalty}' is not supported with this model.",
    )
    assert app.post_json(URL, {"model": "gpt-5", "input": "hi", penalty: 0}).status_int == 200
    error = app.post_json(URL, {"model": "gpt-4o", "input": "hi", penalty: "x"}, status=400).json["error"]
    assert error["message"] == f"Invalid type for '{penalty}': expected a decimal, but got a string instead."
    error = app.post_json(URL, {"model": "gpt-4o", "input": "hi", penalty: 3}, status=400).json["error"]
    assert (error["param"], error["code"]) == (penalty, "decimal_above_max_value")


def test_a_stored_response_is_served_as_it_was_answered(app: webtest.TestApp) -> None:
    created = app.post_json(URL, {"model": "gpt-4o", "input": "keep me"})
    assert app.get(f"{URL}/{created.json['id']}").body == created.body


def test_tool_choice_with_hosted_tools_only_and_none_without_tools(app: webtest.TestApp) -> None:
    hosted = [{"type": "web_search_preview"}, {"type": "file_search", "vector_store_ids": ["vs_1"]}]
    for choice in ("auto", "required"):
        result = create(app, input="find it", tools=hosted, tool_choice=choice)
        assert result["output"][0]["type"] == "message"
    assert create(app, input="plain", tool_choice="none")["output"][0]["content"][0]["text"] == "plain"


def test_required_after_a_function_output_calls_a_function_not_called_yet(app: webtest.TestApp) -> None:
    final = {"type": "function", "name": "final_result", "parameters": {"type": "object"}, "strict": False}
    loop = [
        {"role": "user", "content": "look it up"},
        {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "found"},
    ]
    result = create(app, input=loop, tools=[TOOL, final], tool_choice="required")
    assert [item["name"] for item in result["output"]] == ["final_result"]
    text = create(app, input=loop, tools=[TOOL, final], tool_choice="auto")
    assert text["output"][0]["content"][0]["text"] == "found"


def test_function_calls_and_outputs_are_paired_as_the_api_pairs_them(app: webtest.TestApp) -> None:
    orphan = {"type": "function_call_output", "call_id": "call_nowhere", "output": "found"}
    refused = app.post_json(URL, {"model": "gpt-4o", "input": [orphan]}, status=400).json
    validate(refused, "ErrorResponse")
    assert refused["error"] == {
        "message": "No tool call found for function call output with call_id call_nowhere.",
        "type": "invalid_request_error",
        "param": "input",
        "code": None,
    }
    # The call may be in this input, or in the stored response the new one continues.
    called = create(app, input="cats", tools=[TOOL])
    answer = {"type": "function_call_output", "call_id": called["output"][0]["call_id"], "output": "3 cats"}
    follow_up = create(app, input=[answer], tools=[TOOL], previous_response_id=called["id"])
    assert follow_up["output"][0]["content"][0]["text"] == "3 cats"
    app.post_json(
        URL, {"model": "gpt-4o", "input": [orphan], "previous_response_id": called["id"]}, status=400
    )
    # Nor a call in a conversation's items.
    conversation = app.post_json("/v1/conversations", {"items": called["output"]}).json["id"]
    assert (
        create(app, input=[answer], conversation=conversation)["output"][0]["content"][0]["text"] == "3 cats"
    )
    # A call must be answered before the conversation moves on to a new message.
    moved_on = app.post_json(
        URL, {"model": "gpt-4o", "input": "and dogs?", "previous_response_id": called["id"]}, status=400
    ).json["error"]
    assert moved_on == {
        "message": f"No tool output found for function call {called['output'][0]['call_id']}.",
        "type": "invalid_request_error",
        "param": "input",
        "code": None,
    }
    call = {"type": "function_call", "call_id": "call_x", "name": "lookup", "arguments": "{}"}
    app.post_json(URL, {"model": "gpt-4o", "input": [call, {"role": "user", "content": "hi"}]}, status=400)
    # The user's turn sent again before the output, as semantic-kernel's Responses agent does.
    again = create(
        app,
        input=[{"role": "user", "content": "cats"}, answer],
        tools=[TOOL],
        previous_response_id=called["id"],
    )
    assert again["status"] == "completed"
    assert create(app, input=[call, {"role": "user", "content": "hi"}, dict(answer, call_id="call_x")])
    # Answered in any order, after an assistant message too; a last call may wait for its answer.
    both = [
        call,
        dict(call, call_id="call_y"),
        dict(answer, call_id="call_y"),
        dict(answer, call_id="call_x"),
    ]
    assert (
        create(app, input=[*both, {"role": "user", "content": "next"}])["output"][0]["content"][0]["text"]
        == "next"
    )
    assistant = {"role": "assistant", "content": "Looking."}
    assert create(app, input=[call, assistant, dict(answer, call_id="call_x")])["status"] == "completed"
    assert create(app, input=[{"role": "user", "content": "go"}, call])["status"] == "completed"
    # An item reference may point at the call: not read, so not refused.
    referenced = [{"type": "item_reference", "id": "fc_elsewhere"}, orphan]
    assert create(app, input=referenced)["output"][0]["content"][0]["text"] == "found"
    # Its type is optional: an item with an id and no role is a reference, not a message without one.
    assert create(app, input=[{"id": "fc_elsewhere"}, orphan])["output"][0]["content"][0]["text"] == "found"


def test_max_output_tokens_cuts_a_function_call(app: webtest.TestApp) -> None:
    text = "a request long enough that its arguments outgrow sixteen tokens by far, as a model writes them"
    whole = create(app, input=text, tools=[TOOL])
    cut = create(app, input=text, tools=[TOOL], max_output_tokens=16)
    assert cut["status"] == "incomplete" and cut["incomplete_details"] == {"reason": "max_output_tokens"}
    (call,) = cut["output"]
    assert call["type"] == "function_call" and call["status"] == "incomplete"
    assert (
        whole["output"][0]["arguments"].startswith(call["arguments"]) and cut["usage"]["output_tokens"] == 16
    )
    streamed = events(app, input=text, tools=[TOOL], max_output_tokens=16)
    assert streamed[-1]["type"] == "response.incomplete"
    done = [e for e in streamed if e["type"] == "response.output_item.done"]
    assert done[0]["item"]["status"] == "incomplete" and done[0]["item"]["arguments"] == call["arguments"]


def test_input_tokens_are_what_the_response_would_count(app: webtest.TestApp) -> None:
    def counted(**body: Any) -> int:
        answer = app.post_json(URL + "/input_tokens", dict(body, model="gpt-4o")).json
        validate(answer, "TokenCountsResource")
        assert answer["object"] == "response.input_tokens"
        return answer["input_tokens"]

    first = create(app, input="Tell me a joke.", instructions="Be brief.")
    assert counted(input="Tell me a joke.", instructions="Be brief.") == first["usage"]["input_tokens"]
    later = create(app, input="Another.", previous_response_id=first["id"], tools=[TOOL])
    without = create(app, input="Another.", previous_response_id=first["id"])
    definitions = count(json.dumps([TOOL], separators=(",", ":")))
    assert later["usage"]["input_tokens"] == without["usage"]["input_tokens"] + definitions
    assert (
        counted(input="Another.", previous_response_id=first["id"], tools=[TOOL])
        == later["usage"]["input_tokens"]
    )
    # The input may be left out when the request continues a response; else it is required.
    assert counted(previous_response_id=first["id"]) > 0
    missing = app.post_json(URL + "/input_tokens", {"model": "gpt-4o"}, status=400).json["error"]
    assert missing["param"] == "input" and missing["code"] == "missing_required_parameter"
    bad_tool = app.post_json(
        URL + "/input_tokens", {"input": "x", "tools": [{"type": "function"}]}, status=400
    )
    assert bad_tool.json["error"]["param"] == "tools[0].name"


def test_compact_keeps_the_user_messages_and_folds_the_rest(app: webtest.TestApp) -> None:
    called = create(app, input="cats", tools=[TOOL])
    answer = {"type": "function_call_output", "call_id": called["output"][0]["call_id"], "output": "3 cats"}
    answered = create(app, input=[answer], previous_response_id=called["id"], tools=[TOOL])
    compacted = app.post_json(
        URL + "/compact", {"model": "gpt-4o", "previous_response_id": answered["id"], "input": "and dogs?"}
    ).json
    validate(compacted, "CompactResource")
    assert compacted["object"] == "response.compaction" and compacted["id"].startswith("resp_")
    *kept, folded = compacted["output"]
    assert [item["content"][0]["text"] for item in kept] == ["cats", "and dogs?"]
    assert folded["type"] == "compaction" and folded["id"].startswith("cmp_") and folded["encrypted_content"]
    usage = compacted["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
    # The compacted output is the next request's input, as the API has it used; the answer to a
    # call the compaction folded in is taken.
    later = {"type": "function_call_output", "call_id": "call_folded", "output": "done"}
    next_turn = create(app, input=[*compacted["output"], later], tools=[TOOL])
    assert next_turn["output"][0]["content"][0]["text"] == "done"
    # A request for a compaction is a request to the model: faults apply.
    refused = app.post_json(URL + "/compact", {"model": "credit-error", "input": "x"}, status=402).json
    assert refused["error"]["code"] == "insufficient_quota"


def test_a_stream_error_fault_sends_the_typed_error_event_then_the_failed_response(
    app: webtest.TestApp,
) -> None:
    """As the real API ends a stream that fails: ``error``, then ``response.failed``."""
    out = events(app, model="gpt-4o@stream_error:4", input="one two three")
    assert [e["type"] for e in out[:4]] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    fields = {"code": "server_error", "message": out[4]["message"], "param": None}
    assert out[4] == {
        "type": "error",
        "sequence_number": 4,
        "error": {"type": "server_error", **fields},  # as the real API sends it
        **fields,  # as the spec has it
    }
    assert "help.openai.com" in out[4]["message"]
    assert len(out) == 6 and out[5]["type"] == "response.failed"
    # At the stream's end the error takes the place (and the number) of the final event never sent.
    ended = events(app, model="gpt-4o@stream_error:1000", input="one two")  # which checks the numbers
    assert [event["type"] for event in ended[-2:]] == ["error", "response.failed"]
    failed = out[5]["response"]
    assert failed["id"] == out[0]["response"]["id"] and failed["status"] == "failed"
    assert failed["error"] == {"code": "server_error", "message": out[4]["message"]}
    stored = app.get(f"{URL}/{failed['id']}").json  # kept as failed, as the stream ended
    validate(stored, "Response")
    assert stored["status"] == "failed" and stored["error"] == failed["error"]


def test_a_background_stream_that_failed_is_streamed_again_as_it_went(app: webtest.TestApp) -> None:
    """``GET ?stream=true`` replays a background response's events: a failed one's up to its error,
    then the error and ``response.failed``, numbered as they went; the response reads failed."""
    went = events(app, model="gpt-4o@stream_error:4", input="one two three", background=True)
    response_id = went[0]["response"]["id"]
    replayed = parsed(app.get(f"{URL}/{response_id}?stream=true").body)
    assert replayed == went
    assert parsed(app.get(f"{URL}/{response_id}?stream=true&starting_after=3").body) == went[4:]
    assert app.get(f"{URL}/{response_id}").json == went[-1]["response"]
    cancelled = app.post(f"{URL}/{response_id}/cancel").json  # over: answered as it is
    assert cancelled["status"] == "failed"


def test_json_mode_follows_a_schema_in_the_instructions(app: webtest.TestApp) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    result = create(
        app,
        input="Paris, as JSON",
        instructions=f"Reply with JSON matching this schema: {json.dumps(schema)}",
        text={"format": {"type": "json_object"}},
    )
    assert json.loads(result["output"][0]["content"][0]["text"]) == {"city": "Paris, as JSON"}


def test_reasoning_models_take_no_temperature_or_top_p_but_the_default(app: webtest.TestApp) -> None:
    refused = app.post_json(URL, {"model": "o3", "input": "x", "temperature": 0.2}, status=400).json
    validate(refused, "ErrorResponse")
    assert refused["error"] == {
        "message": "Unsupported parameter: 'temperature' is not supported with this model.",
        "type": "invalid_request_error",
        "param": "temperature",
        "code": None,
    }
    narrow = app.post_json(URL, {"model": "gpt-5-mini", "input": "x", "top_p": 0.5}, status=400).json
    assert narrow["error"]["message"] == "Unsupported parameter: 'top_p' is not supported with this model."
    assert narrow["error"]["param"] == "top_p"
    assert create(app, model="gpt-5", input="x", temperature=1, top_p=1)["status"] == "completed"
    unreasoned = create(
        app, model="gpt-5.2", input="x", temperature=0.2, top_p=0.5, reasoning={"effort": "none"}
    )
    assert unreasoned["status"] == "completed"
    assert create(app, model="gpt-4o", input="x", temperature=0.2)["status"] == "completed"


def test_a_reasoning_model_answers_its_reasoning_item_first(app: webtest.TestApp) -> None:
    """As the real API: the reasoning item (its summary when one is asked for, its encrypted
    content) comes before the answer, and ``reasoning`` echoes the effort and summary asked for."""
    answer = create(app, model="o4-mini", input="think", reasoning={"effort": "low", "summary": "auto"})
    reasoning, message = answer["output"]
    assert reasoning["type"] == "reasoning" and reasoning["id"].startswith("rs_")
    assert reasoning["summary"] == [{"type": "summary_text", "text": REASONING_SUMMARY}]
    assert reasoning["encrypted_content"]
    assert message["content"][0]["text"] == "think"
    assert answer["reasoning"] == {"effort": "low", "summary": "auto"}
    unsummed = create(app, model="o4-mini", input="think")["output"][0]
    assert unsummed["summary"] == [] and unsummed["encrypted_content"]
    assert create(app, model="gpt-5", input="x")["reasoning"] == {"effort": "medium", "summary": None}
    # No reasoning item without reasoning: another model, or the effort none.
    plain = create(app, model="gpt-4o", input="x")
    assert [item["type"] for item in plain["output"]] == ["message"]
    assert plain["reasoning"] == {"effort": None, "summary": None}
    unreasoned = create(app, model="gpt-5.2", input="x", reasoning={"effort": "none"})
    assert [item["type"] for item in unreasoned["output"]] == ["message"]
    # Handed back on the next turn, unstored, as clients that keep their own context do.
    follow = create(
        app, model="o4-mini", store=False, input=[*answer["output"], {"role": "user", "content": "again"}]
    )
    assert [item["type"] for item in follow["output"]] == ["reasoning", "message"]
    assert follow["output"][1]["content"][0]["text"] == "again"
    calls = create(app, model="o3", input="q", tools=[TOOL], tool_choice="required")
    assert [item["type"] for item in calls["output"]] == ["reasoning", "function_call"]


def test_a_reasoning_summary_streams_in_parts(app: webtest.TestApp) -> None:
    """The summary's part added, its text in deltas, done, part done, all inside the reasoning item's
    added and done (``events`` checks each against the spec)."""
    streamed = events(app, model="o3", input="think", reasoning={"summary": "detailed"})
    item_id = streamed[-1]["response"]["output"][0]["id"]
    kinds = [event["type"] for event in streamed]
    first = kinds.index("response.output_item.added")
    last = kinds.index("response.output_item.done")
    deltas = kinds.count("response.reasoning_summary_text.delta")
    assert deltas > 1 and kinds[first : last + 1] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        *["response.reasoning_summary_text.delta"] * deltas,
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
    ]
    assert streamed[first]["item"]["summary"] == []
    summary = streamed[first + 1 : last]
    assert all(event["item_id"] == item_id and event["summary_index"] == 0 for event in summary)
    assert summary[0]["part"] == {"type": "summary_text", "text": ""}
    assert "".join(event["delta"] for event in summary[1:-2]) == REASONING_SUMMARY
    assert summary[-2]["text"] == REASONING_SUMMARY
    assert summary[-1]["part"] == {"type": "summary_text", "text": REASONING_SUMMARY}
    assert streamed[last]["item"]["summary"] == [{"type": "summary_text", "text": REASONING_SUMMARY}]


@pytest.mark.parametrize(
    "model, effort",
    [
        ("gpt-5.4", "none"),
        ("gpt-5.1-2025-11-13", "none"),
        ("gpt-5.6-luna", "medium"),
        ("gpt-5.5-2026-04-23", "medium"),
        ("gpt-5", "medium"),
        ("gpt-6-sol", "medium"),
        ("gpt-5.5-pro", "high"),
        ("gpt-4.1", None),
    ],
)
def test_a_model_answers_at_its_default_effort(
    app: webtest.TestApp, model: str, effort: Optional[str]
) -> None:
    """gpt-5.1, gpt-5.2 and gpt-5.4 reason only when asked, so take a temperature; the others think at medium,
    and the pro models at high."""
    answer = create(app, model=model, input="x")
    assert answer["reasoning"] == {"effort": effort, "summary": None}
    kinds = [item["type"] for item in answer["output"]]
    assert kinds == (["message"] if effort in (None, "none") else ["reasoning", "message"])
    if effort in (None, "none"):
        assert create(app, model=model, input="x", temperature=0.3, top_p=0.5)["status"] == "completed"
    else:
        refused = app.post_json(URL, {"model": model, "input": "x", "temperature": 0.3}, status=400)
        assert refused.json["error"]["param"] == "temperature"


def test_reasoning_context_and_mode_are_echoed_as_used(app: webtest.TestApp) -> None:
    asked = {"effort": "high", "context": "auto", "mode": "pro"}
    for model, context in (("gpt-5.6-sol", "all_turns"), ("gpt-5.5", "current_turn")):
        answer = create(app, model=model, input="x", reasoning=asked)
        validate(answer, "Response")
        assert answer["reasoning"] == {"effort": "high", "summary": None, "context": context, "mode": "pro"}
    kept = create(app, model="gpt-5.5", input="x", reasoning={"context": "all_turns"})["reasoning"]
    assert kept["context"] == "all_turns" and "mode" not in kept
    bad = {"model": "gpt-5.5", "input": "x", "reasoning": {"context": "every_turn"}}
    refused = app.post_json(URL, bad, status=400).json
    assert refused["error"]["param"] == "reasoning.context"


def test_a_reasoning_items_stream_events(app: webtest.TestApp) -> None:
    sequence = events(app, model="o3", input="one two")
    assert [e["type"] for e in sequence] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    reasoning = sequence[-1]["response"]["output"][0]
    assert sequence[2]["item"] == sequence[3]["item"] == reasoning and sequence[3]["output_index"] == 0
    assert reasoning["type"] == "reasoning"
    assert {e["output_index"] for e in sequence[4:11]} == {1}


def test_the_ultrafast_tier_is_the_responses_apis_own(app: webtest.TestApp) -> None:
    answer = app.post_json(
        "/v1/responses", {"model": "gpt-5.6-sol", "input": "hi", "service_tier": "ultrafast"}
    ).json
    assert answer["service_tier"] == "ultrafast"
    validate(answer, "Response")
    fast = app.post_json("/v1/responses", {"model": "gpt-5", "input": "hi", "service_tier": "fast"}).json
    assert fast["service_tier"] == "priority"
    error = app.post_json(
        "/v1/chat/completions",
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "service_tier": "ultrafast"},
        status=400,
    ).json["error"]
    assert error["param"] == "service_tier"


def test_prompt_cache_options_are_checked_and_listed_as_applied(app: webtest.TestApp) -> None:
    """gpt-5.6 and later list the options applied (``ttl`` and ``mode``, their defaults when not
    sent); a value the API does not take is a 400 naming the field, on chat too."""
    assert create(app, model="gpt-5.6-sol", input="hi")["prompt_cache_options"] == {
        "ttl": "30m",
        "mode": "implicit",
    }
    asked = {"mode": "explicit", "comparison_response_id": "resp_1"}
    listed = create(app, model="gpt-5.6-sol", input="hi", prompt_cache_options=asked)["prompt_cache_options"]
    assert listed == dict(asked, ttl="30m")
    assert "prompt_cache_options" not in create(app, input="hi", prompt_cache_options={"mode": "implicit"})
    for url, body in (
        (URL, {"input": "hi"}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
    ):
        for options, param in (
            ({"mode": "bogus"}, "mode"),
            ({"ttl": "1h"}, "ttl"),
            ({"prewarm": "yes"}, "prewarm"),
        ):
            refused = app.post_json(
                url, dict(body, model="gpt-5.6-sol", prompt_cache_options=options), status=400
            )
            assert refused.json["error"]["param"] == f"prompt_cache_options.{param}"


def test_truncation_auto_drops_the_oldest_items_to_fit_the_window(
    make_app: Callable[..., webtest.TestApp],
) -> None:
    """With windows on, a conversation that outgrew its window is refused unless ``truncation`` is
    ``auto``, which drops the oldest items until the input fits, as the spec says."""
    app = make_app({"MOKKU_CONTEXT_WINDOW": "200"})
    words = " ".join(["word"] * 70)
    first = app.post_json(URL, {"model": "gpt-4o", "input": words, "max_output_tokens": 16}).json
    second = app.post_json(
        URL, {"model": "gpt-4o", "input": words, "previous_response_id": first["id"], "max_output_tokens": 16}
    ).json
    asked = {
        "model": "gpt-4o",
        "input": "the last turn",
        "previous_response_id": second["id"],
        "max_output_tokens": 16,
    }
    refused = app.post_json(URL, asked, status=400).json["error"]
    assert refused["code"] == "context_length_exceeded"
    kept = app.post_json(URL, dict(asked, truncation="auto")).json
    validate(kept, "Response")
    assert kept["truncation"] == "auto" and kept["output"][0]["content"][0]["text"] == "the last turn"
    assert kept["usage"]["input_tokens"] + 16 <= 200
    # Tool definitions take their share of the window too: fewer items are kept.
    with_tools = app.post_json(URL, dict(asked, truncation="auto", tools=[TOOL], tool_choice="none")).json
    assert with_tools["usage"]["input_tokens"] + 16 <= 200
    assert with_tools["output"][0]["content"][0]["text"] == "the last turn"
    # Counting the input tokens keeps what the response would.
    unbounded = {"model": "gpt-4o", "input": words, "previous_response_id": second["id"]}
    for extra in ({}, {"tools": [TOOL], "tool_choice": "none"}):
        counted = app.post_json(URL + "/input_tokens", dict(unbounded, truncation="auto", **extra)).json
        answered = app.post_json(URL, dict(unbounded, truncation="auto", **extra)).json
        assert counted["input_tokens"] == answered["usage"]["input_tokens"] <= 200
    whole = app.post_json(URL + "/input_tokens", unbounded).json["input_tokens"]
    assert whole > 200


@pytest.mark.parametrize("background", [False, True])
def test_a_stream_opens_before_its_time_to_first_token(app: webtest.TestApp, background: bool) -> None:
    """``response.created`` (and ``queued``) and ``response.in_progress`` are the first write, as the
    real API sends them as soon as it takes the request; the output follows the wait."""
    body = json.dumps({"model": "gpt-4o", "input": "a b", "stream": True, "background": background})
    request = webob.Request.blank(
        URL,
        method="POST",
        body=body.encode(),
        content_type="application/json",
        headers={"X-Mokku-Latency-Ms": "50"},
    )
    statuses: List[str] = []
    writes = app.app(request.environ, lambda status, headers, exc_info=None: statuses.append(status))
    try:
        first = [event["type"] for event in parsed(next(iter(writes)))]
        rest = [event["type"] for event in parsed(b"".join(writes))]
    finally:
        writes.close()
    # A background response stays queued for the wait, as reading it back says meanwhile.
    opening = (
        ["response.created", "response.queued"]
        if background
        else ["response.created", "response.in_progress"]
    )
    assert statuses == ["200 OK"] and first == opening
    assert rest[0] == ("response.in_progress" if background else "response.output_item.added")
    assert rest[-1] == "response.completed"


def test_include_in_a_query_is_checked(app: webtest.TestApp) -> None:
    """As the SDKs send it (``include[]=...``), on every route whose query takes it."""
    made = create(app, input="hi")
    conversation = app.post_json("/v1/conversations", {"items": [{"role": "user", "content": "hi"}]}).json
    item = app.get(f"/v1/conversations/{conversation['id']}/items").json["data"][0]["id"]
    for path in (
        f"{URL}/{made['id']}",
        f"{URL}/{made['id']}/input_items",
        f"/v1/conversations/{conversation['id']}/items",
        f"/v1/conversations/{conversation['id']}/items/{item}",
    ):
        app.get(f"{path}?include[]=message.output_text.logprobs&include=reasoning.encrypted_content")
        error = app.get(f"{path}?include[]=message.output_text.logprobs&include[]=bogus", status=400).json
        validate(error, "ErrorResponse")
        assert (error["error"]["param"], error["error"]["code"]) == ("include[1]", "invalid_value")
    added = f"/v1/conversations/{conversation['id']}/items?include[]=bogus"
    app.post_json(added, {"items": [{"role": "user", "content": "more"}]}, status=400)


def test_an_item_sent_without_an_id_gets_one_of_its_type(app: webtest.TestApp) -> None:
    thought = {"type": "reasoning", "summary": []}
    made = create(
        app, input=[{"role": "user", "content": "hi"}, thought, {"role": "user", "content": "and?"}]
    )
    listed = app.get(f"{URL}/{made['id']}/input_items?order=asc").json["data"]
    assert [item["id"].split("_")[0] for item in listed] == ["msg", "rs", "msg"]
