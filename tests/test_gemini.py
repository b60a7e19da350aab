"""The Gemini API in-process: every answer parsed strictly as google-genai's own types (no unknown
field at any depth, no snake_case), Google's error envelope, both API versions, streams."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest
import webtest
from google.genai import types

from mokku import config
from mokku.api.tokens import count as count_tokens
from mokku.server.app import App

KEY = {"x-goog-api-key": "gemini-key"}
GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"
WEATHER = {
    "functionDeclarations": [
        {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {
                "type": "OBJECT",
                "properties": {"city": {"type": "STRING"}},
                "required": ["city"],
            },
        }
    ]
}


def user(text: str) -> Dict[str, Any]:
    return {"role": "user", "parts": [{"text": text}]}


def strict(raw: Dict[str, Any]) -> types.GenerateContentResponse:
    return types.GenerateContentResponse.model_validate(raw, by_alias=True, by_name=False)


def generate(app: webtest.TestApp, url: str = GENERATE, **body: Any) -> Dict[str, Any]:
    raw = app.post_json(url, body, headers=KEY).json
    strict(raw)
    return raw


def sse(raw: bytes) -> List[Dict[str, Any]]:
    frames = raw.split(b"\r\n\r\n")
    assert frames[-1] == b""
    out = []
    for frame in frames[:-1]:
        assert frame.startswith(b"data: ")
        chunk = json.loads(frame[len(b"data: ") :])
        if "error" not in chunk:
            strict(chunk)
        out.append(chunk)
    return out


def test_a_generation_echoes_the_last_user_turn(app: webtest.TestApp) -> None:
    contents = [user("first"), {"role": "model", "parts": [{"text": "ok"}]}, user("second")]
    for url in (GENERATE, "/v1/models/gemini-2.5-flash:generateContent"):
        answer = generate(app, url, contents=contents, systemInstruction={"parts": [{"text": "Be brief."}]})
        (candidate,) = answer["candidates"]
        assert candidate["content"] == {"parts": [{"text": "second"}], "role": "model"}
        assert candidate["finishReason"] == "STOP" and answer["modelVersion"] == "gemini-2.5-flash"
        usage = answer["usageMetadata"]
        # 2.5 Flash thinks unless told not to: its thoughts are counted, though not shown.
        assert usage["thoughtsTokenCount"] > 0 and usage["totalTokenCount"] == (
            usage["promptTokenCount"] + usage["candidatesTokenCount"] + usage["thoughtsTokenCount"]
        )


def test_a_model_thinks_by_default_unless_its_budget_is_0(app: webtest.TestApp) -> None:
    off = {"thinkingConfig": {"thinkingBudget": 0}}
    usage = generate(app, contents=[user("hi")], generationConfig=off)["usageMetadata"]
    assert "thoughtsTokenCount" not in usage
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
    own = "/v1beta/models/my-own-model:generateContent"  # no thinking model the catalogue knows
    assert "thoughtsTokenCount" not in generate(app, own, contents=[user("hi")])["usageMetadata"]


def test_thoughts_and_text_together_keep_within_max_output_tokens(app: webtest.TestApp) -> None:
    """Gemini counts thinking against ``maxOutputTokens``: a small limit is spent on thoughts, and
    the answer ends ``MAX_TOKENS`` with no text, as clients that set one meet it."""
    words = [user("one two three four five six seven eight nine ten")]
    spent = generate(app, contents=words, generationConfig={"maxOutputTokens": 5})
    (candidate,) = spent["candidates"]
    assert candidate["content"] == {"role": "model"} and candidate["finishReason"] == "MAX_TOKENS"
    usage = spent["usageMetadata"]
    assert usage["thoughtsTokenCount"] == 5 and "candidatesTokenCount" not in usage
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + 5
    roomy = generate(app, contents=words, generationConfig={"maxOutputTokens": 16})["usageMetadata"]
    assert roomy["thoughtsTokenCount"] + roomy["candidatesTokenCount"] == 16
    stream = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    streamed = sse(
        app.post_json(
            stream, {"contents": words, "generationConfig": {"maxOutputTokens": 5}}, headers=KEY
        ).body
    )
    assert streamed[-1]["candidates"] == spent["candidates"]


@pytest.mark.parametrize(
    ("model", "config"),
    [
        ("gemini-3-pro-preview", {"thinkingConfig": {"thinkingLevel": "HIGH"}}),
        ("gemini-2.5-flash-preview-09-2025", {"thinkingConfig": {"thinkingBudget": 1024}}),
        ("gemini-flash-latest", {}),
        ("gemini-3.8-flash-001", {}),
        ("my-own-model", {"thinkingConfig": {"thinkingBudget": 512}}),
    ],
)
def test_models_not_listed_think_by_their_family_or_when_asked(
    app: webtest.TestApp, model: str, config: Dict[str, Any]
) -> None:
    url = f"/v1beta/models/{model}:generateContent"
    usage = generate(app, url, contents=[user("hi")], generationConfig=config)["usageMetadata"]
    assert usage["thoughtsTokenCount"] > 0


def test_flash_lite_thinks_only_when_asked(app: webtest.TestApp) -> None:
    """Gemini 2.5 Flash-Lite does not think by default: a small limit still gets text."""
    url = "/v1beta/models/gemini-2.5-flash-lite:generateContent"
    answer = generate(app, url, contents=[user("one two three")], generationConfig={"maxOutputTokens": 2})
    assert answer["candidates"][0]["content"]["parts"] == [{"text": "one two"}]
    assert "thoughtsTokenCount" not in answer["usageMetadata"]
    asked = {"thinkingConfig": {"thinkingBudget": 512}}
    assert generate(app, url, contents=[user("hi")], generationConfig=asked)["usageMetadata"][
        "thoughtsTokenCount"
    ]


def test_snake_case_and_camel_case_are_both_read(app: webtest.TestApp) -> None:
    snake = generate(app, contents=[user("one two three")], generation_config={"max_output_tokens": 2})
    camel = generate(app, contents=[user("one two three")], generationConfig={"maxOutputTokens": 2})
    assert (
        snake["candidates"] == camel["candidates"] and camel["candidates"][0]["finishReason"] == "MAX_TOKENS"
    )


def test_function_calls_and_the_loop_end(app: webtest.TestApp) -> None:
    called = generate(app, contents=[user("Oslo")], tools=[WEATHER])
    (part,) = called["candidates"][0]["content"]["parts"]
    assert part == {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}
    contents = [
        user("Oslo"),
        {"role": "model", "parts": [part]},
        {
            "role": "user",
            "parts": [{"functionResponse": {"name": "get_weather", "response": {"result": "Sunny in Oslo"}}}],
        },
    ]
    final = generate(app, contents=contents, tools=[WEATHER])
    assert final["candidates"][0]["content"]["parts"] == [{"text": "Sunny in Oslo"}]
    # The AI SDK sends the function's name beside its output; a response of more is echoed as JSON.
    for response, text in [
        ({"name": "get_weather", "content": "Sunny"}, "Sunny"),
        ({"temperature": 21, "sky": "clear"}, '{"temperature":21,"sky":"clear"}'),
    ]:
        answered = [
            *contents[:2],
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": response}}]},
        ]
        assert generate(app, contents=answered, tools=[WEATHER])["candidates"][0]["content"]["parts"] == [
            {"text": text}
        ]
    # Text beside the response (the AI SDK's, for a tool that returns an image) still ends the loop.
    beside = {"text": "Tool executed successfully and returned this image as a response"}
    with_text = [*contents[:2], {"role": "user", "parts": [*contents[2]["parts"], beside]}]
    assert generate(app, contents=with_text, tools=[WEATHER])["candidates"][0]["content"]["parts"] == [
        {"text": "Sunny in Oslo"}
    ]
    # Another agent's result, as google-adk hands it over in text, ends the loop too.
    adk = [
        user("Oslo"),
        {
            "role": "user",
            "parts": [
                {"text": "For context:"},
                {"text": "[root] called tool `get_weather` with parameters: {'city': 'Oslo'}"},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"text": "For context:"},
                {"text": "[root] `get_weather` tool returned result: {'result': 'Sunny'}"},
            ],
        },
    ]
    assert "text" in generate(app, contents=adk, tools=[WEATHER])["candidates"][0]["content"]["parts"][0]
    forced = generate(
        app, contents=contents, tools=[WEATHER], toolConfig={"functionCallingConfig": {"mode": "ANY"}}
    )
    assert "functionCall" in forced["candidates"][0]["content"]["parts"][0]
    none = generate(
        app, contents=[user("plain")], tools=[WEATHER], toolConfig={"functionCallingConfig": {"mode": "NONE"}}
    )
    assert none["candidates"][0]["content"]["parts"] == [{"text": "plain"}]
    other = {**WEATHER, "functionDeclarations": [*WEATHER["functionDeclarations"], {"name": "other"}]}
    for allowed in (["other"], ["get_weather"]):  # only those allowed are called
        config = {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": allowed}}
        called = generate(app, contents=contents, tools=[other], toolConfig=config)
        assert called["candidates"][0]["content"]["parts"][0]["functionCall"]["name"] == allowed[0]
    config = {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather", "nowhere"]}}
    body = {"contents": contents, "tools": [WEATHER], "toolConfig": config}
    error = app.post_json(GENERATE, body, headers=KEY, status=400).json["error"]
    param = "tool_config.function_calling_config.allowed_function_names[1]"
    assert error == {
        "code": 400,
        "message": f'* GenerateContentRequest.{param}: "nowhere" is not the name of a declared function.\n',
        "status": "INVALID_ARGUMENT",
    }


def test_gemini_3_signs_its_first_function_call(app: webtest.TestApp) -> None:
    """As Gemini 3 does, so that a client handing its calls back (the AI SDK) finds a signature."""
    url = "/v1beta/models/gemini-3-flash-preview:generateContent"
    (part,) = generate(app, url, contents=[user("Oslo")], tools=[WEATHER])["candidates"][0]["content"][
        "parts"
    ]
    assert (
        part["functionCall"]["name"] == "get_weather"
        and len(base64.b64decode(part["thoughtSignature"])) == 96
    )
    answered = [user("Oslo"), {"role": "model", "parts": [part]}, {"role": "user", "parts": [ANSWER]}]
    assert generate(app, url, contents=answered, tools=[WEATHER])["candidates"][0]["content"]["parts"] == [
        {"text": "Sunny"}
    ]
    (older,) = generate(app, contents=[user("Oslo")], tools=[WEATHER])["candidates"][0]["content"]["parts"]
    assert "thoughtSignature" not in older  # gemini-2.5-flash, without thoughts


def test_gemini_3_refuses_a_call_of_the_current_turn_handed_back_without_its_signature(
    app: webtest.TestApp,
) -> None:
    """Gemini 3 checks each step of the current turn (since the last user prompt) for the signature of
    its first call; earlier turns, other models and the image models are not checked."""
    url = "/v1beta/models/gemini-3.8-flash:generateContent"
    signed = dict(CALL, thoughtSignature="c2ln")
    second = {"functionCall": {"name": "get_time", "args": {}}}
    steps = [user("Oslo"), {"role": "model", "parts": [signed]}, {"role": "user", "parts": [ANSWER]}]
    unsigned = [*steps, {"role": "model", "parts": [second]}, {"role": "user", "parts": [ANSWER]}]
    answer = app.post_json(url, {"contents": unsigned, "tools": [WEATHER]}, headers=KEY, status=400).json
    assert answer == {
        "error": {
            "code": 400,
            "message": "Function call is missing a thought_signature in functionCall parts. This is required "
            "for tools to work correctly, and missing thought_signature may lead to degraded model "
            "performance. Additional data, function call `default_api:get_time` , position 4. Please refer "
            "to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.",
            "status": "INVALID_ARGUMENT",
        }
    }
    stream = url.replace(":generateContent", ":streamGenerateContent?alt=sse")
    app.post_json(stream, {"contents": unsigned, "tools": [WEATHER]}, headers=KEY, status=400)
    parallel = [
        user("Oslo"),
        {"role": "model", "parts": [signed, second]},
        {"role": "user", "parts": [ANSWER, ANSWER]},
    ]
    earlier_turn = [*unsigned, {"role": "model", "parts": [{"text": "Sunny"}]}, user("and Bergen?")]
    snake = [user("Oslo"), {"role": "model", "parts": [dict(CALL, thought_signature="c2ln")]}, steps[2]]
    for contents in (steps, parallel, earlier_turn, snake):
        generate(app, url, contents=contents, tools=[WEATHER])
    for model in ("gemini-2.5-flash", "gemini-3-pro-image-preview"):
        generate(app, f"/v1beta/models/{model}:generateContent", contents=unsigned, tools=[WEATHER])


CALL = {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}
ANSWER = {"functionResponse": {"name": "get_weather", "response": {"result": "Sunny"}}}
CALL_AFTER = "Please ensure that function call turn comes immediately after a user turn or after a function response turn."
RESPONSE_AFTER = "Please ensure that function response turn comes immediately after a function call turn."
MATCH = (
    "Please ensure that the number of function response parts is equal to the number of function call parts of "
    "the function call turn."
)


@pytest.mark.parametrize(
    "contents, message",
    [
        ([{"role": "model", "parts": [CALL]}, {"parts": [ANSWER]}], CALL_AFTER),
        (
            [
                user("x"),
                {"role": "model", "parts": [{"text": "Let me see."}]},
                {"role": "model", "parts": [CALL]},
            ],
            CALL_AFTER,
        ),
        ([{"parts": [ANSWER]}], RESPONSE_AFTER),
        ([user("x"), {"parts": [ANSWER]}], RESPONSE_AFTER),
        ([user("x"), {"role": "model", "parts": [{"text": "hi"}]}, {"parts": [ANSWER]}], RESPONSE_AFTER),
        # Parallel calls answered one turn each: the second answer follows an answer, not a call.
        (
            [user("x"), {"role": "model", "parts": [CALL, CALL]}, {"parts": [ANSWER]}, {"parts": [ANSWER]}],
            MATCH,
        ),
        ([user("x"), {"role": "model", "parts": [CALL]}, {"parts": [ANSWER, ANSWER]}], MATCH),
    ],
)
def test_function_turns_out_of_order_are_refused_as_gemini_words_it(
    app: webtest.TestApp, contents: List[Dict[str, Any]], message: str
) -> None:
    error = app.post_json(GENERATE, {"contents": contents}, headers=KEY, status=400).json["error"]
    assert error == {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}


def test_function_turns_in_order_are_answered(app: webtest.TestApp) -> None:
    # Text with the calls, every call answered in one turn (role user or function), a second round
    # straight after the answers, and text turns around them.
    contents = [
        user("x"),
        {"role": "model", "parts": [{"text": "Checking."}, CALL, CALL]},
        {"role": "user", "parts": [ANSWER, ANSWER]},
        {"role": "model", "parts": [CALL]},
        {"role": "function", "parts": [ANSWER]},
        {"role": "model", "parts": [{"text": "Sunny."}]},
        user("thanks"),
    ]
    assert generate(app, contents=contents)["candidates"][0]["content"]["parts"] == [{"text": "thanks"}]


def test_max_output_tokens_inside_a_function_call(app: webtest.TestApp) -> None:
    whole = generate(app, contents=[user("Oslo")], tools=[WEATHER])
    assert whole["usageMetadata"]["candidatesTokenCount"] > 8
    unthinking = {"maxOutputTokens": 8, "thinkingConfig": {"thinkingBudget": 0}}  # else thoughts take all 8
    cut = generate(app, contents=[user("Oslo")], tools=[WEATHER], generationConfig=unthinking)
    (candidate,) = cut["candidates"]
    assert candidate["finishReason"] == "MAX_TOKENS" and candidate["content"]["parts"] == [{"text": ""}]
    assert cut["usageMetadata"]["candidatesTokenCount"] == 8


def test_structured_output(app: webtest.TestApp) -> None:
    schema = {
        "type": "OBJECT",
        "properties": {"name": {"type": "STRING"}, "minutes": {"type": "INTEGER", "nullable": True}},
        "required": ["name", "minutes"],
        "propertyOrdering": ["name", "minutes"],
    }
    answer = generate(
        app,
        contents=[user("Pancakes")],
        generationConfig={"responseMimeType": "application/json", "responseSchema": schema},
    )
    document = json.loads(answer["candidates"][0]["content"]["parts"][0]["text"])
    assert set(document) == {"name", "minutes"} and (
        document["minutes"] is None or isinstance(document["minutes"], int)
    )
    json_schema = {
        "type": "object",
        "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["tags"],
    }
    tagged = generate(
        app,
        contents=[user("x")],
        generationConfig={"responseMimeType": "application/json", "responseJsonSchema": json_schema},
    )
    assert isinstance(json.loads(tagged["candidates"][0]["content"]["parts"][0]["text"])["tags"], list)


@pytest.mark.parametrize(
    "name, param", [("responseJsonSchema", "response_json_schema"), ("responseSchema", "response_schema")]
)
def test_a_bad_schema_is_named_by_the_field_that_carried_it(
    app: webtest.TestApp, name: str, param: str
) -> None:
    config = {"responseMimeType": "application/json", name: {"$ref": "#/nowhere"}}
    error = app.post_json(
        GENERATE, {"contents": [user("x")], "generationConfig": config}, headers=KEY, status=400
    )
    assert f"generation_config.{param}" in error.json["error"]["message"]


def test_json_mode_follows_a_schema_in_the_system_instruction(app: webtest.TestApp) -> None:
    """pydantic-ai's PromptedOutput: JSON mode, and the schema written in the instructions."""
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    system = {
        "parts": [
            {"text": f"Always respond with a JSON object that matches this schema:\n\n{json.dumps(schema)}"}
        ]
    }
    config = {"responseMimeType": "application/json"}
    answer = generate(app, contents=[user("Paris")], systemInstruction=system, generationConfig=config)
    assert json.loads(answer["candidates"][0]["content"]["parts"][0]["text"]) == {"city": "Paris"}
    plain = generate(app, contents=[user("Paris")], generationConfig=config)
    assert json.loads(plain["candidates"][0]["content"]["parts"][0]["text"]) == {"echo": "Paris"}


def test_a_response_mime_type_is_one_the_api_can_write(app: webtest.TestApp) -> None:
    for mime in ("text/plain", "application/xml", "application/yaml", ""):
        generate(app, contents=[user("Paris")], generationConfig={"responseMimeType": mime})
    for mime in ("text/csv", "image/png", "application/JSON"):
        body = {"contents": [user("Paris")], "generationConfig": {"responseMimeType": mime}}
        error = app.post_json(GENERATE, body, headers=KEY, status=400).json["error"]
        assert error["status"] == "INVALID_ARGUMENT" and error["message"] == (
            "* GenerateContentRequest.generation_config.response_mime_type: allowed mimetypes are text/plain, "
            "application/json, application/xml, application/yaml and text/x.enum\n"
        )


def test_thoughts_when_asked(app: webtest.TestApp) -> None:
    answer = generate(
        app, contents=[user("think")], generationConfig={"thinkingConfig": {"includeThoughts": True}}
    )
    parts = answer["candidates"][0]["content"]["parts"]
    assert parts[0]["thought"] is True and parts[1] == {"text": "think"}
    usage = answer["usageMetadata"]
    assert (
        usage["totalTokenCount"]
        == usage["promptTokenCount"] + usage["candidatesTokenCount"] + usage["thoughtsTokenCount"]
    )


def test_streams_in_sse_and_as_a_json_array(app: webtest.TestApp) -> None:
    url = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    chunks = sse(app.post_json(url + "?alt=sse", {"contents": [user("one two three")]}, headers=KEY).body)
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks) == "one two three"
    assert [c["candidates"][0].get("finishReason") for c in chunks] == [None, None, "STOP"]
    assert len({c["responseId"] for c in chunks}) == 1
    array = app.post_json(url, {"contents": [user("one two three")]}, headers=KEY)
    assert array.content_type == "application/json"
    assert [strict(c) and c["candidates"][0]["content"]["parts"][0]["text"] for c in array.json] == [
        "one",
        " two",
        " three",
    ]


def _called(name: str) -> Dict[str, Any]:
    return {"role": "model", "parts": [{"functionCall": {"name": name, "args": {}}}]}


def _answered(name: str, output: str) -> Dict[str, Any]:
    return {"role": "user", "parts": [{"functionResponse": {"name": name, "response": {"output": output}}}]}


def test_handoffs_and_hand_backs_read_as_chat_reads_them(app: webtest.TestApp) -> None:
    """After a handoff the agent handed to acts on the request (its own tool), not on the handoff's
    result; after LangGraph's hand-back the supervisor passes on its agent's answer."""
    handed = [user("Oslo"), _called("transfer_to_weather_expert")]
    handed.append(_answered("transfer_to_weather_expert", "Successfully transferred to weather_expert"))
    acting = generate(app, contents=handed, tools=[WEATHER])["candidates"][0]["content"]["parts"]
    assert acting == [{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}]
    back = [
        *handed,
        {"role": "model", "parts": [{"text": "Sunny in Oslo"}]},
        user("next"),
        _called("transfer_back_to_supervisor"),
        _answered("transfer_back_to_supervisor", "Successfully transferred back to supervisor"),
    ]
    handoff = {"functionDeclarations": [{"name": "transfer_to_weather_expert"}]}
    answer = generate(app, contents=back, tools=[handoff])["candidates"][0]
    assert answer["content"]["parts"] == [{"text": "Sunny in Oslo"}] and answer["finishReason"] == "STOP"


def test_count_tokens_matches_the_usage(app: webtest.TestApp) -> None:
    contents = [user("count these words")]
    counted = app.post_json(
        "/v1beta/models/gemini-2.5-flash:countTokens", {"contents": contents}, headers=KEY
    ).json
    assert counted["totalTokens"] == generate(app, contents=contents)["usageMetadata"]["promptTokenCount"]
    assert set(counted) == {"totalTokens", "promptTokensDetails"}
    # Any piece of a conversation is counted, a function's response alone included.
    alone = app.post_json(
        "/v1beta/models/gemini-2.5-flash:countTokens", {"contents": [{"parts": [ANSWER]}]}, headers=KEY
    ).json
    assert alone["totalTokens"] > 0


def test_embeddings(app: webtest.TestApp) -> None:
    one = app.post_json(
        "/v1beta/models/text-embedding-004:embedContent", {"content": {"parts": [{"text": "a"}]}}, headers=KEY
    ).json
    assert len(one["embedding"]["values"]) == 768
    batch = app.post_json(
        "/v1beta/models/gemini-embedding-001:batchEmbedContents",
        {
            "requests": [
                {
                    "model": "models/gemini-embedding-001",
                    "content": {"parts": [{"text": t}]},
                    "outputDimensionality": 8,
                }
                for t in ("a", "b")
            ]
        },
        headers=KEY,
    ).json
    strict_batch = types.EmbedContentResponse.model_validate(
        {"embeddings": batch["embeddings"]}, by_alias=True, by_name=False
    )
    assert [len(e.values or []) for e in strict_batch.embeddings or []] == [8, 8]
    assert batch["embeddings"][0] != batch["embeddings"][1]


def test_models_list_pages_and_get(app: webtest.TestApp) -> None:
    every = app.get("/v1beta/models", headers=KEY).json
    assert app.get("/v1beta/models?pageSize=0", headers=KEY).json == every  # proto3's 0: unset
    first = app.get("/v1beta/models?pageSize=2", headers=KEY).json
    assert len(first["models"]) == 2 and first["nextPageToken"]
    rest = app.get(f"/v1beta/models?pageSize=1000&pageToken={first['nextPageToken']}", headers=KEY).json
    assert "nextPageToken" not in rest and rest["models"][0]["name"] not in {
        m["name"] for m in first["models"]
    }
    one = app.get("/v1/models/gemini-2.5-flash", headers=KEY).json  # /v1 with a Gemini key: Gemini's shape
    assert one["name"] == "models/gemini-2.5-flash" and "generateContent" in one["supportedGenerationMethods"]
    assert app.get("/v1/models/gpt-4o").json["object"] == "model"  # without it: OpenAI's
    names = [m["name"] for m in app.get("/v1beta/models?pageSize=1000", headers=KEY).json["models"]]
    assert "models/gemini-3.8-flash" in names and "models/gemini-3-flash-preview" in names
    assert "models/gemini-2.0-flash" not in names  # shut down on 2026-06-01
    missing = app.get("/v1beta/models/gemini-0", headers=KEY, status=404).json["error"]
    assert missing["status"] == "NOT_FOUND" and missing["message"].startswith(
        "models/gemini-0 is not found for API version v1beta"
    )


@pytest.mark.parametrize(
    "fault, code, status, words",
    [
        ("rate_limit", 429, "RESOURCE_EXHAUSTED", "You exceeded your current quota"),
        ("overloaded", 503, "UNAVAILABLE", "The model is overloaded"),
        ("invalid_api_key", 400, "INVALID_ARGUMENT", "API key not valid"),
        ("server_error", 500, "INTERNAL", "An internal error has occurred"),
        ("permission", 403, "PERMISSION_DENIED", "does not have permission"),
    ],
)
def test_faults_in_googles_envelope(
    app: webtest.TestApp, fault: str, code: int, status: str, words: str
) -> None:
    url = f"/v1beta/models/gemini-2.5-flash@{fault}:generateContent"
    error = app.post_json(url, {"contents": [user("x")]}, headers=KEY, status=code).json["error"]
    assert error["code"] == code and error["status"] == status and words in error["message"]
    if fault == "rate_limit":
        retry = [d for d in error["details"] if d["@type"].endswith("RetryInfo")]
        assert retry == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}]


def test_filters(app: webtest.TestApp) -> None:
    safety = generate(app, contents=[user("x")], **{})
    assert safety["candidates"][0]["finishReason"] == "STOP"
    filtered = app.post_json(
        GENERATE, {"contents": [user("x")]}, headers=dict(KEY, **{"X-Mokku-Fault": "content_filter"})
    ).json
    strict(filtered)
    assert (
        filtered["candidates"][0]["finishReason"] == "SAFETY" and "content" not in filtered["candidates"][0]
    )
    blocked = app.post_json(
        GENERATE, {"contents": [user("x")]}, headers=dict(KEY, **{"X-Mokku-Fault": "prompt_filter"})
    ).json
    assert strict(blocked).prompt_feedback.block_reason == "SAFETY" and "candidates" not in blocked  # type: ignore[union-attr]
    # The prompt was read: its tokens count, as countTokens counts them.
    prompt = {"contents": [user("one two three")], "systemInstruction": {"parts": [{"text": "Be brief."}]}}
    inner = {"model": "models/gemini-2.5-flash", **prompt}
    count = GENERATE.replace("generateContent", "countTokens")
    counted = app.post_json(count, {"generateContentRequest": inner}, headers=KEY).json["totalTokens"]
    for url in (GENERATE, GENERATE.replace(":generateContent", ":streamGenerateContent?alt=sse")):
        answer = app.post_json(url, prompt, headers=dict(KEY, **{"X-Mokku-Fault": "prompt_filter"})).text
        usage = json.loads(answer.removeprefix("data: ").strip())["usageMetadata"]
        assert counted > 0 and usage == {"promptTokenCount": counted, "totalTokenCount": counted}
    # Function declarations are read as prompt too, and counted alike.
    inner["tools"] = prompt["tools"] = [WEATHER]
    with_tools = app.post_json(count, {"generateContentRequest": inner}, headers=KEY).json["totalTokens"]
    assert with_tools == counted + count_tokens(json.dumps([WEATHER], separators=(",", ":")))
    assert generate(app, **prompt)["usageMetadata"]["promptTokenCount"] == with_tools
    # Whichever spelling the declarations use.
    snake = [{"function_declarations": WEATHER["functionDeclarations"]}]
    assert generate(app, **dict(prompt, tools=snake))["usageMetadata"]["promptTokenCount"] == with_tools
    inner["tools"] = snake
    assert (
        app.post_json(count, {"generateContentRequest": inner}, headers=KEY).json["totalTokens"] == with_tools
    )


def test_a_stream_error_fault_ends_with_an_error_chunk(app: webtest.TestApp) -> None:
    url = "/v1beta/models/gemini-2.5-flash@stream_error:2:streamGenerateContent?alt=sse"
    chunks = sse(app.post_json(url, {"contents": [user("one two three four")]}, headers=KEY).body)
    assert chunks[-1]["error"]["status"] == "INTERNAL" and len(chunks) == 3


@pytest.mark.parametrize(
    "body, words",
    [
        ({}, "* GenerateContentRequest.contents: contents is not specified\n"),
        (
            {"contents": [{"role": "user", "parts": []}]},
            "* GenerateContentRequest.contents[0].parts: contents.parts must not be empty.\n",
        ),
        (
            {"contents": [user("x")], "foo": 1},
            'Invalid JSON payload received. Unknown name "foo": Cannot find field.',
        ),
        (
            {"contents": "x"},
            "Invalid value at 'contents' (type.googleapis.com/google.ai.generativelanguage.v1beta.Content), \"x\"",
        ),
        (
            {"contents": [user("x")], "generationConfig": {"temperature": 3}},
            "temperature must be between 0 and 2",
        ),
    ],
)
def test_validation(app: webtest.TestApp, body: Dict[str, Any], words: str) -> None:
    error = app.post_json(GENERATE, body, headers=KEY, status=400).json["error"]
    assert error["status"] == "INVALID_ARGUMENT" and error["code"] == 400 and words in error["message"]


def test_keys_from_the_header_or_the_query(tmp_path: Path) -> None:
    app = webtest.TestApp(
        App(config.load({"MOKKU_API_KEY": "right", "MOKKU_JOURNAL": "1", "MOKKU_STATE": str(tmp_path / "s")}))
    )
    app.post_json(GENERATE, {"contents": [user("x")]}, headers={"x-goog-api-key": "right"})
    app.post_json(GENERATE + "?key=right", {"contents": [user("x")]})
    wrong = app.post_json(GENERATE + "?key=wrong", {"contents": [user("x")]}, status=400).json["error"]
    assert wrong["details"][0]["reason"] == "API_KEY_INVALID"
    for url in (GENERATE, "/v1beta/models/gemini-2.5-flash:countTokens"):
        missing = app.post_json(url, {"contents": [user("x")]}, status=403).json["error"]
        assert missing == {
            "code": 403,
            "message": "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API.",
            "status": "PERMISSION_DENIED",
        }
    entries = app.app.journal.entries()
    assert [entry["path"] for entry in entries][:2] == [GENERATE, GENERATE]
    assert "right" not in json.dumps(entries)


def test_deep_schemas_and_responses_are_bounded(app: webtest.TestApp) -> None:
    deep = '{"type":"OBJECT"}'
    response = '"x"'
    for level in range(450):
        deep = '{"type":"OBJECT","properties":{"a":' + deep + "}}"
        response = '{"a":' + response + ',"b":1}'
        if level == 120:
            kept = response  # nested as deep as a body may be
    headers = dict(KEY, **{"Content-Type": "application/json"})
    schema = '{"contents":[{"parts":[{"text":"x"}]}],"generationConfig":{"responseMimeType":"application/json","responseSchema":%s}}'
    refused = app.post(GENERATE, schema % deep, headers=headers, status=400).json["error"]
    assert "nests deeper than" in refused["message"]
    echoed = (
        '{"contents":[{"parts":[{"text":"x"}]},{"role":"model","parts":[{"functionCall":{"name":"f"}}]},'
        '{"parts":[{"functionResponse":{"name":"f","response":%s}}]}]}'
    )
    assert app.post(GENERATE, echoed % kept, headers=headers).json["candidates"][0]["finishReason"] == "STOP"
    refused = app.post(GENERATE, echoed % response, headers=headers, status=400).json["error"]
    assert "nests deeper than 256 levels" in refused["message"]


def test_the_span_names_gemini() -> None:
    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = webtest.TestApp(OpenTelemetryMiddleware(App(config.load({})), tracer_provider=provider))
    app.post_json(GENERATE + "?key=secret-key", {"contents": [user("x")]})
    (span,) = exporter.get_finished_spans()
    attributes = dict(span.attributes or {})
    assert (
        attributes["gen_ai.provider.name"] == "gcp.gemini"
        and attributes["gen_ai.request.model"] == "gemini-2.5-flash"
    )
    assert "secret-key" not in repr(attributes)
    provider.shutdown()


@pytest.mark.parametrize("mode", [["ANY"], {"a": 1}, 3, "SOMETIMES"])
def test_an_unknown_calling_mode_is_a_400(app: webtest.TestApp, mode: Any) -> None:
    body = {
        "contents": [user("x")],
        "tools": [WEATHER],
        "toolConfig": {"functionCallingConfig": {"mode": mode}},
    }
    assert (
        app.post_json(GENERATE, body, headers=KEY, status=400).json["error"]["status"] == "INVALID_ARGUMENT"
    )


def test_a_page_token_too_long_to_be_a_position_is_a_400(app: webtest.TestApp) -> None:
    error = app.get("/v1beta/models?pageToken=" + "9" * 5000, headers=KEY, status=400).json["error"]
    assert error["status"] == "INVALID_ARGUMENT" and error["message"] == "Invalid page token."


def test_real_context_windows_are_gemini_s_own() -> None:
    app = webtest.TestApp(App(config.load({"MOKKU_CONTEXT_WINDOW": "real"})))
    long_prompt = "word " * 200_000  # past OpenAI's default 128k window, well inside Gemini's million
    cut = generate(app, contents=[user(long_prompt)])
    assert cut["candidates"][0]["content"]["parts"][0]["text"]
    usage = cut["usageMetadata"]  # thoughts and text together within the model's 65,536
    assert usage["candidatesTokenCount"] + usage["thoughtsTokenCount"] == 65_536
    too_long = app.post_json(GENERATE, {"contents": [user("word " * 1_100_000)]}, headers=KEY, status=400)
    assert too_long.json["error"]["status"] == "INVALID_ARGUMENT"
    assert re.fullmatch(
        r"The input token count \(\d+\) exceeds the maximum number of tokens allowed \(1048576\)\.",
        too_long.json["error"]["message"],
    )
    url = "/v1beta/models/gemini-2.5-flash@context_length:generateContent"
    fault = app.post_json(url, {"contents": [user("hi")]}, headers=KEY, status=400).json["error"]
    assert fault["message"].startswith("The input token count (")


def test_only_the_alt_parameter_asks_for_sse(app: webtest.TestApp) -> None:
    stream = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    plain = app.post_json(stream + "?key=alt=sse", {"contents": [user("hi")]})
    assert plain.content_type == "application/json" and plain.json[0]["candidates"]
    events = app.post_json(stream + "?key=k&alt=sse", {"contents": [user("hi")]})
    assert events.content_type == "text/event-stream" and sse(events.body)


def test_a_stream_carries_every_candidate(app: webtest.TestApp) -> None:
    url = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    body = {"contents": [user("one two three")], "generationConfig": {"candidateCount": 3}}
    chunks = sse(app.post_json(url, body, headers=KEY).body)
    for chunk in chunks:
        strict(chunk)
        assert [candidate["index"] for candidate in chunk["candidates"]] == [0, 1, 2]
    for index in range(3):
        text = "".join(c["candidates"][index]["content"]["parts"][-1]["text"] for c in chunks)
        assert text == "one two three"
    assert {c["finishReason"] for c in chunks[-1]["candidates"]} == {"STOP"}


def test_the_openai_compatible_routes_answer_in_openai_s_envelope(app: webtest.TestApp) -> None:
    wrong = app.get("/v1beta/openai/embeddings", status=405).json
    assert set(wrong["error"]) == {"message", "type", "param", "code"}
    body = {"model": "models/gemini-embedding-001", "input": "x"}
    assert len(app.post_json("/v1beta/openai/embeddings", body).json["data"][0]["embedding"]) == 3072


def test_every_candidate_counts_in_the_usage_and_the_output_bound(
    make_app: Callable[..., webtest.TestApp],
) -> None:
    app = make_app({"MOKKU_MAX_OUTPUT_TOKENS": "10"})
    one = generate(app, contents=[user("one two three four")])
    three = generate(app, contents=[user("one two three four")], generationConfig={"candidateCount": 2})
    assert three["usageMetadata"]["candidatesTokenCount"] == 2 * one["usageMetadata"]["candidatesTokenCount"]
    stream = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    body = {"contents": [user("one two three four")], "generationConfig": {"candidateCount": 2}}
    chunks = sse(app.post_json(stream, body, headers=KEY).body)
    assert chunks[-1]["usageMetadata"] == three["usageMetadata"]
    body["generationConfig"] = {"candidateCount": 3}  # 3 x 4 tokens: past the bound of 10
    error = app.post_json(GENERATE, body, headers=KEY, status=400).json["error"]
    assert error["status"] == "INVALID_ARGUMENT" and "generation_config.candidate_count" in error["message"]
    assert "MOKKU_MAX_OUTPUT_TOKENS" in error["message"]


def test_an_enum_answer_is_the_bare_value(app: webtest.TestApp) -> None:
    config = {
        "responseMimeType": "text/x.enum",
        "responseSchema": {"type": "STRING", "enum": ["red", "green"]},
    }
    answer = generate(app, contents=[user("x")], generationConfig=config)
    assert answer["candidates"][0]["content"]["parts"] == [{"text": "red"}]


def test_a_thinking_budget_of_0_turns_thoughts_off(app: webtest.TestApp) -> None:
    thinking = {"includeThoughts": True, "thinkingBudget": 0}
    answer = generate(app, contents=[user("think")], generationConfig={"thinkingConfig": thinking})
    assert answer["candidates"][0]["content"]["parts"] == [{"text": "think"}]
    assert "thoughtsTokenCount" not in answer["usageMetadata"]
    pro = "/v1beta/models/gemini-2.5-pro:generateContent"
    body = {"contents": [user("think")], "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}}
    error = app.post_json(pro, body, headers=KEY, status=400).json["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["message"] == "Budget 0 is invalid. This model only works in thinking mode."


@pytest.mark.parametrize(
    "thinking, message",
    [
        (
            {"thinkingLevel": "LOW", "thinkingBudget": 1024},
            "You can only set only one of thinking budget and thinking level.",
        ),
        ({"thinkingBudget": 52428}, "The thinking budget (52428) is invalid."),
        ({"thinkingBudget": -5}, "The thinking budget (-5) is invalid."),
    ],
)
def test_a_thinking_config_the_api_refuses(
    app: webtest.TestApp, thinking: Dict[str, Any], message: str
) -> None:
    body = {"contents": [user("think")], "generationConfig": {"thinkingConfig": thinking}}
    error = app.post_json(GENERATE, body, headers=KEY, status=400).json["error"]
    assert error == {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}
    for budget in (-1, 32768):  # the model decides; the largest budget
        body["generationConfig"] = {"thinkingConfig": {"thinkingBudget": budget}}
        app.post_json(GENERATE, body, headers=KEY, status=200)


@pytest.mark.parametrize(
    "method, url",
    [
        ("POST", "/v1beta/models/gemini-2.5-flash:fooBar"),
        ("GET", GENERATE),
        ("PUT", "/v1/models/gemini-2.5-flash:streamGenerateContent"),
        ("DELETE", "/v1beta/models/gemini-2.5-flash"),
    ],
)
def test_a_method_google_does_not_serve_is_not_found(app: webtest.TestApp, method: str, url: str) -> None:
    answer = app.request(url, method=method, headers=KEY, body=b"{}", status=404)
    assert answer.json == {"error": {"code": 404, "message": "Method not found.", "status": "NOT_FOUND"}}
    assert "Allow" not in answer.headers


def test_a_model_answers_only_the_methods_it_serves(app: webtest.TestApp) -> None:
    embed = {"content": {"parts": [{"text": "a"}]}}
    for url, body, model, method in [
        ("/v1beta/models/gemini-2.5-flash:embedContent", embed, "gemini-2.5-flash", "embedContent"),
        (
            "/v1/models/text-embedding-004:generateContent",
            {"contents": [user("x")]},
            "text-embedding-004",
            "generateContent",
        ),
    ]:
        error = app.post_json(url, body, headers=KEY, status=404).json["error"]
        version = url.split("/")[1]
        assert error["status"] == "NOT_FOUND" and error["message"] == (
            f"models/{model} is not found for API version {version}, or is not supported for {method}. "
            "Call ListModels to see the list of available models and their supported methods."
        )
    assert app.post_json("/v1beta/models/my-own-model:embedContent", embed, headers=KEY).json["embedding"]


def test_property_ordering_and_snake_case_schema_keywords(app: webtest.TestApp) -> None:
    schema = {
        "type": "OBJECT",
        "properties": {
            "a": {"type": "STRING", "min_length": 3},
            "n": {"type": "INTEGER"},
            "l": {"type": "ARRAY", "items": {"type": "NUMBER"}, "min_items": 2, "max_items": 2},
        },
        "required": ["a", "n", "l"],
        "property_ordering": ["n", "a", "l"],
    }
    config = {"responseMimeType": "application/json", "responseSchema": schema}
    text = generate(app, contents=[user("x")], generationConfig=config)["candidates"][0]["content"]["parts"][
        0
    ]
    document = json.loads(text["text"])
    assert list(document) == ["n", "a", "l"]
    assert len(document["a"]) >= 3 and len(document["l"]) == 2


def test_calls_an_agent_wrote_in_its_text_count_as_called(app: webtest.TestApp) -> None:
    """smolagents keeps its calls as text in the history: a forced call moved on under chat but called
    get_weather again and again here, until the agent ran out of steps."""
    final = {
        "name": "final_answer",
        "parameters": {"type": "OBJECT", "properties": {"answer": {"type": "STRING"}}},
    }
    declarations = {"functionDeclarations": [*WEATHER["functionDeclarations"], final]}
    written = "Calling tools:\n[{'id': 'call_1', 'type': 'function', 'function': {'name': 'get_weather', 'arguments': {}}}]"
    contents = [
        user("Weather in Oslo?"),
        {"role": "model", "parts": [{"text": written}]},
        user("Observation: Sunny"),
    ]
    answer = generate(
        app, contents=contents, tools=[declarations], toolConfig={"functionCallingConfig": {"mode": "ANY"}}
    )
    parts = answer["candidates"][0]["content"]["parts"]
    assert [part["functionCall"]["name"] for part in parts if "functionCall" in part] == ["final_answer"]
