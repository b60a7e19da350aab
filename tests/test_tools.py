"""Tool calls, structured outputs and logprobs on chat completions, in-process."""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Optional

import jsonschema
import pydantic
import pytest
import webtest

from mokku import config
from mokku.api import tokens
from mokku.server.app import App

from . import sse
from .spec import assert_invalid_request, validate

URL = "/v1/chat/completions"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
    },
}
ASK = [{"role": "user", "content": "Paris"}]


def chat(app: webtest.TestApp, **body: Any) -> Dict[str, Any]:
    body.setdefault("model", "gpt-4o")
    body.setdefault("messages", ASK)
    result = app.post_json(URL, body).json
    validate(result, "CreateChatCompletionResponse")
    return result


def test_tool_definitions_count_as_prompt_tokens(app: webtest.TestApp) -> None:
    """As the real API bills them: here, the tokens of their compact JSON."""
    plain = chat(app)["usage"]["prompt_tokens"]
    definitions = tokens.count(json.dumps([WEATHER, TIME], separators=(",", ":")))
    assert definitions > 50
    for _ in range(2):  # the second time from the cache of counted definitions
        assert chat(app, tools=[WEATHER, TIME])["usage"]["prompt_tokens"] == plain + definitions
    legacy = [WEATHER["function"]]
    with_functions = chat(app, functions=legacy)["usage"]["prompt_tokens"]
    assert with_functions == plain + tokens.count(json.dumps(legacy, separators=(",", ":")))
    streamed = app.post_json(
        URL,
        {
            "model": "gpt-4o",
            "messages": ASK,
            "tools": [WEATHER, TIME],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert sse.parse(streamed.body)[-1]["usage"]["prompt_tokens"] == plain + definitions


def test_auto_calls_the_first_tool(app: webtest.TestApp) -> None:
    body = chat(app, tools=[WEATHER, TIME])
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] is None
    (call,) = message["tool_calls"]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    arguments = json.loads(call["function"]["arguments"])
    jsonschema.validate(arguments, WEATHER["function"]["parameters"])
    assert arguments["city"] == "Paris"


def test_named_choice_and_parallel_calls(app: webtest.TestApp) -> None:
    forced = chat(
        app, tools=[WEATHER, TIME], tool_choice={"type": "function", "function": {"name": "get_time"}}
    )
    assert [c["function"]["name"] for c in forced["choices"][0]["message"]["tool_calls"]] == ["get_time"]
    parallel = chat(app, tools=[WEATHER, TIME], parallel_tool_calls=True, tool_choice="required")
    calls = parallel["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    assert len({c["id"] for c in calls}) == 2


def test_allowed_tools_lets_the_reply_call_only_those_listed(app: webtest.TestApp) -> None:
    """Chat nests the list under ``allowed_tools``; the Responses API has it flat. Either way the
    reply calls a listed function, and ``auto`` with none listed answers with text."""
    only_time = {"type": "function", "function": {"name": "get_time"}}
    for mode in ("auto", "required"):
        choice = {"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": [only_time]}}
        body = chat(app, tools=[WEATHER, TIME], tool_choice=choice)
        assert [c["function"]["name"] for c in body["choices"][0]["message"]["tool_calls"]] == ["get_time"]
    nothing = {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}
    assert (
        chat(app, tools=[WEATHER, TIME], tool_choice=nothing)["choices"][0]["message"]["content"] == "Paris"
    )
    flat = [
        {"type": "function", "name": t["function"]["name"], "parameters": t["function"]["parameters"]}
        for t in (WEATHER, TIME)
    ]
    responses_choice = {
        "type": "allowed_tools",
        "mode": "required",
        "tools": [{"type": "function", "name": "get_time"}],
    }
    answer = app.post_json(
        "/v1/responses", {"model": "gpt-4o", "input": "Paris", "tools": flat, "tool_choice": responses_choice}
    ).json
    validate(answer, "Response")
    assert [item["name"] for item in answer["output"]] == ["get_time"] and answer[
        "tool_choice"
    ] == responses_choice
    bad = {"type": "allowed_tools", "allowed_tools": {"mode": "sometimes", "tools": []}}
    error = app.post_json(
        URL, {"model": "gpt-4o", "messages": ASK, "tools": [WEATHER], "tool_choice": bad}, status=400
    ).json
    assert error["error"]["param"] == "tool_choice.allowed_tools.mode"


def test_after_a_handoff_the_agent_acts_on_the_request_and_never_hands_it_back(app: webtest.TestApp) -> None:
    """A ``transfer_to_<agent>`` result is no answer to echo: the agent handed to calls its own tool
    for the user's request, or answers it; it does not call a handoff again (agents would bounce)."""
    back = {"type": "function", "function": {"name": "transfer_to_triage", "parameters": {"type": "object"}}}
    handed = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "transfer_to_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"assistant": "weather"}'},
    ]
    acting = chat(app, messages=handed, tools=[back, WEATHER])["choices"][0]["message"]
    assert [call["function"]["name"] for call in acting["tool_calls"]] == ["get_weather"]
    assert json.loads(acting["tool_calls"][0]["function"]["arguments"])["city"] == "Paris"
    assert chat(app, messages=handed, tools=[back])["choices"][0]["message"]["content"] == "Paris"


def _call(call_id: str, name: str, arguments: str = "{}") -> Dict[str, Any]:
    function = {"name": name, "arguments": arguments}
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": call_id, "type": "function", "function": function}],
    }


def test_llamaindex_handoff_passes_the_request_on(app: webtest.TestApp) -> None:
    """LlamaIndex's agents hand over with a tool named ``handoff`` (``handOff`` in TypeScript)."""
    for name in ("handoff", "handOff"):
        handoff = {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
        handed = [
            *ASK,
            _call("call_1", name, '{"to_agent": "WeatherAgent"}'),
            {
                "role": "tool",
                "tool_call_id": "call_1",
                "content": "Agent WeatherAgent is now handling the request.",
            },
        ]
        acting = chat(app, messages=handed, tools=[handoff, WEATHER])["choices"][0]["message"]
        assert [call["function"]["name"] for call in acting["tool_calls"]] == ["get_weather"]


# LlamaIndex's handoff tool, as its AgentWorkflow describes it to an agent that may hand to two others.
LLAMA_HANDOFF = {
    "name": "handoff",
    "description": "Useful for handing off to another agent.\nCurrently available agents:\n"
    "{'WeatherAgent': 'Tells the weather', \"MathAgent\": 'Does sums'}\n",
    "parameters": {
        "type": "object",
        "properties": {"to_agent": {"type": "string"}, "reason": {"type": "string"}},
        "required": ["to_agent", "reason"],
    },
}


def test_a_llamaindex_handoff_hands_to_an_agent_its_description_lists(app: webtest.TestApp) -> None:
    """Its ``to_agent`` names an agent of the workflow (the first listed), as a model's would: an
    echoed name would be "not found", and the handoff would never happen. On every dialect."""
    called = chat(app, tools=[{"type": "function", "function": LLAMA_HANDOFF}])["choices"][0]["message"]
    arguments = json.loads(called["tool_calls"][0]["function"]["arguments"])
    assert arguments["to_agent"] == "WeatherAgent" and arguments["reason"] == "Paris"
    flat = {"type": "function", **LLAMA_HANDOFF}
    response = app.post_json("/v1/responses", {"model": "gpt-4o", "input": "Paris", "tools": [flat]}).json
    assert json.loads(response["output"][0]["arguments"])["to_agent"] == "WeatherAgent"
    anthropic = {k: v for k, v in LLAMA_HANDOFF.items() if k != "parameters"}
    anthropic["input_schema"] = LLAMA_HANDOFF["parameters"]
    message = app.post_json(
        "/v1/messages",
        {
            "model": "claude-haiku-4-5",
            "max_tokens": 99,
            "messages": [{"role": "user", "content": "Paris"}],
            "tools": [anthropic],
        },
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
    ).json
    assert message["content"][0]["input"]["to_agent"] == "WeatherAgent"
    gemini = {
        "functionDeclarations": [
            dict(LLAMA_HANDOFF, parameters={"type": "OBJECT", "properties": {"to_agent": {"type": "STRING"}}})
        ]
    }
    answer = app.post_json(
        "/v1beta/models/gemini-2.5-flash:generateContent",
        {"contents": [{"role": "user", "parts": [{"text": "Paris"}]}], "tools": [gemini]},
        headers={"x-goog-api-key": "k"},
    ).json
    assert answer["candidates"][0]["content"]["parts"][0]["functionCall"]["args"] == {
        "to_agent": "WeatherAgent"
    }
    narrow = json.loads(json.dumps(LLAMA_HANDOFF))  # a to_agent no listed name might satisfy: as sent
    narrow["parameters"]["properties"]["to_agent"]["maxLength"] = 2
    called = chat(app, tools=[{"type": "function", "function": narrow}])["choices"][0]["message"]
    assert len(json.loads(called["tool_calls"][0]["function"]["arguments"])["to_agent"]) <= 2
    plain = dict(LLAMA_HANDOFF, description="Hand off.")  # no agents listed: the echo, as before
    called = chat(app, tools=[{"type": "function", "function": plain}])["choices"][0]["message"]
    assert json.loads(called["tool_calls"][0]["function"]["arguments"])["to_agent"] == "Paris"


HANDED_BACK = [
    {"role": "user", "content": "Weather in Paris?"},
    _call("call_1", "transfer_to_weather_expert"),
    {"role": "tool", "tool_call_id": "call_1", "content": "Successfully transferred to weather_expert"},
    {"role": "assistant", "content": "Sunny in Paris", "name": "weather_expert"},
    _call("call_2", "transfer_back_to_supervisor"),
    {"role": "tool", "tool_call_id": "call_2", "content": "Successfully transferred back to supervisor"},
]


# As langgraph-supervisor writes the hand-back: its call beside words of its own.
WORDED_HAND_BACK = [
    *HANDED_BACK[:4],
    dict(_call("call_2", "transfer_back_to_supervisor"), content="Transferring back to supervisor"),
    HANDED_BACK[5],
]


@pytest.mark.parametrize("conversation", [HANDED_BACK, WORDED_HAND_BACK])
def test_a_supervisor_handed_back_passes_on_the_answer_it_got(
    app: webtest.TestApp, conversation: List[Dict[str, Any]]
) -> None:
    """LangGraph's supervisor: after ``transfer_back_to_supervisor`` the supervisor answers with what
    the agent it handed to said, not with the hand-back's own result or words."""
    handoff = {
        "type": "function",
        "function": {"name": "transfer_to_weather_expert", "parameters": {"type": "object"}},
    }
    body = chat(app, messages=conversation, tools=[handoff])
    assert body["choices"][0]["message"]["content"] == "Sunny in Paris"
    assert body["choices"][0]["finish_reason"] == "stop"
    items: List[Dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
    for message in conversation[1:]:
        if message["role"] == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message["tool_call_id"],
                    "output": message["content"],
                }
            )
        elif message.get("tool_calls"):
            if message.get("content"):
                items.append({"role": "assistant", "content": message["content"]})
            (call,) = message["tool_calls"]
            items.append({"type": "function_call", "call_id": call["id"], **call["function"]})
        else:
            items.append({"role": "assistant", "content": message["content"]})
    flat = {"type": "function", "name": "transfer_to_weather_expert", "parameters": {"type": "object"}}
    response = app.post_json("/v1/responses", {"model": "gpt-4o", "input": items, "tools": [flat]}).json
    assert response["output"][0]["content"][0]["text"] == "Sunny in Paris"


def test_none_and_tool_results_answer_with_text(app: webtest.TestApp) -> None:
    assert chat(app, tools=[WEATHER], tool_choice="none")["choices"][0]["message"]["content"] == "Paris"
    loop = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "22 degrees and sunny"},
    ]
    body = chat(app, tools=[WEATHER], messages=loop)
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["message"]["content"] == "22 degrees and sunny"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice",
        ),
        ({"tool_choice": "auto"}, "tool_choice"),
        ({"tool_choice": 7}, "tool_choice"),
        ({"parallel_tool_calls": True}, "parallel_tool_calls"),  # only with tools, as the real API
        ({"parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": "get_weather"}},
            "tool_choice.function",
        ),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": ["x"]}},
            "tool_choice.function",
        ),
        (
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "f",
                            "parameters": {"type": "string", "minLength": 3, "maxLength": 1},
                        },
                    }
                ]
            },
            "tools[0].function.parameters",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": 5}}}]},
            "tools[0].function.parameters",
        ),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"enum": []}},
                }
            },
            "response_format.json_schema.schema",
        ),
        *(  # the name the spec allows: a-z, A-Z, 0-9, _ and -, at most 64
            (
                {"response_format": {"type": "json_schema", "json_schema": {"name": name, "schema": {}}}},
                "response_format.json_schema.name",
            )
            for name in ("a b", "n" * 65, "", "café")
        ),
        ({"parallel_tool_calls": "yes", "tools": [WEATHER]}, "parallel_tool_calls"),
    ],
)
def test_tool_errors(app: webtest.TestApp, extra: Dict[str, Any], param: str) -> None:
    response = app.post_json(URL, {"model": "m", "messages": ASK, **extra}, status=400)
    validate(response.json, "ErrorResponse")
    assert response.json["error"]["param"] == param


def test_stream_tool_calls(app: webtest.TestApp) -> None:
    body = app.post_json(
        URL,
        {
            "model": "m",
            "messages": ASK,
            "tools": [WEATHER, TIME],
            "parallel_tool_calls": True,
            "stream": True,
        },
    ).body
    chunks = sse.parse(body)
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse")
    first = chunks[0]["choices"][0]["delta"]
    assert first["role"] == "assistant"
    head = first["tool_calls"][0]
    assert (
        head["index"] == 0
        and head["id"].startswith("call_")
        and head["function"] == {"name": "get_weather", "arguments": ""}
    )
    arguments: Dict[int, str] = {}
    for chunk in chunks:
        for call in chunk["choices"][0]["delta"].get("tool_calls", []):
            arguments[call["index"]] = arguments.get(call["index"], "") + call["function"].get(
                "arguments", ""
            )
    assert set(arguments) == {0, 1}
    jsonschema.validate(json.loads(arguments[0]), WEATHER["function"]["parameters"])
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_the_token_limit_cuts_calls_as_it_cuts_text(app: webtest.TestApp) -> None:
    # Two calls; get_weather's name is 4 tokens.
    whole = chat(app, tools=[WEATHER, TIME], tool_choice="required", parallel_tool_calls=True)
    first, second = (call["function"] for call in whole["choices"][0]["message"]["tool_calls"])
    assert whole["usage"]["completion_tokens"] > 8
    for limit in (5, 8):
        cut = chat(
            app, tools=[WEATHER, TIME], tool_choice="required", parallel_tool_calls=True, max_tokens=limit
        )
        choice = cut["choices"][0]
        assert choice["finish_reason"] == "length" and cut["usage"]["completion_tokens"] == limit
        (call,) = choice["message"]["tool_calls"]  # the second call never began
        assert call["function"]["name"] == first["name"]
        assert first["arguments"].startswith(call["function"]["arguments"])
        assert tokens.count(call["function"]["arguments"]) == limit - 4
    # Not even the first name fits: no call, no text.
    nothing = chat(app, tools=[WEATHER], max_tokens=3)["choices"][0]
    assert nothing["finish_reason"] == "length" and "tool_calls" not in nothing["message"]
    assert not nothing["message"]["content"]
    # Enough for the first call and its name alone: the second is begun with no arguments.
    enough = whole["usage"]["completion_tokens"] - tokens.count(second["arguments"])
    cut = chat(
        app, tools=[WEATHER, TIME], tool_choice="required", parallel_tool_calls=True, max_tokens=enough
    )
    calls = cut["choices"][0]["message"]["tool_calls"]
    assert [call["function"] for call in calls] == [first, {"name": second["name"], "arguments": ""}]
    assert cut["choices"][0]["finish_reason"] == "length"
    # A limit the calls fit in changes nothing; the stream is cut the same way.
    fits = chat(app, tools=[WEATHER], max_tokens=whole["usage"]["completion_tokens"])
    assert fits["choices"][0]["finish_reason"] == "tool_calls"
    streamed = sse.parse(
        app.post_json(
            URL, {"model": "m", "messages": ASK, "tools": [WEATHER], "max_tokens": 8, "stream": True}
        ).body
    )
    for chunk in streamed:
        validate(chunk, "CreateChatCompletionStreamResponse")
    arguments = "".join(
        call["function"].get("arguments", "")
        for chunk in streamed
        for call in chunk["choices"][0]["delta"].get("tool_calls", [])
    )
    assert first["arguments"].startswith(arguments) and tokens.count(arguments) == 8 - 4
    assert streamed[-1]["choices"][0]["finish_reason"] == "length"


def test_legacy_functions(app: webtest.TestApp) -> None:
    functions = [WEATHER["function"]]
    body = chat(app, functions=functions)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "function_call"
    assert choice["message"]["function_call"]["name"] == "get_weather"
    jsonschema.validate(
        json.loads(choice["message"]["function_call"]["arguments"]), WEATHER["function"]["parameters"]
    )
    assert chat(app, functions=functions, function_call="none")["choices"][0]["message"]["content"] == "Paris"
    streamed = sse.parse(
        app.post_json(URL, {"model": "m", "messages": ASK, "functions": functions, "stream": True}).body
    )
    assert streamed[0]["choices"][0]["delta"]["function_call"] == {"name": "get_weather", "arguments": ""}
    assert streamed[-1]["choices"][0]["finish_reason"] == "function_call"


@pytest.mark.parametrize(
    ("extra", "param", "code", "message"),
    [
        (
            {"function_call": 5},
            "function_call",
            "invalid_type",
            r"expected one of one of 'none' or 'auto' or object, but got an integer",
        ),
        (
            {"function_call": "required"},
            "function_call",
            "invalid_value",
            r"^Invalid value: 'required'\. Supported values are: 'none' and 'auto'\.$",
        ),
        (
            {"functions": None, "function_call": "auto"},
            "function_call",
            None,
            r"'function_call' is only allowed when 'functions' are specified",
        ),
        (
            {"functions": [{"name": "f", "description": 5}]},
            "functions[0].description",
            "invalid_type",
            r"expected a string",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "description": 5}}]},
            "tools[0].function.description",
            "invalid_type",
            r"expected a string",
        ),
        (
            {
                "tools": [
                    {
                        "type": "custom",
                        "custom": {
                            "name": "c",
                            "format": {"type": "grammar", "grammar": {"definition": "x"}},
                        },
                    }
                ]
            },
            "tools[0].custom.format.grammar.syntax",
            "missing_required_parameter",
            r"^Missing required parameter",
        ),
        (
            {"tools": [{"type": "custom", "custom": {"name": "c", "format": {"type": "regex"}}}]},
            "tools[0].custom.format.type",
            "invalid_value",
            r"Supported values are: 'text' and 'grammar'\.$",
        ),
    ],
)
def test_legacy_function_call_descriptions_and_formats_are_checked(
    app: webtest.TestApp, extra: Dict[str, Any], param: str, code: Optional[str], message: str
) -> None:
    body = {"model": "m", "messages": ASK, "functions": [WEATHER["function"]], **extra}
    assert_invalid_request(app.post_json(URL, body, status=400).json, param, code, message)


@pytest.mark.parametrize(
    "model",
    [
        "gpt-4",
        "gpt-4-turbo",
        "gpt-3.5-turbo-0125",
        "gpt-4o-2024-05-13",
        "o1-mini",
        "ft:gpt-3.5-turbo-0125:org::x1",
    ],
)
def test_json_schema_is_refused_by_models_without_structured_outputs(
    app: webtest.TestApp, model: str
) -> None:
    """As the real API answers (and LangChain tells its users, who then pick function calling); their
    JSON mode still answers."""
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    asked = {"model": model, "messages": [{"role": "user", "content": "as json"}]}
    wanted = {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}
    error = app.post_json("/v1/chat/completions", dict(asked, response_format=wanted), status=400).json[
        "error"
    ]
    assert error == {
        "message": "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.",
        "type": "invalid_request_error",
        "param": "response_format",
        "code": None,
    }
    assert app.post_json("/v1/chat/completions", dict(asked, response_format={"type": "json_object"})).json
    flat = {"type": "json_schema", "name": "a", "schema": schema}
    text = {"model": model, "input": "as json", "text": {"format": flat}}
    error = app.post_json("/v1/responses", text, status=400).json["error"]
    assert error["param"] == "text.format" and "'text.format' of type 'json_schema'" in error["message"]
    assert app.post_json("/v1/chat/completions", dict(asked, model="gpt-4o", response_format=wanted)).json


@pytest.mark.parametrize("properties", [[1, 2], "x", 5, True])
def test_a_function_whose_properties_are_not_an_object_is_a_400(
    app: webtest.TestApp, properties: Any
) -> None:
    for name in ("get_x", "handoff"):
        function = {"name": name, "parameters": {"type": "object", "properties": properties}}
        body = {
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": function}],
        }
        error = app.post_json(
            "/v1/chat/completions", dict(body, model="gpt-4o", tool_choice="required"), status=400
        ).json["error"]
        assert (
            error["param"] == "tools[0].function.parameters" and "cannot make arguments" in error["message"]
        )


def test_json_schema_output(app: webtest.TestApp) -> None:
    schema = {
        "type": "object",
        "properties": {
            "answer": {"type": "string"},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["answer", "confidence", "tags"],
        "additionalProperties": False,
    }
    body = chat(
        app,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "result", "schema": schema, "strict": True},
        },
    )
    content = json.loads(body["choices"][0]["message"]["content"])
    jsonschema.validate(content, schema)
    assert content["answer"] == "Paris"
    again = chat(
        app, response_format={"type": "json_schema", "json_schema": {"name": "result", "schema": schema}}
    )
    assert again["choices"][0]["message"]["content"] == body["choices"][0]["message"]["content"]


def test_json_object_output(app: webtest.TestApp) -> None:
    told = [{"role": "system", "content": "Answer in JSON."}, *ASK]
    body = chat(app, response_format={"type": "json_object"}, messages=told)
    assert json.loads(body["choices"][0]["message"]["content"]) == {"echo": "Paris"}
    # Not told to write JSON: the real API's 400.
    refused = app.post_json(
        URL, {"model": "gpt-4o", "messages": ASK, "response_format": {"type": "json_object"}}, status=400
    ).json
    validate(refused, "ErrorResponse")
    assert refused["error"] == {
        "message": "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": None,
    }
    # Gemini's OpenAI compatibility has no such rule.
    compat = {"model": "gemini-2.5-flash", "messages": ASK, "response_format": {"type": "json_object"}}
    answer = app.post_json(
        "/v1beta/openai/chat/completions", compat, headers={"Authorization": "Bearer g"}
    ).json
    assert json.loads(answer["choices"][0]["message"]["content"]) == {"echo": "Paris"}


def test_logprobs(app: webtest.TestApp) -> None:
    body = chat(app, messages=[{"role": "user", "content": "Hello, world"}], logprobs=True, top_logprobs=3)
    logprobs = body["choices"][0]["logprobs"]
    assert [entry["token"] for entry in logprobs["content"]] == ["Hello", ",", " world"]
    for entry in logprobs["content"]:
        assert entry["bytes"] == list(entry["token"].encode())
        assert len(entry["top_logprobs"]) == 3
        assert entry["top_logprobs"][0]["token"] == entry["token"]
        assert entry["logprob"] == max(alt["logprob"] for alt in entry["top_logprobs"])
    assert (
        chat(app, messages=[{"role": "user", "content": "Hello, world"}], logprobs=True)["choices"][0][
            "logprobs"
        ]["content"][0]["top_logprobs"]
        == []
    )
    chunks = sse.parse(
        app.post_json(
            URL,
            {
                "model": "m",
                "messages": [{"role": "user", "content": "Hello, world"}],
                "logprobs": True,
                "top_logprobs": 2,
                "stream": True,
            },
        ).body
    )
    streamed: List[Dict[str, Any]] = [
        e for c in chunks for ch in c["choices"] if ch.get("logprobs") for e in ch["logprobs"]["content"]
    ]
    assert [e["token"] for e in streamed] == ["Hello", ",", " world"]
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse")


def test_echo_prefix() -> None:
    app = webtest.TestApp(App(config.load({"MOKKU_ECHO_PREFIX": "Echo: "})))
    body = app.post_json(URL, {"model": "m", "messages": ASK}).json
    assert body["choices"][0]["message"]["content"] == "Echo: Paris"
    legacy = app.post_json("/v1/completions", {"model": "m", "prompt": "x"}).json
    assert legacy["choices"][0]["text"] == "Echo: x"


def test_healthz(app: webtest.TestApp) -> None:
    assert app.get("/healthz").json["status"] == "ok"


def _after_weather_call(*more: Dict[str, Any]) -> List[Dict[str, Any]]:
    return [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "22 degrees and sunny"},
        *more,
    ]


def _called(body: Dict[str, Any]) -> List[str]:
    message = body["choices"][0]["message"]
    return [call["function"]["name"] for call in message.get("tool_calls") or []]


def test_required_calls_after_a_tool_result_preferring_a_function_not_called_yet(
    app: webtest.TestApp,
) -> None:
    """An agent that needs a call (an output tool, say) gets one after a tool result, and moves on."""
    body = chat(app, tools=[WEATHER, TIME], tool_choice="required", messages=_after_weather_call())
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert _called(body) == ["get_time"]
    # Every function called already: the first one again.
    assert _called(chat(app, tools=[WEATHER], tool_choice="required", messages=_after_weather_call())) == [
        "get_weather"
    ]


def test_required_after_a_new_user_turn_moves_on_from_the_functions_called(app: webtest.TestApp) -> None:
    """Once the conversation has called a function, ``required`` prefers one not called yet, also
    when a user message comes after the result (an agent that reports observations as user turns)."""
    follow_up = {"role": "user", "content": "and now?"}
    assert _called(
        chat(app, tools=[WEATHER, TIME], tool_choice="required", messages=_after_weather_call(follow_up))
    ) == ["get_time"]
    assert _called(chat(app, tools=[WEATHER, TIME], tool_choice="required")) == [
        "get_weather"
    ]  # nothing called yet


def test_required_on_a_later_turn_moves_on_to_the_function_called_longest_ago(app: webtest.TestApp) -> None:
    """A second run on the same history (pydantic-ai's ``message_history``): every function was
    called on the first turn, so ``required`` calls the one whose last call is the oldest, and the
    agent's output tool ends this turn too."""
    result = {"type": "function", "function": {"name": "final_result", "parameters": {"type": "object"}}}
    first_turn = [
        *ASK,
        _call("call_1", "get_weather", '{"city": "Paris"}'),
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny in Paris"},
        _call("call_2", "final_result", "{}"),
        {"role": "tool", "tool_call_id": "call_2", "content": "Final result processed."},
        {"role": "user", "content": "Bergen"},
    ]
    asked = chat(app, tools=[WEATHER, result], tool_choice="required", messages=first_turn)
    assert _called(asked) == ["get_weather"]  # its last call is older than final_result's
    weather = [
        *first_turn,
        _call("call_3", "get_weather", '{"city": "Bergen"}'),
        {"role": "tool", "tool_call_id": "call_3", "content": "Sunny in Bergen"},
    ]
    assert _called(chat(app, tools=[WEATHER, result], tool_choice="required", messages=weather)) == [
        "final_result"
    ]


def test_calls_written_in_an_assistant_text_count_as_called(app: webtest.TestApp) -> None:
    """smolagents keeps its memory as text: its earlier calls come back as an assistant's text and
    their results as a user's; ``required`` then calls its ``final_answer`` and the run ends."""
    final = {
        "type": "function",
        "function": {
            "name": "final_answer",
            "description": "Provides a final answer to the given problem.",
            "parameters": {
                "type": "object",
                "properties": {
                    "answer": {"type": "string", "description": "The final answer to the problem"}
                },
                "required": ["answer"],
            },
        },
    }
    memory = [
        {
            "role": "system",
            "content": [
                {
                    "type": "text",
                    "text": "You are an expert assistant who can solve any task using tool calls.",
                }
            ],
        },
        {"role": "user", "content": [{"type": "text", "text": "New task:\nweather in Paris?"}]},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "text",
                    "text": "Calling tools:\n[{'id': 'call_FW4E', 'type': 'function', 'function': "
                    "{'name': 'get_weather', 'arguments': {'city': 'Paris'}}}]",
                }
            ],
        },
        {"role": "user", "content": [{"type": "text", "text": "Observation:\nsunny in Paris"}]},
    ]
    body = chat(app, tools=[WEATHER, final], tool_choice="required", messages=memory)
    assert _called(body) == ["final_answer"]
    arguments = json.loads(body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"])
    assert arguments == {"answer": "Observation:\nsunny in Paris"}
    first_step = chat(app, tools=[WEATHER, final], tool_choice="required", messages=memory[:2])
    assert _called(first_step) == ["get_weather"]


def test_a_named_function_is_called_after_a_tool_result(app: webtest.TestApp) -> None:
    named = {"type": "function", "function": {"name": "get_weather"}}
    assert _called(chat(app, tools=[WEATHER, TIME], tool_choice=named, messages=_after_weather_call())) == [
        "get_weather"
    ]


def test_auto_after_a_tool_result_answers_with_text(app: webtest.TestApp) -> None:
    body = chat(app, tools=[WEATHER, TIME], tool_choice="auto", messages=_after_weather_call())
    assert _called(body) == [] and body["choices"][0]["message"]["content"] == "22 degrees and sunny"


def test_chat_takes_at_most_128_tools(app: webtest.TestApp) -> None:
    many = [{"type": "function", "function": {"name": f"f{n}"}} for n in range(129)]
    assert chat(app, tools=many[:128], tool_choice="required")["choices"][0]["finish_reason"] == "tool_calls"
    error = app.post_json(URL, {"model": "gpt-4o", "messages": ASK, "tools": many}, status=400).json["error"]
    assert error == {
        "message": "Invalid 'tools': array too long. Expected an array with maximum length 128, but got an array "
        "with length 129 instead.",
        "type": "invalid_request_error",
        "param": "tools",
        "code": "array_above_max_length",
    }


def test_custom_tools_count_as_tools(app: webtest.TestApp) -> None:
    custom = {"type": "custom", "custom": {"name": "grammar"}}
    for choice in ("auto", "required", "none"):
        assert chat(app, tools=[custom], tool_choice=choice)["choices"][0]["message"]["content"] == "Paris"
    response = app.post_json(URL, {"model": "m", "messages": ASK, "tool_choice": "none"}, status=400)
    assert response.json["error"]["param"] == "tool_choice"  # chat keeps the real API's 400


class _City(pydantic.BaseModel):
    name: str
    population: int


class _Trip(pydantic.BaseModel):
    traveller: str
    cities: List[_City]
    budget: Optional[float] = None


class _Address(pydantic.BaseModel):
    zip_code: str = pydantic.Field(pattern=r"^\d{5}$")
    phone: str = pydantic.Field(pattern=r"^\d{3}-\d{4}$")
    colour: str = pydantic.Field(pattern=r"^#[0-9a-fA-F]{6}$")
    currency: str = pydantic.Field(pattern=r"^(USD|EUR|GBP)$")


def test_structured_outputs_fill_patterns_no_echo_satisfies(app: webtest.TestApp) -> None:
    schema = {**_Address.model_json_schema(), "additionalProperties": False}
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "address", "strict": True, "schema": schema},
    }
    body = chat(app, response_format=response_format)
    address = _Address.model_validate_json(body["choices"][0]["message"]["content"])
    assert address.zip_code.isdigit() and len(address.zip_code) == 5
    tool = {"type": "function", "function": {"name": "save", "strict": True, "parameters": schema}}
    body = chat(app, tools=[tool], tool_choice="required")
    _Address.model_validate_json(body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"])


# How instructor's Mode.JSON asks for a model: the schema inline in the system message.
INSTRUCTOR_PROMPT = (
    "As a genius expert, your task is to understand the content and provide the parsed objects in json "
    "that match the following json_schema:\n\n{schema}\n\nMake sure to return an instance of the JSON, not "
    "the schema itself"
)


@pytest.mark.parametrize("fenced", [False, True])
def test_json_mode_follows_a_schema_in_the_system_message(app: webtest.TestApp, fenced: bool) -> None:
    schema = json.dumps(_Trip.model_json_schema(), indent=2)
    system = INSTRUCTOR_PROMPT.format(schema=f"```json\n{schema}\n```" if fenced else schema)
    body = chat(
        app,
        response_format={"type": "json_object"},
        messages=[{"role": "system", "content": system}, {"role": "user", "content": "Ada visits Paris"}],
    )
    content = body["choices"][0]["message"]["content"]
    jsonschema.validate(json.loads(content), _Trip.model_json_schema())
    trip = _Trip.model_validate_json(content)
    assert trip.traveller == "Ada visits Paris" and trip.cities


def test_a_schema_the_system_message_asks_json_of_is_answered_without_a_format(app: webtest.TestApp) -> None:
    """instructor's MD_JSON (and pydantic-ai's PromptedOutput): no response_format, the schema and the
    word in the prompt alone. A prompt without the word, or tools, keep their answers."""
    system = INSTRUCTOR_PROMPT.format(schema=json.dumps(_Trip.model_json_schema()))
    asked = [
        {"role": "system", "content": system},
        {
            "role": "user",
            "content": "Ada visits Paris\n\nReturn the correct JSON response within a ```json codeblock.",
        },
    ]
    content = chat(app, messages=asked)["choices"][0]["message"]["content"]
    assert _Trip.model_validate_json(content).cities
    flat = {"model": "gpt-4o", "instructions": system, "input": "Ada visits Paris"}
    answer = app.post_json("/v1/responses", flat).json["output"][0]["content"][0]["text"]
    assert _Trip.model_validate_json(answer).cities
    plain = [{"role": "system", "content": "Be brief."}, asked[1]]
    assert chat(app, messages=plain)["choices"][0]["message"]["content"] == asked[1]["content"]
    called = chat(app, messages=asked, tools=[WEATHER])["choices"][0]["message"]
    assert called["tool_calls"] and called["content"] is None


@pytest.mark.parametrize(
    "system",
    [
        'Reply in JSON: {"a":' + "[" * 100_000 + "]" * 100_000 + "}",  # nested past the decoder's depth
        "json " + '{"properties": ' * 5000,
        "json " + "a```\n" * 13_000,  # fences that never close
    ],
)
def test_hostile_instructions_are_read_in_bounded_time_and_answered(
    app: webtest.TestApp, system: str
) -> None:
    """The prompt is a hint: what it holds that is no schema is passed over, never a 500."""
    asked = [{"role": "system", "content": system}] * 4 + [{"role": "user", "content": "json hi"}]
    assert chat(app, messages=asked)["choices"][0]["message"]["content"] == "json hi"
    answer = app.post_json("/v1/responses", {"model": "gpt-4o", "instructions": system, "input": "hi"}).json
    assert answer["output"][0]["content"][0]["text"] == "hi"
    json_mode = chat(app, messages=asked, response_format={"type": "json_object"})
    assert json.loads(json_mode["choices"][0]["message"]["content"]) == {"echo": "json hi"}


# DSPy's JSON adapter when it cannot send a schema (ReAct's ``next_tool_args: dict[str, Any]``):
# JSON mode, and a template of the output fields, each with a note on its type.
DSPY_PROMPT = """Your input fields are:
1. `question` (str):
Your output fields are:
1. `next_thought` (str):
2. `next_tool_name` (Literal['get_weather', 'finish']):
3. `next_tool_args` (dict[str, Any]):
4. `confident` (bool):
All interactions will be structured in the following way, with the appropriate values filled in.

Inputs will have the following structure:

[[ ## question ## ]]
{question}

Outputs will be a JSON object with the following fields.

{
  "next_thought": "{next_thought}",
  "next_tool_name": "{next_tool_name}        # note: the value you produce must exactly match (no extra characters) one of: get_weather; finish",
  "next_tool_args": "{next_tool_args}        # note: the value you produce must adhere to the JSON schema: {\\"type\\": \\"object\\", \\"additionalProperties\\": true}",
  "confident": "{confident}        # note: the value you produce must be True or False"
}
In adhering to this structure, your objective is:
        Answer the question with the tools."""


def test_json_mode_fills_dspys_field_template(app: webtest.TestApp) -> None:
    body = chat(
        app,
        response_format={"type": "json_object"},
        messages=[
            {"role": "system", "content": DSPY_PROMPT},
            {"role": "user", "content": "Weather in Oslo?"},
        ],
    )
    document = json.loads(body["choices"][0]["message"]["content"])
    assert list(document) == ["next_thought", "next_tool_name", "next_tool_args", "confident"]
    assert document["next_tool_name"] in ("get_weather", "finish")
    assert isinstance(document["next_thought"], str) and isinstance(document["next_tool_args"], dict)
    assert isinstance(document["confident"], bool)


# DSPy's default ChatAdapter: no format parameter; the answer is laid out field by field under
# headers, each field's type in a note, as the system prompt shows.
DSPY_CHAT_PROMPT = """Your input fields are:
1. `question` (str):
Your output fields are:
1. `answer` (str):
2. `kind` (Literal['city', 'country']):
3. `count` (int):
4. `info` (Info):
All interactions will be structured in the following way, with the appropriate values filled in.

[[ ## question ## ]]
{question}

[[ ## answer ## ]]
{answer}

[[ ## kind ## ]]
{kind}        # note: the value you produce must exactly match (no extra characters) one of: city; country

[[ ## count ## ]]
{count}        # note: the value you produce must be a single int value

[[ ## info ## ]]
{info}        # note: the value you produce must adhere to the JSON schema: {"properties": {"city": {"title": "City", "type": "string"}}, "required": ["city"], "title": "Info", "type": "object"}

[[ ## completed ## ]]
In adhering to this structure, your objective is:
        Given the fields `question`, produce the fields `answer`, `kind`, `count`, `info`."""
DSPY_CHAT_ASK = """[[ ## question ## ]]
Oslo

Respond with the corresponding output fields, starting with the field `[[ ## answer ## ]]`, then \
`[[ ## kind ## ]]` (must be formatted as a valid Python Literal['city', 'country']), then `[[ ## count ## ]]` \
(must be formatted as a valid Python int), then `[[ ## info ## ]]` (must be formatted as a valid Python Info), \
and then ending with the marker for `[[ ## completed ## ]]`."""


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_dspys_chat_adapter_is_answered_field_by_field(app: webtest.TestApp, path: str) -> None:
    """Not the JSON document of one field's schema (which DSPy cannot read, and asks again in JSON
    mode), nor its prompt echoed (which DSPy reads as fields by accident): each field under its
    header, the text ones the input's text."""
    ask = [{"role": "user", "content": DSPY_CHAT_ASK}]
    if path == "/v1/messages":
        body = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "system": DSPY_CHAT_PROMPT, "messages": ask}
        text = app.post_json(path, body, headers={"anthropic-version": "2023-06-01"}).json["content"][0][
            "text"
        ]
    else:
        asked = [{"role": "system", "content": DSPY_CHAT_PROMPT}, *ask]
        text = chat(app, messages=asked)["choices"][0]["message"]["content"]
    assert text == (
        "[[ ## answer ## ]]\nOslo\n\n[[ ## kind ## ]]\ncity\n\n[[ ## count ## ]]\n4\n\n"
        '[[ ## info ## ]]\n{"city":"Oslo"}\n\n[[ ## completed ## ]]'
    )


# DSPy's ReAct, as dspy 3.4 sends it: its output fields, then the tools it may call in the objective.
REACT_FIELDS = """Your input fields are:
1. `question` (str):
2. `trajectory` (str):
Your output fields are:
1. `next_thought` (str):
2. `next_tool_name` (Literal['get_weather', 'finish']):
3. `next_tool_args` (dict[str, Any]):
All interactions will be structured in the following way, with the appropriate values filled in.
"""
REACT_NOTES = (
    "# note: the value you produce must exactly match (no extra characters) one of: get_weather; finish",
    '# note: the value you produce must adhere to the JSON schema: {"type": "object", "additionalProperties": true}',
)
REACT_CHAT_LAYOUT = f"""
[[ ## question ## ]]
{{question}}

[[ ## trajectory ## ]]
{{trajectory}}

[[ ## next_thought ## ]]
{{next_thought}}

[[ ## next_tool_name ## ]]
{{next_tool_name}}        {REACT_NOTES[0]}

[[ ## next_tool_args ## ]]
{{next_tool_args}}        {REACT_NOTES[1]}

[[ ## completed ## ]]
"""
REACT_JSON_LAYOUT = "\nOutputs will be a JSON object with the following fields.\n\n" + json.dumps(
    {
        "next_thought": "{next_thought}",
        "next_tool_name": "{next_tool_name}        " + REACT_NOTES[0],
        "next_tool_args": "{next_tool_args}        " + REACT_NOTES[1],
    },
    indent=2,
)
REACT_OBJECTIVE = """
In adhering to this structure, your objective is:
        Given the fields `question`, produce the fields `answer`.

        When selecting the next_tool_name and its next_tool_args, the tool must be one of:

        (1) get_weather, whose description is <desc>Weather forecast. For a city.</desc>. It takes arguments {'city': {'type': 'string'}, 'days': {'type': 'integer', 'minimum': 1}}.
        (2) finish, whose description is <desc>Marks the task as complete.</desc>. It takes arguments {}.
        When providing `next_tool_args`, the value inside the field must be in JSON format"""
REACT_ASK = "[[ ## question ## ]]\nWeather in Oslo?\n\n[[ ## trajectory ## ]]\n{trajectory}\n\nRespond with the corresponding output fields."
REACT_DONE = '[[ ## thought_0 ## ]]\nx\n\n[[ ## tool_name_0 ## ]]\nget_weather\n\n[[ ## tool_args_0 ## ]]\n{"city": "Oslo", "days": 2}\n\n[[ ## observation_0 ## ]]\nSunny'


@pytest.mark.parametrize("adapter", ["chat", "json"])
def test_a_dspy_react_step_calls_its_tool_with_its_arguments_then_finishes(
    app: webtest.TestApp, adapter: str
) -> None:
    """Every argument the listed tool takes, typed by its schema (not ``{}``, which the tool
    refuses); once the trajectory holds the tool's observation, ``finish``."""
    layout = REACT_CHAT_LAYOUT if adapter == "chat" else REACT_JSON_LAYOUT
    json_mode = {"response_format": {"type": "json_object"}} if adapter == "json" else {}

    def step(trajectory: str, objective: str = REACT_OBJECTIVE) -> Dict[str, Any]:
        asked = [
            {"role": "system", "content": REACT_FIELDS + layout + objective},
            {"role": "user", "content": REACT_ASK.format(trajectory=trajectory)},
        ]
        text = chat(app, messages=asked, **json_mode)["choices"][0]["message"]["content"]
        if adapter == "json":
            return json.loads(text)
        fields = dict(re.findall(r"\[\[ ## (\w+) ## \]\]\n(.*?)\n\n", text + "\n\n", re.S))
        return dict(fields, next_tool_args=json.loads(fields["next_tool_args"]))

    first = step("")
    assert first["next_tool_name"] == "get_weather"
    arguments = first["next_tool_args"]
    assert set(arguments) == {"city", "days"} and isinstance(arguments["city"], str)
    assert isinstance(arguments["days"], int) and arguments["days"] >= 1
    done = step(REACT_DONE)
    assert (done["next_tool_name"], done["next_tool_args"]) == ("finish", {})
    # A listing that cannot be read leaves the arguments open; never an error.
    for unreadable in ("{'city': ", "[" * 5000, "{'city': {'$ref': '#/$defs/City'}}"):
        odd = step(
            "",
            REACT_OBJECTIVE.replace(
                "{'city': {'type': 'string'}, 'days': {'type': 'integer', 'minimum': 1}}", unreadable
            ),
        )
        assert odd["next_tool_name"] == "get_weather" and isinstance(odd["next_tool_args"], dict)


def test_json_mode_without_a_schema_or_with_one_it_cannot_fill_answers_the_echo(app: webtest.TestApp) -> None:
    for system in (
        "Answer in JSON.",
        'Use json: {"type": "object", "properties": {"x": {"enum": []}}, "required": ["x"]}',
        # agno's field map: reads as a schema (``$defs``) but has no root type, so would be a string
        'Reply in JSON with these fields: {"kind": {"type": "string"}, "$defs": {"S": {}}}',
    ):
        body = chat(
            app,
            response_format={"type": "json_object"},
            messages=[{"role": "system", "content": system}, *ASK],
        )
        assert json.loads(body["choices"][0]["message"]["content"]) == {"echo": "Paris"}


@pytest.mark.parametrize(
    "name, code, message",
    [
        (
            "get weather.now",
            "invalid_value",
            "string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
        ),
        ("mcp/search", "invalid_value", "string does not match pattern."),
        (
            "",
            "empty_string",
            "empty string. Expected a string with minimum length 1, but got an empty string instead.",
        ),
        (
            "f" * 65,
            "string_above_max_length",
            "string too long. Expected a string with maximum length 64, but got a string with length 65 instead.",
        ),
    ],
)
def test_function_names_are_checked_as_the_api_checks_them(
    app: webtest.TestApp, name: str, code: str, message: str
) -> None:
    """A name the model could not write back (MCP tools named with "/" or ".") is the real API's 400."""
    cases = [
        (
            "/v1/chat/completions",
            {"messages": ASK, "tools": [{"type": "function", "function": {"name": name}}]},
            "tools[0].function.name",
        ),
        (
            "/v1/chat/completions",
            {"messages": ASK, "tools": [{"type": "custom", "custom": {"name": name}}]},
            "tools[0].custom.name",
        ),
        ("/v1/chat/completions", {"messages": ASK, "functions": [{"name": name}]}, "functions[0].name"),
        ("/v1/responses", {"input": "hi", "tools": [{"type": "function", "name": name}]}, "tools[0].name"),
    ]
    for url, body, param in cases:
        error = app.post_json(url, dict(body, model="gpt-4o"), status=400).json["error"]
        assert (error["param"], error["code"]) == (param, code)
        assert error["message"].startswith(f"Invalid '{param}': {message}")
    assert (
        chat(
            app, tools=[{"type": "function", "function": {"name": "get_weather-2"}}], tool_choice="required"
        )["choices"][0]["message"]["tool_calls"][0]["function"]["name"]
        == "get_weather-2"
    )


def test_chat_refuses_an_empty_tool_list_and_responses_takes_one(app: webtest.TestApp) -> None:
    error = app.post_json(URL, {"model": "gpt-4o", "messages": ASK, "tools": []}, status=400).json["error"]
    assert error == {
        "message": "Invalid 'tools': empty array. Expected an array with minimum length 1, but got an empty array "
        "instead.",
        "type": "invalid_request_error",
        "param": "tools",
        "code": "empty_array",
    }
    assert (
        app.post_json("/v1/responses", {"model": "gpt-4o", "input": "hi", "tools": []}).json["status"]
        == "completed"
    )


LOOSE = {"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "string"}}}}}
STRICT_RULE = "'additionalProperties' is required to be supplied and to be false."


def test_a_strict_function_must_keep_strict_modes_rules(app: webtest.TestApp) -> None:
    """The real API refuses a strict schema that breaks the rules before it answers."""
    loose = dict(LOOSE, additionalProperties=False, required=["a"])
    tool = {"type": "function", "function": {"name": "f", "parameters": loose, "strict": True}}
    error = app.post_json(URL, {"model": "gpt-4o", "messages": ASK, "tools": [tool]}, status=400).json[
        "error"
    ]
    assert error == {
        "message": f"Invalid schema for function 'f': In context=('properties', 'a'), {STRICT_RULE}",
        "type": "invalid_request_error",
        "param": "tools[0].function.parameters",
        "code": "invalid_function_parameters",
    }
    partial = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}
    partial.update(required=["a"], additionalProperties=False)
    flat = {"type": "function", "name": "g", "parameters": partial, "strict": True}
    error = app.post_json(
        "/v1/responses", {"model": "gpt-4o", "input": "hi", "tools": [flat]}, status=400
    ).json["error"]
    assert error["param"] == "tools[0].parameters"
    assert error["message"] == (
        "Invalid schema for function 'g': In context=(), 'required' is required to be supplied and to be an array "
        "including every key in properties. Missing 'b'."
    )
    # Not strict: the same schemas are taken, as the API takes them.
    tool["function"]["strict"] = False
    assert chat(app, tools=[tool], tool_choice="required")["choices"][0]["finish_reason"] == "tool_calls"
    del flat["strict"]
    flat["parameters"] = {"type": "object"}
    assert app.post_json("/v1/responses", {"model": "gpt-4o", "input": "hi", "tools": [flat]}).json["output"]


def test_a_strict_output_format_must_keep_strict_modes_rules(app: webtest.TestApp) -> None:
    schema_format = {"type": "json_schema", "json_schema": {"name": "out", "schema": LOOSE, "strict": True}}
    body = {"model": "gpt-4o", "messages": ASK, "response_format": schema_format}
    error = app.post_json(URL, body, status=400).json["error"]
    assert error == {  # chat names the whole response_format, without a code
        "message": f"Invalid schema for response_format 'out': In context=(), {STRICT_RULE}",
        "type": "invalid_request_error",
        "param": "response_format",
        "code": None,
    }
    no_schema = {"type": "json_schema", "json_schema": {"name": "out", "strict": True}}  # optional on chat
    assert chat(app, response_format=no_schema)["choices"][0]["message"]["content"]
    text = {"format": {"type": "json_schema", "name": "out", "schema": {"type": "array"}, "strict": True}}
    error = app.post_json("/v1/responses", {"model": "gpt-4o", "input": "hi", "text": text}, status=400).json[
        "error"
    ]
    assert (error["param"], error["code"]) == ("text.format.schema", "invalid_json_schema")
    assert error["message"] == (
        "Invalid schema for response_format 'out': schema must be a JSON Schema of 'type: \"object\"', got "
        "'type: \"array\"'."
    )


def test_the_openai_sdks_strict_schemas_keep_the_rules() -> None:
    """What the SDK's parse helpers send for pydantic models (nested, optional, lists, enums, $defs)
    is taken; a free-form dict field is the real API's well-known refusal."""
    import enum

    from openai.lib._pydantic import to_strict_json_schema

    from mokku.api import strict

    class Colour(enum.Enum):
        RED = "red"

    class Inner(pydantic.BaseModel):
        name: str
        tags: List[str]

    class Outer(pydantic.BaseModel):
        inner: Inner
        many: List[Inner]
        maybe: Optional[Inner]
        colour: Colour

    assert strict.violation(to_strict_json_schema(Outer)) is None

    class Free(pydantic.BaseModel):
        free: Dict[str, Any]

    assert (
        strict.violation(to_strict_json_schema(Free)) == f"In context=('properties', 'free'), {STRICT_RULE}"
    )


# google-adk hands an agent the turns of another as user text; a transfer between two agents ends
# with the other agent's tool result.
ADK_CONTEXT = [
    {"role": "user", "content": "help me"},
    {
        "role": "user",
        "content": "For context:\n[root] called tool `transfer_to_agent` with parameters: {'agent_name': 'helper'}",
    },
    {
        "role": "user",
        "content": "For context:\n[root] `transfer_to_agent` tool returned result: {'result': None}",
    },
]


def test_another_agents_tool_result_ends_the_loop(app: webtest.TestApp) -> None:
    """Else the agent called would transfer straight back, and the two agents would loop."""
    transfer = {
        "type": "function",
        "function": {
            "name": "transfer_to_agent",
            "parameters": {
                "type": "object",
                "properties": {"agent_name": {"type": "string", "enum": ["root"]}},
            },
        },
    }
    body = chat(app, messages=ADK_CONTEXT, tools=[transfer])
    assert body["choices"][0]["finish_reason"] == "stop"
    # google-adk 2.13 fences the other agent's words on a line of their own.
    fenced = (
        "For context:\n[root] `transfer_to_agent` tool returned result:\n<<<BEGIN_QUOTED_AGENT_CONTENT>>>\n{}"
    )
    newer = [*ADK_CONTEXT[:2], {"role": "user", "content": fenced}]
    assert chat(app, messages=newer, tools=[transfer])["choices"][0]["finish_reason"] == "stop"
    assert "tool returned result" in body["choices"][0]["message"]["content"]
    responses_tool = {
        "type": "function",
        "name": "transfer_to_agent",
        "parameters": transfer["function"]["parameters"],
    }
    answer = app.post_json(
        "/v1/responses", {"model": "gpt-4o", "input": ADK_CONTEXT, "tools": [responses_tool]}
    ).json
    assert [item["type"] for item in answer["output"]] == ["message"]
    # A question of the user's own still calls the tool, and `required` calls after a result too.
    assert (
        chat(app, messages=ADK_CONTEXT[:1], tools=[transfer])["choices"][0]["finish_reason"] == "tool_calls"
    )
    forced = chat(app, messages=ADK_CONTEXT, tools=[transfer], tool_choice="required")
    assert forced["choices"][0]["finish_reason"] == "tool_calls"


def test_each_choice_calls_with_ids_of_its_own(app: webtest.TestApp) -> None:
    """``n`` choices that call a tool: the same call, but each choice's with its own id, as the real
    API's (a client keys the results on them), streamed or not."""
    body = chat(app, tools=[WEATHER], n=3)
    ids = [choice["message"]["tool_calls"][0]["id"] for choice in body["choices"]]
    assert len(set(ids)) == 3 and all(i.startswith("call_") for i in ids)
    names = {choice["message"]["tool_calls"][0]["function"]["name"] for choice in body["choices"]}
    assert names == {"get_weather"}
    raw = app.post_json(
        URL, {"model": "gpt-4o", "messages": ASK, "tools": [WEATHER], "n": 2, "stream": True}
    ).body
    streamed = [
        call["id"]
        for line in raw.split(b"\n\n")
        if line.startswith(b"data: {")
        for choice in json.loads(line[6:])["choices"]
        for call in choice["delta"].get("tool_calls") or ()
        if "id" in call
    ]
    assert len(streamed) == 2 and len(set(streamed)) == 2


AGNO_DELEGATE = {
    "name": "delegate_task_to_member",
    "description": "Use this function to delegate a task to the selected team member.",
    "parameters": {
        "type": "object",
        "properties": {
            "member_id": {
                "type": "string",
                "description": "(str) The ID of the member to delegate the task to, exactly as it appears in <team_members>.",
            },
            "task": {"type": "string", "description": "(str) A clear description of the task."},
        },
        "required": ["member_id", "task"],
    },
}
AGNO_LEADER = (
    "You are the leader of a team of AI Agents.\n<team_members>\n"
    '<member id="weather-agent" name="Weather Agent">\n  Role: Gives the weather\n</member>\n'
    '<member id="news-agent" name="News Agent">\n</member>\n</team_members>\n'
)


def test_an_agno_team_leader_delegates_to_a_member_its_system_prompt_lists(app: webtest.TestApp) -> None:
    """Its ``member_id`` names a member of ``<team_members>`` (the first), as a model's would: an
    echoed id is "not found", and the member never runs."""
    messages = [{"role": "system", "content": AGNO_LEADER}, {"role": "user", "content": "Oslo"}]
    called = chat(app, messages=messages, tools=[{"type": "function", "function": AGNO_DELEGATE}])
    arguments = json.loads(called["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"])
    assert arguments == {"member_id": "weather-agent", "task": "Oslo"}
    alone = chat(app, messages=messages[1:], tools=[{"type": "function", "function": AGNO_DELEGATE}])
    assert (
        json.loads(alone["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"])["member_id"]
        == "Oslo"
    )


AUTOGEN_SYSTEM = "You are a helpful AI assistant. Reply with TERMINATE when the task has been completed."


def test_an_autogen_swarm_handoff_passes_the_request_on_and_the_team_ends(app: webtest.TestApp) -> None:
    """autogen hands over in a user message ("Transferred to weather, adopting the role of weather
    immediately."): the agent handed to acts on the request; once it has answered, it says
    TERMINATE, as its default system message asks, and calls nothing again."""
    system = {"role": "system", "content": AUTOGEN_SYSTEM}
    handed = {
        "role": "user",
        "name": "triage",
        "content": "Transferred to weather, adopting the role of weather immediately.",
    }
    asked = [system, {"role": "user", "name": "user", "content": "Oslo"}, handed]
    called = chat(app, messages=asked, tools=[WEATHER])["choices"][0]["message"]
    assert json.loads(called["tool_calls"][0]["function"]["arguments"])["city"] == "Oslo"
    answered = [
        *asked,
        _call("call_1", "get_weather", '{"city": "Oslo"}'),
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny in Oslo"},
        {"role": "assistant", "content": "Sunny in Oslo"},
    ]
    ended = chat(app, messages=answered, tools=[WEATHER])["choices"][0]
    assert ended["finish_reason"] == "stop" and ended["message"]["content"] == "TERMINATE"
    plain = chat(app, messages=answered[1:], tools=[WEATHER])["choices"][
        0
    ]  # without autogen's system message
    assert plain["finish_reason"] == "stop" and plain["message"]["content"] == "Oslo"


@pytest.mark.parametrize(
    "system", [AUTOGEN_SYSTEM, "You are a critic. Respond with TERMINATE when the answer is good."]
)
def test_an_autogen_round_robin_team_ends_once_another_agent_has_answered(
    app: webtest.TestApp, system: str
) -> None:
    """In a RoundRobinGroupChat another agent's answer comes as a user message named by that agent:
    an agent asked to say TERMINATE once the task is done says it then, and the team ends."""
    task = {"role": "user", "name": "user", "content": "Write a haiku"}
    answer = {"role": "user", "name": "primary", "content": "Write a haiku"}
    ended = chat(app, messages=[{"role": "system", "content": system}, task, answer], tools=[WEATHER])
    assert ended["choices"][0]["message"]["content"] == "TERMINATE"
    first = chat(app, messages=[{"role": "system", "content": system}, task])  # the task itself: echoed
    assert first["choices"][0]["message"]["content"] == "Write a haiku"
    again = chat(
        app, messages=[{"role": "system", "content": system}, task, dict(task, content="And another")]
    )
    assert again["choices"][0]["message"]["content"] == "And another"  # the same user asking again


REACT_SYSTEM = (
    "You are designed to help with a variety of tasks.\n\n## Tools\n"
    "> Tool Name: get_weather\nTool Description: Weather in a city\n"
    'Tool Args: {"properties": {"city": {"title": "City", "type": "string"}}, "required": ["city"], "type": "object"}\n\n'
    "## Output Format\nThought: The current language of the user is: English. I need to use a tool.\n"
    "Action: tool name (one of get_weather) if using a tool.\n"
    'Action Input: the input to the tool, in a JSON format representing the kwargs (e.g. {"input": "hello world"})\n\n'
    "Please ALWAYS start with a Thought.\nPlease use a valid JSON format for the Action Input.\n"
    "Answer: [your answer here (In the same language as the user's question)]"
)


def test_a_react_prompt_s_tool_schemas_are_no_answer_format(app: webtest.TestApp) -> None:
    """A ReAct prompt (LlamaIndex's ReActAgent) says "JSON" and holds its tools' input schemas: they
    are what its Action Input takes, not what the answer must be. The answer is a ReAct step
    (``tests/test_agents.py``)."""
    messages = [{"role": "system", "content": REACT_SYSTEM}, {"role": "user", "content": "Oslo"}]
    content = chat(app, messages=messages)["choices"][0]["message"]["content"]
    assert content.startswith("Thought: ") and content.endswith(
        '\nAction: get_weather\nAction Input: {"city": "Oslo"}'
    )
