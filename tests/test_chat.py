"""``POST /v1/chat/completions`` in-process: echo, parameters, streaming, validation."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any, Dict, List, Optional

import pytest
import webtest

from mokku import config
from mokku.api.models import snapshot
from mokku.api.tokens import count, tokenize
from mokku.server import stream as mokku_sse
from mokku.server.app import App
from mokku.server.http import JSONTemplate, Request, dumps
from mokku.simulation.latency import Pace

from . import sse, wsgi
from .spec import assert_invalid_request, validate

URL = "/v1/chat/completions"
QUOTA_BODY = (
    b'{"error":{"message":"You exceeded your current quota, please check your plan and billing details.",'
    b'"type":"insufficient_quota","param":null,"code":"insufficient_quota"}}'
)


def user(text: Any) -> List[Dict[str, Any]]:
    return [{"role": "user", "content": text}]


def chat(app: webtest.TestApp, **body: Any) -> Dict[str, Any]:
    body.setdefault("model", "gpt-4o")
    response = app.post_json(URL, body)
    assert response.content_type == "application/json"
    validate(response.json, "CreateChatCompletionResponse")
    return response.json


def stream(app: webtest.TestApp, **body: Any) -> List[Dict[str, Any]]:
    body.setdefault("model", "gpt-4o")
    return sse.post_stream(
        app, URL, body, lambda chunk: validate(chunk, "CreateChatCompletionStreamResponse")
    )


def test_echoes_last_user_message(app: webtest.TestApp) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "Hello, wörld! 日本語 🎉"},
    ]
    before = int(time.time())
    body = chat(app, messages=messages)
    after = time.time()
    assert re.fullmatch(r"chatcmpl-[A-Za-z0-9]{29}", body["id"])
    assert body["object"] == "chat.completion"
    assert body["model"] == "gpt-4o-2024-08-06"  # the snapshot the alias serves, as the real API names it
    assert before <= body["created"] <= after
    assert body["service_tier"] == "default"
    assert body["system_fingerprint"].startswith("fp_")
    assert body["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello, wörld! 日本語 🎉",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]


def test_usage_follows_the_token_rule(app: webtest.TestApp) -> None:
    messages = [{"role": "system", "content": "Be nice."}, {"role": "user", "content": "Hello there, friend"}]
    usage = chat(app, messages=messages)["usage"]
    prompt = 3 + (3 + count("Be nice.")) + (3 + count("Hello there, friend"))
    assert usage["prompt_tokens"] == prompt == 3 + 6 + 7
    assert usage["completion_tokens"] == 4
    assert usage["total_tokens"] == prompt + 4
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0, "audio_tokens": 0}
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0


def test_named_messages_cost_one_more_token(app: webtest.TestApp) -> None:
    plain = chat(app, messages=[{"role": "user", "content": "hi"}])["usage"]["prompt_tokens"]
    named = chat(app, messages=[{"role": "user", "content": "hi", "name": "bob"}])["usage"]["prompt_tokens"]
    assert named == plain + 1


def test_array_content_text_parts_are_joined_and_media_ignored(app: webtest.TestApp) -> None:
    content = [
        {"type": "text", "text": "Describe"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "text", "text": "this picture"},
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
    ]
    body = chat(app, messages=user(content))
    assert body["choices"][0]["message"]["content"] == "Describe\nthis picture"


def test_user_message_with_only_media_echoes_empty(app: webtest.TestApp) -> None:
    content = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]
    body = chat(app, messages=user(content))
    assert body["choices"][0]["message"]["content"] == ""
    assert body["usage"]["completion_tokens"] == 0


def test_without_user_message_echoes_last_message(app: webtest.TestApp) -> None:
    messages = [{"role": "system", "content": "sys text"}, {"role": "developer", "content": "dev text"}]
    assert chat(app, messages=messages)["choices"][0]["message"]["content"] == "dev text"


def test_user_message_wins_over_later_assistant_messages(app: webtest.TestApp) -> None:
    messages = [{"role": "user", "content": "the question"}, {"role": "assistant", "content": "an answer"}]
    assert chat(app, messages=messages)["choices"][0]["message"]["content"] == "the question"


CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


def test_a_tool_result_is_echoed(app: webtest.TestApp) -> None:
    messages = [
        {"role": "user", "content": "the question"},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "c1", "content": "tool output"},
    ]
    assert chat(app, messages=messages)["choices"][0]["message"]["content"] == "tool output"


def test_n_gives_identical_choices(app: webtest.TestApp) -> None:
    body = chat(app, messages=user("same for all"), n=3)
    assert [choice["index"] for choice in body["choices"]] == [0, 1, 2]
    assert {choice["message"]["content"] for choice in body["choices"]} == {"same for all"}
    assert body["usage"]["completion_tokens"] == 3 * count("same for all")


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_token_limit_truncates_with_length(app: webtest.TestApp, field: str) -> None:
    text = "one two three four five"
    body = chat(app, messages=user(text), **{field: 2})
    assert body["choices"][0]["message"]["content"] == "one two"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 2


def test_both_token_limits_at_once_are_refused(app: webtest.TestApp) -> None:
    both = {"model": "gpt-4o", "messages": user("one two"), "max_tokens": 2, "max_completion_tokens": 3}
    error = app.post_json(URL, both, status=400).json["error"]
    assert error == {
        "message": "Setting 'max_tokens' and 'max_completion_tokens' at the same time is not supported.",
        "type": "invalid_request_error",
        "param": "max_tokens",
        "code": "invalid_parameter_combination",
    }
    assert (
        chat(app, messages=user("one two"), max_tokens=None, max_completion_tokens=1)["usage"][
            "completion_tokens"
        ]
        == 1
    )  # a null one is not sent


def test_token_limit_not_reached_is_stop(app: webtest.TestApp) -> None:
    body = chat(app, messages=user("one two"), max_tokens=2)
    assert body["choices"][0]["message"]["content"] == "one two"
    assert body["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("stop", "expected"),
    [
        ("three", "one two "),
        (["zzz", "two", "one"], ""),
        (["four", "two"], "one "),
        (["absent"], "one two three four"),
        ("", "one two three four"),
    ],
)
def test_stop_cuts_before_first_match(app: webtest.TestApp, stop: Any, expected: str) -> None:
    body = chat(app, messages=user("one two three four"), stop=stop)
    assert body["choices"][0]["message"]["content"] == expected
    assert body["choices"][0]["finish_reason"] == "stop"


def test_stop_then_token_limit(app: webtest.TestApp) -> None:
    body = chat(app, messages=user("one two three four"), stop="four", max_tokens=2)
    assert body["choices"][0]["message"]["content"] == "one two"
    assert body["choices"][0]["finish_reason"] == "length"


def test_stream_chunk_sequence(app: webtest.TestApp) -> None:
    text = "Hello, streaming world!"
    chunks = stream(app, messages=user(text))
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert len({chunk["created"] for chunk in chunks}) == 1
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert all("usage" not in chunk for chunk in chunks)
    choices = [chunk["choices"] for chunk in chunks]
    assert all(len(c) == 1 for c in choices)
    assert choices[0][0] == {
        "index": 0,
        "delta": {"role": "assistant", "content": "", "refusal": None},
        "logprobs": None,
        "finish_reason": None,
    }
    deltas = [c[0]["delta"] for c in choices[1:-1]]
    assert deltas == [{"content": token} for token in tokenize(text)]
    assert all(c[0]["finish_reason"] is None for c in choices[:-1])
    assert choices[-1][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert sse.content(chunks) == text


def test_stream_include_usage(app: webtest.TestApp) -> None:
    chunks = stream(app, messages=user("count me"), stream_options={"include_usage": True})
    assert all(chunk["usage"] is None for chunk in chunks[:-1])
    last = chunks[-1]
    assert last["choices"] == []
    whole = chat(app, messages=user("count me"))["usage"]
    assert last["usage"] == whole


def test_stream_include_usage_false_has_no_usage_chunk(app: webtest.TestApp) -> None:
    chunks = stream(app, messages=user("x y"), stream_options={"include_usage": False})
    assert all("usage" not in chunk for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_stream_n_and_limit(app: webtest.TestApp) -> None:
    chunks = stream(app, messages=user("alpha beta gamma"), n=2, max_tokens=2)
    for index in (0, 1):
        assert sse.content(chunks, index) == "alpha beta"
        finals = [
            c for chunk in chunks for c in chunk["choices"] if c["index"] == index and c["finish_reason"]
        ]
        assert [c["finish_reason"] for c in finals] == ["length"]


@pytest.mark.parametrize(
    "text",
    [
        "plain ascii text",
        "Grüße, naïve café — “quotes” ½",
        "日本語のテキストとかな、中文字符",
        "emoji 🎉👩‍👩‍👧 flags 🇯🇵 and e\u0301 combining",
        "lines\nand\ttabs\r\n  indented\n\n",
        'json "quotes" \\ backslashes </script>',
        "",
    ],
)
def test_stream_concatenation_equals_whole_content(app: webtest.TestApp, text: str) -> None:
    whole = chat(app, messages=user(text))["choices"][0]["message"]["content"]
    assert whole == text
    assert sse.content(stream(app, messages=user(text))) == text


def test_credit_error_is_402_exact(app: webtest.TestApp) -> None:
    response = app.post_json(URL, {"model": "credit-error", "messages": user("hi")}, status=402)
    assert response.body == QUOTA_BODY
    validate(response.json, "ErrorResponse")
    response = app.post_json(
        URL, {"model": "credit-error", "messages": user("hi"), "stream": True}, status=402
    )
    assert response.body == QUOTA_BODY
    assert response.content_type == "application/json"


def test_other_errors_are_written_as_the_real_api_writes_them(app: webtest.TestApp) -> None:
    """Indented by four spaces: LiteLLM, for one, finds a context overflow by its
    ``"code": "context_length_exceeded"``. The 402 above stays as it has always been."""
    raw = app.post_json(URL, {"model": "gpt-4o@context_length", "messages": user("hi")}, status=400).body
    assert raw.startswith(b'{\n    "error": {\n        "message": "This model') and raw.endswith(
        b"\n    }\n}\n"
    )
    assert b'"code": "context_length_exceeded"' in raw
    assert json.loads(raw)["error"]["param"] == "messages"
    azure = app.post_json(
        "/openai/deployments/d/chat/completions?api-version=2024-10-21", {"messages": 5}, status=400
    ).body
    assert azure.startswith(b'{"error":{')  # Azure's gateway writes it compact


def test_credit_error_wins_over_other_problems(app: webtest.TestApp) -> None:
    response = app.post_json(URL, {"model": "credit-error", "messages": []}, status=402)
    assert response.body == QUOTA_BODY


MESSAGE = user("hi")

INVALID = [
    # (body, param, code, message pattern)
    # Options only passed along are still checked, as the real API checks them.
    (
        {"model": "m", "messages": MESSAGE, "reasoning_effort": "extreme"},
        "reasoning_effort",
        "invalid_value",
        r"^Invalid value: 'extreme'\. Supported values are: 'none', 'minimal', 'low', 'medium', 'high', 'xhigh', and 'max'\.$",
    ),
    (
        {"model": "m", "messages": MESSAGE, "verbosity": "loud"},
        "verbosity",
        "invalid_value",
        r"'low', 'medium', and 'high'",
    ),
    ({"model": "m", "messages": MESSAGE, "service_tier": "gold"}, "service_tier", "invalid_value", r"'flex'"),
    (
        {"model": "m", "messages": MESSAGE, "modalities": ["video"]},
        "modalities[0]",
        "invalid_value",
        r"'text' and 'audio'",
    ),
    (
        {"model": "m", "messages": MESSAGE, "modalities": "text"},
        "modalities",
        "invalid_type",
        r"expected an array",
    ),
    (
        {"model": "m", "messages": MESSAGE, "prediction": 5},
        "prediction",
        "invalid_type",
        r"expected an object",
    ),
    (
        {"model": "m", "messages": MESSAGE, "prediction": {"type": "other", "content": "x"}},
        "prediction.type",
        "invalid_value",
        r"'content'",
    ),
    (
        {"model": "m", "messages": MESSAGE, "prediction": {"type": "content"}},
        "prediction.content",
        "missing_required_parameter",
        "",
    ),
    (
        {"model": "m", "messages": MESSAGE, "prediction": {"type": "content", "content": 5}},
        "prediction.content",
        "invalid_type",
        "a string or array",
    ),
    (
        {"model": "m", "messages": MESSAGE, "audio": {"voice": "alloy", "format": "mp9"}},
        "audio.format",
        "invalid_value",
        r"'wav', 'aac', 'mp3', 'flac', 'opus', and 'pcm16'",
    ),
    (
        {"model": "m", "messages": MESSAGE, "audio": {"format": "wav"}},
        "audio.voice",
        "missing_required_parameter",
        "",
    ),
    (
        {"model": "m", "messages": MESSAGE, "audio": {"voice": 5, "format": "wav"}},
        "audio.voice",
        "invalid_type",
        "a string or object",
    ),
    (
        {"model": "m", "messages": MESSAGE, "audio": {"voice": {}, "format": "wav"}},
        "audio.voice.id",
        "missing_required_parameter",
        "",
    ),
    (
        {"model": "m", "messages": MESSAGE, "web_search_options": {"search_context_size": "huge"}},
        "web_search_options.search_context_size",
        "invalid_value",
        r"'low', 'medium', and 'high'",
    ),
    (
        {"model": "m", "messages": MESSAGE, "web_search_options": {"user_location": "oslo"}},
        "web_search_options.user_location",
        "invalid_type",
        "an object",
    ),
    (
        {"model": "m", "messages": MESSAGE, "web_search_options": {"user_location": {"type": "approximate"}}},
        "web_search_options.user_location.approximate",
        "missing_required_parameter",
        "",
    ),
    (
        {"model": "m", "messages": MESSAGE, "prompt_cache_key": 5},
        "prompt_cache_key",
        "invalid_type",
        r"a string",
    ),
    (
        {"model": "m", "messages": MESSAGE, "safety_identifier": "x" * 65},
        "safety_identifier",
        "string_above_max_length",
        r"^Invalid 'safety_identifier': string too long\. Expected a string with maximum length 64, but got a string with length 65 instead\.$",
    ),
    (
        {"model": 4, "messages": MESSAGE},
        "model",
        "invalid_type",
        r"Invalid type for 'model': expected a string, but got an integer",
    ),
    ({"model": "m"}, "messages", "missing_required_parameter", r"Missing required parameter: 'messages'\."),
    (
        {"model": "m", "messages": "hi"},
        "messages",
        "invalid_type",
        r"^Invalid type for 'messages': expected an array of objects, but got a string instead\.$",
    ),
    ({"model": "m", "messages": []}, "messages", "empty_array", r"Invalid 'messages': empty array"),
    (
        {"model": "m", "messages": ["hi"]},
        "messages[0]",
        "invalid_type",
        r"expected an object, but got a string",
    ),
    (
        {"model": "m", "messages": [{"content": "x"}]},
        "messages[0].role",
        "missing_required_parameter",
        r"'messages\[0\]\.role'",
    ),
    (
        {"model": "m", "messages": [{"role": "robot", "content": "x"}]},
        "messages[0].role",
        "invalid_value",
        r"Invalid value: 'robot'\. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'\.",
    ),
    (
        {"model": "m", "messages": [{"role": "user"}]},
        "messages.[0].content",
        None,
        r"^Invalid value for 'content': expected a string, got null\.$",
    ),
    (
        {"model": "m", "messages": [{"role": "user", "content": 5}]},
        "messages[0].content",
        "invalid_type",
        r"expected one of a string or array of objects, but got an integer",
    ),
    (
        {"model": "m", "messages": [{"role": "user", "content": []}]},
        "messages[0].content",
        "empty_array",
        r"empty array",
    ),
    (
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "video"}]}]},
        "messages[0].content[0].type",
        "invalid_value",
        r"Invalid value: 'video'",
    ),
    (
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]},
        "messages[0].content[0].text",
        "missing_required_parameter",
        r"content\[0\]\.text",
    ),
    (
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]},
        "messages[0].content[0].text",
        "invalid_type",
        r"expected a string",
    ),
    (
        {
            "model": "m",
            "messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}],
        },
        "messages[0].content[0].type",
        "invalid_value",
        r"Supported values are: 'text'\.",
    ),
    (
        {"model": "m", "messages": [{"role": "tool", "content": "out"}]},
        "messages[0].tool_call_id",
        "missing_required_parameter",
        r"tool_call_id",
    ),
    (
        {"model": "m", "messages": [{"role": "assistant"}]},
        "messages.[0].content",
        None,
        r"^Invalid value for 'content': expected a string, got null\.$",
    ),
    (
        {"model": "m", "messages": [{"role": "assistant", "content": None, "tool_calls": "x"}]},
        "messages[0].tool_calls",
        "invalid_type",
        r"expected an array of objects, but got a string instead",
    ),
    (
        {"model": "m", "messages": [{"role": "function", "content": "x"}]},
        "messages[0].name",
        "missing_required_parameter",
        r"'messages\[0\]\.name'",
    ),
    (
        {"model": "m", "messages": MESSAGE, "temperature": 2.5},
        "temperature",
        "decimal_above_max_value",
        r"Expected a value <= 2, but got 2\.5 instead",
    ),
    (
        {"model": "m", "messages": MESSAGE, "temperature": -0.1},
        "temperature",
        "decimal_below_min_value",
        r"Expected a value >= 0",
    ),
    (
        {"model": "m", "messages": MESSAGE, "temperature": "hot"},
        "temperature",
        "invalid_type",
        r"expected a decimal, but got a string",
    ),
    ({"model": "m", "messages": MESSAGE, "top_p": 1.5}, "top_p", "decimal_above_max_value", r"<= 1"),
    (
        {"model": "m", "messages": MESSAGE, "n": 0},
        "n",
        "integer_below_min_value",
        r"Expected a value >= 1, but got 0 instead",
    ),
    ({"model": "m", "messages": MESSAGE, "n": 129}, "n", "integer_above_max_value", r"<= 128"),
    (
        {"model": "m", "messages": MESSAGE, "n": 1.5},
        "n",
        "invalid_type",
        r"expected an integer, but got a decimal number",
    ),
    (
        {"model": "m", "messages": MESSAGE, "n": 1e308},
        "n",
        "invalid_type",
        r"but got a decimal number instead\.$",
    ),
    (
        {"model": "m", "messages": MESSAGE, "seed": 2**63},
        "seed",
        "integer_above_max_value",
        r"<= 9223372036854775807",
    ),
    (
        {"model": "m", "messages": MESSAGE, "n": True},
        "n",
        "invalid_type",
        r"expected an integer, but got a boolean",
    ),
    (
        {"model": "m", "messages": MESSAGE, "presence_penalty": 3},
        "presence_penalty",
        "decimal_above_max_value",
        r"<= 2",
    ),
    (
        {"model": "m", "messages": MESSAGE, "frequency_penalty": -3},
        "frequency_penalty",
        "decimal_below_min_value",
        r">= -2",
    ),
    ({"model": "m", "messages": MESSAGE, "max_tokens": 0}, "max_tokens", "integer_below_min_value", r">= 1"),
    (
        {"model": "m", "messages": MESSAGE, "max_completion_tokens": -1},
        "max_completion_tokens",
        "integer_below_min_value",
        r">= 1",
    ),
    (
        {"model": "m", "messages": MESSAGE, "stop": ["a", "b", "c", "d", "e"]},
        "stop",
        "array_above_max_length",
        r"maximum length 4, but got an array with length 5",
    ),
    ({"model": "m", "messages": MESSAGE, "stop": [1]}, "stop[0]", "invalid_type", r"expected a string"),
    ({"model": "m", "messages": MESSAGE, "stop": 7}, "stop", "invalid_type", r"expected an array"),
    (
        {"model": "m", "messages": MESSAGE, "stream": "yes"},
        "stream",
        "invalid_type",
        r"expected a boolean, but got a string",
    ),
    (
        {"model": "m", "messages": MESSAGE, "stream_options": {"include_usage": True}},
        "stream_options",
        None,
        r"only allowed when 'stream' is enabled",
    ),
    (
        {"model": "m", "messages": MESSAGE, "stream": True, "stream_options": {"include_usage": 1}},
        "stream_options.include_usage",
        "invalid_type",
        r"expected a boolean",
    ),
    (
        {"model": "m", "messages": MESSAGE, "logprobs": "yes"},
        "logprobs",
        "invalid_type",
        r"expected a boolean",
    ),
    (
        {"model": "m", "messages": MESSAGE, "logprobs": True, "top_logprobs": 21},
        "top_logprobs",
        "integer_above_max_value",
        r"<= 20",
    ),
    (
        {"model": "m", "messages": MESSAGE, "top_logprobs": 2},
        "top_logprobs",
        None,
        r"The 'top_logprobs' parameter is only allowed when 'logprobs' is enabled\.",
    ),
    (
        {"model": "m", "messages": MESSAGE, "tools": {"type": "function"}},
        "tools",
        "invalid_type",
        r"expected an array of objects, but got an object instead",
    ),
    ({"model": "m", "messages": MESSAGE, "tools": ["f"]}, "tools[0]", "invalid_type", r"expected an object"),
    (
        {"model": "m", "messages": MESSAGE, "tools": [{"type": "retrieval"}]},
        "tools[0].type",
        "invalid_value",
        r"Invalid value: 'retrieval'",
    ),
    (
        {"model": "m", "messages": MESSAGE, "tools": [{"type": "function"}]},
        "tools[0].function",
        "missing_required_parameter",
        r"tools\[0\]\.function",
    ),
    (
        {"model": "m", "messages": MESSAGE, "tools": [{"type": "function", "function": {}}]},
        "tools[0].function.name",
        "missing_required_parameter",
        r"function\.name",
    ),
    (
        {"model": "m", "messages": MESSAGE, "response_format": {"type": "xml"}},
        "response_format.type",
        "invalid_value",
        r"Supported values are: 'json_object', 'json_schema', and 'text'\.",
    ),
    (
        {"model": "m", "messages": MESSAGE, "response_format": {"type": "json_schema"}},
        "response_format.json_schema",
        "missing_required_parameter",
        r"json_schema",
    ),
    (
        {"model": "m", "messages": MESSAGE, "response_format": "json"},
        "response_format",
        "invalid_type",
        r"expected an object",
    ),
]


@pytest.mark.parametrize(("body", "param", "code", "message"), INVALID)
def test_validation_errors(
    app: webtest.TestApp, body: Dict[str, Any], param: str, code: Any, message: str
) -> None:
    for streaming in (False, True):
        sent = dict(body, stream=True) if streaming and "stream" not in body else body
        if sent is not body and "stream_options" in sent:
            continue
        assert_invalid_request(app.post_json(URL, sent, status=400).json, param, code, message)


def _calls(*ids: str) -> Dict[str, Any]:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": id_, "type": "function", "function": {"name": "f", "arguments": "{}"}} for id_ in ids
        ],
    }


def _answer(id_: str) -> Dict[str, Any]:
    return {"role": "tool", "tool_call_id": id_, "content": "done"}


ASKED = {"role": "user", "content": "go"}


@pytest.mark.parametrize(
    ("messages", "param", "message"),
    [
        (
            [ASKED, _answer("call_1")],
            "messages.[1].role",
            r"messages with role 'tool' must be a response to a preceeding",
        ),
        (
            [ASKED, {"role": "assistant", "content": "no calls"}, _answer("call_1")],
            "messages.[2].role",
            r"must be a response to a preceeding message with 'tool_calls'\.",
        ),
        (
            [ASKED, _calls("call_1"), _answer("call_1"), ASKED, _answer("call_1")],
            "messages.[4].role",
            r"must be a response to a preceeding message",
        ),
        (
            [ASKED, _calls("call_1", "call_2"), _answer("call_2"), ASKED],
            "messages.[3].role",
            r"^An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            r"'tool_call_id'\. The following tool_call_ids did not have response messages: call_1$",
        ),
        (
            [ASKED, _calls("call_1"), {"role": "system", "content": "between"}, _answer("call_1")],
            "messages.[2].role",
            r"did not have response messages: call_1$",
        ),
        (  # the conversation may not end before every call is answered
            [ASKED, _calls("call_1", "call_2"), _answer("call_2")],
            "messages",
            r"did not have response messages: call_1$",
        ),
        ([ASKED, _calls("call_1", "call_2")], "messages", r"did not have response messages: call_1, call_2$"),
        (  # one answer per call
            [ASKED, _calls("call_1", "call_2"), _answer("call_1"), _answer("call_2"), _answer("call_2")],
            "messages.[4].role",
            r"must be a response to a preceeding message with 'tool_calls'\.",
        ),
        (
            [ASKED, _calls("call_1"), _answer("zzz")],
            "messages.[2].tool_call_id",
            r"^Invalid parameter: 'tool_call_id' of 'zzz' not found in 'tool_calls' of previous message\.$",
        ),
    ],
)
def test_tool_messages_answer_the_calls_just_before_them(
    app: webtest.TestApp, messages: List[Dict[str, Any]], param: str, message: str
) -> None:
    answer = app.post_json(URL, {"model": "m", "messages": messages}, status=400).json
    assert_invalid_request(answer, param, None, message)


def test_calls_answered_in_any_order_are_accepted(app: webtest.TestApp) -> None:
    loop = [ASKED, _calls("call_1", "call_2"), _answer("call_2"), _answer("call_1")]
    assert chat(app, messages=loop)["choices"][0]["message"]["content"] == "done"
    assert (
        chat(app, messages=[*loop, {"role": "user", "content": "next"}])["choices"][0]["message"]["content"]
        == "next"
    )


@pytest.mark.parametrize(
    ("part", "param", "code", "message"),
    [
        (
            {"type": "image_url", "image_url": {}},
            "image_url.url",
            "missing_required_parameter",
            "Missing required",
        ),
        (
            {"type": "image_url", "image_url": {"url": 5}},
            "image_url.url",
            "invalid_type",
            "expected a string",
        ),
        (
            {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "ultra"}},
            "image_url.detail",
            "invalid_value",
            r"^Invalid value: 'ultra'\. Supported values are: 'auto', 'low', and 'high'\.$",
        ),
        (
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "ogg"}},
            "input_audio.format",
            "invalid_value",
            "Supported values are: 'wav' and 'mp3'",
        ),
        (
            {"type": "input_audio", "input_audio": {"format": "wav"}},
            "input_audio.data",
            "missing_required_parameter",
            "",
        ),
        (
            {"type": "input_audio", "input_audio": {"data": "AAAA"}},
            "input_audio.format",
            "missing_required_parameter",
            "",
        ),
        ({"type": "file", "file": {"file_id": 5}}, "file.file_id", "invalid_type", "expected a string"),
        ({"type": "file", "file": {"filename": ["a"]}}, "file.filename", "invalid_type", "expected a string"),
    ],
)
def test_the_objects_inside_content_parts_are_checked(
    app: webtest.TestApp, part: Dict[str, Any], param: str, code: str, message: str
) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "look"}, part]}]
    answer = app.post_json(URL, {"model": "gpt-4o", "messages": messages}, status=400).json
    assert_invalid_request(answer, f"messages[0].content[1].{param}", code, message)


def test_valid_messages_of_every_role(app: webtest.TestApp) -> None:
    messages = [
        {"role": "developer", "content": [{"type": "text", "text": "dev"}]},
        {"role": "system", "content": "sys", "name": "setup"},
        {
            "role": "user",
            "content": [{"type": "file", "file": {"file_id": "file-1"}}, {"type": "text", "text": "q"}],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "result"}]},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
        {"role": "function", "name": "f", "content": None},
        {"role": "user", "content": "last"},
    ]
    assert chat(app, messages=messages)["choices"][0]["message"]["content"] == "last"


def test_unknown_and_known_extra_params_are_accepted(app: webtest.TestApp) -> None:
    body = chat(
        app,
        model="mokku-echo-1",  # any id takes a reasoning effort; a known chat model refuses it (below)
        messages=user("hi"),
        temperature=0.2,
        top_p=1,
        seed=42,
        user="u-1",
        metadata={"k": "v"},
        store=True,
        reasoning_effort="low",
        logit_bias={"50256": -100},
        brand_new_parameter={"x": 1},
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        tool_choice="none",
        response_format={"type": "text"},
    )
    assert body["choices"][0]["message"]["content"] == "hi"


@pytest.mark.parametrize(
    ("extra", "param", "message"),
    [  # the real API's answers (gpt-5.6-terra), word for word
        (
            {"functions": "x"},
            "functions",
            "Invalid type for 'functions': expected an array of function definitions, but got a string instead.",
        ),
        (
            {"metadata": "x"},
            "metadata",
            "Invalid type for 'metadata': expected a metadata object, but got a string instead.",
        ),
    ],
)
def test_type_errors_name_what_the_field_holds(
    app: webtest.TestApp, extra: Dict[str, Any], param: str, message: str
) -> None:
    error = app.post_json(URL, {"model": "m", "messages": MESSAGE, **extra}, status=400).json["error"]
    assert (error["param"], error["message"]) == (param, message)


def test_prompt_cache_retention_is_refused_in_chats_own_words(app: webtest.TestApp) -> None:
    body = {"model": "m", "messages": MESSAGE, "prompt_cache_retention": {}}
    error = app.post_json(URL, body, status=400).json["error"]
    assert (
        error["message"]
        == "Invalid type for 'prompt_cache_retention': expected one of 'in_memory' or '24h', but got an object instead."
    )
    body["prompt_cache_retention"] = "1h"
    error = app.post_json(URL, body, status=400).json["error"]
    assert (error["param"], error["code"], error["message"]) == (
        "prompt_cache_retention",
        None,
        "Invalid prompt_cache_retention argument",
    )
    body["prompt_cache_retention"] = "in_memory"
    assert app.post_json(URL, body).status_int == 200


NULL_CONTENT = "Invalid value for 'content': expected a string, got null."
CONTENT_TYPES = "expected one of a string or array of objects"
# The real API's answers (gpt-5.6-terra): the schema (types, roles, a developer message's content) is
# checked across every message first, then the model's limits, then whether each message has content.
CONTENT_ROWS = [
    (
        [*user("a"), {"role": "developer"}],
        {},
        "messages[1].content",
        "Missing required parameter: 'messages[1].content'.",
    ),
    (
        [*user("a"), {"role": "developer", "content": None}],
        {},
        "messages[1].content",
        f"Invalid type for 'messages[1].content': {CONTENT_TYPES}, but got null instead.",
    ),
    (
        [*user("a"), {"role": "developer", "refusal": "no"}],
        {},
        "messages[1].content",
        "Missing required parameter: 'messages[1].content'.",
    ),
    ([*user("a"), {"role": "assistant", "refusal": None}], {}, "messages.[1].content", NULL_CONTENT),
    ([*user("a"), {"role": "assistant", "tool_calls": None}], {}, "messages.[1].content", NULL_CONTENT),
    ([*user("a"), {"role": "assistant", "function_call": None}], {}, "messages.[1].content", NULL_CONTENT),
    (
        [*user("a"), {"role": "assistant", "content": 7, "tool_calls": []}],
        {},
        "messages[1].content",
        f"Invalid type for 'messages[1].content': {CONTENT_TYPES}, but got an integer instead.",
    ),
    (
        [{"role": "user"}, {"role": "user", "content": 7}],
        {},
        "messages[1].content",
        f"Invalid type for 'messages[1].content': {CONTENT_TYPES}, but got an integer instead.",
    ),
    ([{"role": "user"}, *user("a")], {}, "messages.[0].content", NULL_CONTENT),
    (
        [{"role": "user"}, {"role": "bogus", "content": "a"}],
        {},
        "messages[1].role",
        "Invalid value: 'bogus'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.",
    ),
    (
        [{"role": "user"}],
        {"model": "gpt-5", "temperature": 0.5},
        "temperature",
        "Unsupported value: 'temperature' does not support 0.5 with this model. Only the default (1) value is supported.",
    ),
    ([{"role": "user"}], {"model": "gpt-5", "temperature": 1}, "messages.[0].content", NULL_CONTENT),
    (
        [*user("a"), {"role": "tool", "tool_call_id": "c", "refusal": "no"}],
        {},
        "messages.[1].content",
        NULL_CONTENT,
    ),
    ([{"role": "system", "audio": {"id": "a"}}, *user("a")], {}, "messages.[0].content", NULL_CONTENT),
    (
        [
            {
                "role": "user",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            }
        ],
        {},
        "messages.[0].content",
        NULL_CONTENT,
    ),
]


@pytest.mark.parametrize(("messages", "extra", "param", "message"), CONTENT_ROWS)
def test_a_message_without_content(
    app: webtest.TestApp, messages: List[Any], extra: Dict[str, Any], param: str, message: str
) -> None:
    error = app.post_json(URL, {"model": "m", "messages": messages, **extra}, status=400).json["error"]
    assert (error["param"], error["message"]) == (param, message)


@pytest.mark.parametrize(
    ("call", "param", "code"),
    [
        ("c1", "messages[1].tool_calls[0]", "invalid_type"),
        (
            {"type": "function", "function": {"name": "f", "arguments": "{}"}},
            "messages[1].tool_calls[0].id",
            "missing_required_parameter",
        ),
        (
            {"id": "c1", "function": {"name": "f", "arguments": "{}"}},
            "messages[1].tool_calls[0].type",
            "missing_required_parameter",
        ),
        ({"id": "c1", "type": "bogus"}, "messages[1].tool_calls[0].type", "invalid_value"),
        (
            {"id": "c1", "type": "function"},
            "messages[1].tool_calls[0].function",
            "missing_required_parameter",
        ),
        (
            {"id": "c1", "type": "function", "function": "f"},
            "messages[1].tool_calls[0].function",
            "invalid_type",
        ),
        (
            {"id": "c1", "type": "function", "function": 5},
            "messages[1].tool_calls[0].function",
            "invalid_type",
        ),
        (
            {"id": "c1", "type": "function", "function": {"name": 5, "arguments": "{}"}},
            "messages[1].tool_calls[0].function.name",
            "invalid_type",
        ),
        (
            {"id": "c1", "type": "function", "function": {"name": "f"}},
            "messages[1].tool_calls[0].function.arguments",
            "missing_required_parameter",
        ),
        (
            {"id": "c1", "type": "custom", "custom": {"name": "f"}},
            "messages[1].tool_calls[0].custom.input",
            "missing_required_parameter",
        ),
    ],
)
def test_a_handed_back_call_is_checked_field_by_field(
    app: webtest.TestApp, call: Any, param: str, code: str
) -> None:
    turns = [
        *user("a"),
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "x"},
    ]
    error = app.post_json(URL, {"model": "m", "messages": turns}, status=400).json["error"]
    assert (error["param"], error["code"]) == (param, code)


def test_an_assistant_message_may_carry_a_call_or_audio_instead_of_content(app: webtest.TestApp) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    turns = [
        *user("a"),
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "x"},
    ]
    assert app.post_json(URL, {"model": "m", "messages": turns}).status_int == 200
    turns = [*user("a"), {"role": "assistant", "audio": {"id": "audio_1"}}, *user("b")]
    assert app.post_json(URL, {"model": "m", "messages": turns}).status_int == 200
    turns = [*user("a"), {"role": "function", "name": "f", "content": None}]
    assert app.post_json(URL, {"model": "m", "messages": turns}).status_int == 200


# The real API's answers to unknown keys (gpt-5.6-terra), but for the last two (three names; a long
# key): the known names within two edits, nearest first, never one the body has sent.
UNKNOWN_KEYS = [
    ("brand_new", "Unknown parameter: 'brand_new'."),
    ("stor", "Unknown parameter: 'stor'. Did you mean 'stop' or 'store'?"),
    ("strem", "Unknown parameter: 'strem'. Did you mean 'stream' or 'store'?"),
    ("temperatur", "Unknown parameter: 'temperatur'. Did you mean 'temperature'?"),
    ("usr", "Unknown parameter: 'usr'. Did you mean 'user'?"),
    ("tool", "Unknown parameter: 'tool'. Did you mean 'tools'?"),
    ("messagess", "Unknown parameter: 'messagess'."),
    ("stre", "Unknown parameter: 'stre'. Did you mean 'store', 'stop', or 'stream'?"),
    ("m" * 100_000, f"Unknown parameter: '{'m' * 100_000}'."),
]


@pytest.mark.parametrize(("key", "message"), UNKNOWN_KEYS)
def test_strict_mode_rejects_unknown_params(make_app: Any, key: str, message: str) -> None:
    app = make_app({"MOKKU_STRICT": "1"})
    response = app.post_json(URL, {"model": "m", "messages": MESSAGE, key: 1}, status=400)
    assert response.json["error"] == {
        "message": message,
        "type": "invalid_request_error",
        "param": key,
        "code": "unknown_parameter",
    }
    assert app.post_json(URL, {"model": "m", "messages": MESSAGE, "temperature": 1}).status_int == 200


def test_strict_mode_rejects_an_unknown_member_before_a_misplaced_object(make_app: Any) -> None:
    app = make_app({"MOKKU_STRICT": "1"})
    body = {"model": "m", "messages": MESSAGE, "stream_options": {"bogus": True}}
    assert app.post_json(URL, body, status=400).json["error"] == {
        "message": "Unknown parameter: 'stream_options.bogus'.",
        "type": "invalid_request_error",
        "param": "stream_options.bogus",
        "code": "unknown_parameter",
    }
    body = {"model": "m", "messages": MESSAGE, "stream": True, "stream_options": {"include_usage": True}}
    assert app.post_json(URL, body).status_int == 200


def test_strict_mode_names_an_unknown_key_after_a_missing_one_and_before_a_bad_value(make_app: Any) -> None:
    app = make_app({"MOKKU_STRICT": "1"})
    body = {"model": "m", "messages": [], "n": "2", "zzz_unknown": 1}
    assert app.post_json(URL, body, status=400).json["error"]["param"] == "zzz_unknown"
    error = app.post_json(URL, {"model": "m", "zzz_unknown": 1}, status=400).json["error"]
    assert (error["message"], error["param"]) == ("Missing required parameter: 'messages'.", "messages")
    error = app.post_json(URL, {"messages": MESSAGE, "zzz_unknown": 1}, status=400).json["error"]
    assert error["message"] == "you must provide a model parameter"


def test_events_ready_together_share_a_write_and_faults_count_events() -> None:
    body = {
        "model": "m",
        "messages": user("one two three"),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    unpaced = list(wsgi.post(App(config.load({})), URL, body))
    assert [w.count(b"\n\n") for w in unpaced] == [7]  # every event ready at once: one write
    app = App(config.load({"MOKKU_TOKEN_MS": "0.01"}))  # paced: each token goes out when due
    writes = list(wsgi.post(app, URL, body))
    assert [w.count(b"\n\n") for w in writes] == [2, 1, 1, 3]  # role+first token, tokens, finish+usage+[DONE]
    assert b'"role":"assistant"' in writes[0] and writes[-1].endswith(b"data: [DONE]\n\n")
    # Seven events: a fault at the ninth meets the stream at its end, batched as without a fault.
    truncated = list(wsgi.post(app, URL, dict(body, model="m@stream_truncated:9")))
    assert [w.count(b"\n\n") for w in truncated] == [2, 1, 1, 2]
    assert b"[DONE]" not in b"".join(truncated)
    # An error after two events: the role chunk and the first token go out together, then the error.
    failed = list(wsgi.post(app, URL, dict(body, model="m@stream_error:2")))
    assert [w.count(b"\n\n") for w in failed] == [2, 1]
    assert json.loads(failed[1][len(b"data: ") :])["error"]["type"] == "server_error"


def test_stream_is_produced_lazily_and_closes() -> None:
    app = App(config.load({}))
    text = "word " * 20000
    body = wsgi.post(app, URL, {"model": "m", "messages": user(text), "stream": True})
    assert not isinstance(body, (list, tuple, bytes))
    first = next(iter(body))
    assert b'"role":"assistant"' in first and b'"content":"word"' in first  # written together
    second = next(body)
    assert b'"content":" word"' in second
    body.close()
    with pytest.raises(StopIteration):
        next(body)


def test_failure_mid_stream_ends_with_error_event(caplog: pytest.LogCaptureFixture) -> None:
    def events() -> Any:
        yield mokku_sse.event({"n": 1})
        raise RuntimeError("generator bug")

    request = Request({"REQUEST_METHOD": "POST", "PATH_INFO": "/v1/x"}, config.load({}))
    stream = mokku_sse.EventStream(request, events(), Pace())
    with caplog.at_level(logging.ERROR, logger="mokku"):
        out = list(stream)
    stream.close()
    assert out[0].startswith(b'data: {"n":1}\n\n')
    error = json.loads(out[0][len(b'data: {"n":1}\n\n') + len(b"data: ") :])
    validate(error, "ErrorResponse")
    assert error["error"]["type"] == "server_error"
    assert "RuntimeError: generator bug" in caplog.text
    assert (request.stream_outcome, request.stream_events) == ("failed", 2)


@pytest.mark.parametrize(
    ("model", "text"),
    [
        ("gpt-4o", "plain"),
        ("模型-ü", "Hello, wörld! 日本語 🎉"),
        ('a"b\\c', 'quote " backslash \\ newline \n tab \t'),
        ("gpt-4o", JSONTemplate.SLOT.replace("\x00", "") + " \x00 control"),
    ],
    # The slot marker is random per process: ids that do not show it keep the test ids the same
    # in every process (pytest-xdist's workers must collect the same tests).
    ids=["plain", "unicode", "escapes", "slot-lookalike"],
)
def test_text_answers_are_the_compact_json_of_their_document(
    app: webtest.TestApp, model: str, text: str
) -> None:
    raw = app.post_json(URL, {"model": model, "messages": user(text), "max_tokens": 50}).body
    document = json.loads(raw)
    assert document["model"] == snapshot(model)
    assert document["choices"][0]["message"]["content"] == text
    assert raw == dumps(document)  # the same bytes as encoding the whole document at once
    validate(document, "CreateChatCompletionResponse")


def test_text_answer_with_a_lone_surrogate_stays_valid_json(app: webtest.TestApp) -> None:
    raw = app.post(
        URL,
        b'{"model":"m","messages":[{"role":"user","content":"a\\ud800b"}]}',
        content_type="application/json",
    ).body
    assert json.loads(raw)["choices"][0]["message"]["content"] == "a\ud800b"


def test_json_template_checks_its_slots() -> None:
    template = JSONTemplate({"a": JSONTemplate.SLOT, "b": [1, JSONTemplate.SLOT]})
    assert template.render("x", True) == b'{"a":"x","b":[1,true]}'
    assert template.render(5, None) == b'{"a":5,"b":[1,null]}'
    with pytest.raises(ValueError):
        template.render("only one")
    with pytest.raises(ValueError):
        JSONTemplate({"a": 1})


MAX_TOKENS_REFUSED = (
    r"^Unsupported parameter: 'max_tokens' is not supported with this model\. "
    r"Use 'max_completion_tokens' instead\.$"
)


@pytest.mark.parametrize(
    "model",
    ["o1", "o3-mini", "o4-mini-2025-04-16", "gpt-5", "gpt-5.5", "gpt-5.6-luna", "gpt-6-sol", "gpt-6.2-astra"],
)
def test_reasoning_models_refuse_max_tokens_and_a_temperature(app: webtest.TestApp, model: str) -> None:
    asked = {"model": model, "messages": user("think it through")}
    refused = app.post_json(URL, dict(asked, max_tokens=50), status=400).json
    assert_invalid_request(refused, "max_tokens", "unsupported_parameter", MAX_TOKENS_REFUSED)
    hot = app.post_json(URL, dict(asked, temperature=0.2), status=400).json
    assert_invalid_request(
        hot,
        "temperature",
        "unsupported_value",
        r"^Unsupported value: 'temperature' does not support 0\.2 with this model\. "
        r"Only the default \(1\) value is supported\.$",
    )
    narrow = app.post_json(URL, dict(asked, top_p=0.5), status=400).json
    assert_invalid_request(
        narrow,
        "top_p",
        "unsupported_parameter",
        r"^Unsupported parameter: 'top_p' is not supported with this model\.$",
    )
    for name, value in [
        ("presence_penalty", 0.5),
        ("frequency_penalty", -1),
        ("logit_bias", {"50256": -100}),
        ("logprobs", True),
        ("top_logprobs", 2),
    ] + ([("stop", ["x"])] if model.startswith(("o4", "gpt-5")) else []):
        # smolagents, LiteLLM and crewAI leave these out for reasoning models: the API refuses them
        error = app.post_json(URL, dict(asked, **{name: value}), status=400).json
        assert_invalid_request(
            error,
            name,
            "unsupported_parameter",
            rf"^Unsupported parameter: '{name}' is not supported with this model\.$",
        )
    # What they take: max_completion_tokens, the defaults of the rest.
    defaults = {
        "temperature": 1,
        "top_p": 1,
        "presence_penalty": 0,
        "frequency_penalty": 0,
        "logprobs": False,
    }
    taken = chat(app, **dict(asked, max_completion_tokens=1, **defaults))
    assert taken["choices"][0]["finish_reason"] == "length"
    if not model.startswith(("o", "gpt-5-", "gpt-5")) or model.startswith("gpt-5."):  # those think at none
        assert chat(app, **dict(asked, reasoning_effort="none", stop=["x"], presence_penalty=0.5))["choices"]


@pytest.mark.parametrize("model", ["o1", "o3-mini", "o3-mini-2025-01-31"])
def test_o1_and_o3_mini_take_stop(app: webtest.TestApp, model: str) -> None:
    """smolagents sends stop sequences to o3-mini, which the API takes, unlike o3's and gpt-5's."""
    assert chat(app, model=model, messages=user("think"), stop=["Observation:"])["choices"]
    for refusing in ("o3", "o3-2025-04-16", "o4-mini", "gpt-5-mini"):
        error = app.post_json(URL, {"model": refusing, "messages": user("x"), "stop": ["x"]}, status=400).json
        assert error["error"]["param"] == "stop"


def test_other_models_take_max_tokens_and_any_temperature(app: webtest.TestApp) -> None:
    for model in ("gpt-4o", "gpt-4.1-mini", "mokku-echo-1", "my-fine-tune"):
        chat(app, model=model, messages=user("x"), max_tokens=5, temperature=0.2)
    # A chat-latest model takes max_tokens; a newer model takes a temperature without reasoning.
    chat(app, model="gpt-5-chat-latest", messages=user("x"), max_tokens=5)
    chat(app, model="gpt-5.2", messages=user("x"), temperature=0.2, top_p=0.5, reasoning_effort="none")


def test_the_options_only_passed_along_are_taken_in_their_valid_forms(app: webtest.TestApp) -> None:
    taken = {
        "service_tier": "flex",
        "reasoning_effort": "low",
        "verbosity": "high",
        "modalities": ["text"],
        "prompt_cache_key": "user-1",
        "prompt_cache_retention": "24h",
        "prompt_cache_options": {},
        "safety_identifier": "x" * 64,
        "prediction": {"type": "content", "content": "Paris"},
        "web_search_options": {},
        "audio": None,
    }
    answer = chat(app, model="gpt-5-mini", messages=user("passed along"), **taken)
    assert answer["choices"][0]["message"]["content"] == "passed along"


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4.1-mini", "gpt-3.5-turbo", "chatgpt-4o-latest"])
def test_a_model_that_does_not_reason_refuses_an_effort_and_a_verbosity_but_medium(
    app: webtest.TestApp, model: str
) -> None:
    def refused(**extra: Any) -> Dict[str, Any]:
        body = {"model": model, "messages": user("x"), **extra}
        return app.post_json(URL, body, status=400).json["error"]

    assert refused(reasoning_effort="low") == {
        "message": "Unsupported parameter: 'reasoning_effort' is not supported with this model.",
        "type": "invalid_request_error",
        "param": "reasoning_effort",
        "code": "unsupported_parameter",
    }
    assert refused(verbosity="low") == {
        "message": "Unsupported value: 'verbosity' does not support 'low' with this model. Supported values are: 'medium'.",
        "type": "invalid_request_error",
        "param": "verbosity",
        "code": "unsupported_value",
    }
    assert chat(app, model=model, messages=user("x"), verbosity="medium", reasoning_effort=None)["choices"]
    responses = "/v1/responses"
    effort = app.post_json(
        responses, {"model": model, "input": "x", "reasoning": {"effort": "low"}}, status=400
    )
    assert (
        effort.json["error"]["message"]
        == "Unsupported parameter: 'reasoning.effort' is not supported with this model."
    )
    verbose = app.post_json(
        responses, {"model": model, "input": "x", "text": {"verbosity": "high"}}, status=400
    )
    assert verbose.json["error"]["param"] == "text.verbosity"


def test_the_service_tier_asked_for_is_named_in_the_answer(app: webtest.TestApp) -> None:
    """As the real API: the tier that served the request, the default one for ``auto``."""
    served = (
        ("flex", "flex"),
        ("priority", "priority"),
        ("fast", "priority"),
        ("auto", "default"),
        (None, "default"),
    )
    for asked, named in served:  # fast mode is served, and named, as priority
        answer = chat(app, model="gpt-4o", messages=user("tiered"), service_tier=asked)
        assert answer["service_tier"] == named and answer["choices"][0]["message"]["content"] == "tiered"
    raw = app.post_json(
        URL, {"model": "gpt-4o", "messages": user("streamed tier"), "stream": True, "service_tier": "flex"}
    )
    chunks = sse.parse(raw.body)
    assert {chunk["service_tier"] for chunk in chunks} == {"flex"} and sse.content(chunks) == "streamed tier"
    response = app.post_json(
        "/v1/responses", {"model": "gpt-4o", "input": "x", "service_tier": "priority"}
    ).json
    assert response["service_tier"] == "priority"


def test_stream_chunks_end_with_obfuscation_unless_asked_not_to(app: webtest.TestApp) -> None:
    body = {
        "model": "gpt-4o",
        "messages": user("padded"),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    chunks = sse.parse(app.post_json(URL, body).body)
    assert all(list(chunk)[-1] == "obfuscation" for chunk in chunks)
    (padding,) = {chunk["obfuscation"] for chunk in chunks}
    assert padding.isalnum() and sse.content(chunks) == "padded"
    plain = sse.parse(app.post_json(URL, dict(body, stream_options={"include_obfuscation": False})).body)
    assert not any("obfuscation" in chunk for chunk in plain) and sse.content(plain) == "padded"


@pytest.mark.parametrize("url", [URL, "/v1/completions"])
def test_logit_bias_keys_are_token_ids(app: webtest.TestApp, url: str) -> None:
    body: Dict[str, Any] = {"model": "mokku-echo-1", "logit_bias": {"50256": -100, "hello": 5}}
    body.update({"messages": user("hi")} if url == URL else {"prompt": "hi"})
    error = app.post_json(url, body, status=400).json["error"]
    assert error == {
        "message": "Invalid key in 'logit_bias': hello. You should only be submitting non-negative integers.",
        "type": "invalid_request_error",
        "param": "logit_bias",
        "code": "invalid_value",
    }


def test_an_alias_is_answered_by_its_snapshot_in_every_chunk(app: webtest.TestApp) -> None:
    """As the real API names the model that answered (autogen warns on every call otherwise)."""
    raw = app.post_json(URL, {"model": "gpt-4.1-mini", "messages": user("hi"), "stream": True}).body
    chunks = sse.parse(raw)
    assert {chunk["model"] for chunk in chunks} == {"gpt-4.1-mini-2025-04-14"}
    response = app.post_json("/v1/responses", {"model": "o3", "input": "hi"}).json
    assert response["model"] == "o3-2025-04-16"
    assert chat(app, model="gpt-4o-2024-05-13", messages=user("x"))["model"] == "gpt-4o-2024-05-13"
    assert chat(app, model="my-fine-tune", messages=user("x"))["model"] == "my-fine-tune"


def test_an_assistant_message_with_an_empty_tool_calls_list_is_refused(app: webtest.TestApp) -> None:
    """The openai SDK once defaulted parsed messages' tool_calls to [], which the API refuses back."""
    messages = [*user("hi"), {"role": "assistant", "content": "Hello", "tool_calls": []}, *user("again")]
    error = app.post_json(URL, {"model": "gpt-4o", "messages": messages}, status=400).json["error"]
    assert error == {
        "message": "Invalid 'messages[1].tool_calls': empty array. Expected an array with minimum length 1, but got "
        "an empty array instead.",
        "type": "invalid_request_error",
        "param": "messages[1].tool_calls",
        "code": "empty_array",
    }


@pytest.mark.parametrize("model", ["gpt-5.1", "gpt-5.2", "gpt-5.4-mini", "gpt-5.4-2026-03-05"])
def test_the_chat_model_and_gpt_5_1_on_take_what_reasoning_models_refuse(
    app: webtest.TestApp, model: str
) -> None:
    """gpt-5-chat-latest is ChatGPT's chat model (the AI SDK sends it stop and penalties); gpt-5.1,
    gpt-5.2 and gpt-5.4 reason only when asked, so they take a temperature as a chat model does."""
    latest = chat(app, model="gpt-5-chat-latest", messages=user("x"), stop=["END"], presence_penalty=0.3)
    assert latest["choices"][0]["message"]["content"] == "x"
    assert chat(app, model=model, messages=user("y"), temperature=0.2, stop=["x"], top_p=0.5)["choices"]
    refused = app.post_json(
        URL,
        {"model": model, "messages": user("z"), "reasoning_effort": "low", "temperature": 0.2},
        status=400,
    )
    assert refused.json["error"]["param"] == "temperature"


@pytest.mark.parametrize(
    "model, effort, allowed",
    [
        ("gpt-5", "none", "'minimal', 'low', 'medium', and 'high'"),
        ("gpt-5-mini-2025-08-07", "xhigh", "'minimal', 'low', 'medium', and 'high'"),
        ("gpt-6-astra", "none", "'low', 'medium', 'high', and 'xhigh'"),
        ("gpt-5.6-terra", "max", "'none', 'low', 'medium', 'high', and 'xhigh'"),
        ("o3", "none", "'low', 'medium', and 'high'"),
        ("o4-mini-2025-04-16", "minimal", "'low', 'medium', and 'high'"),
        ("gpt-5.1", "minimal", "'none', 'low', 'medium', and 'high'"),  # the real API's answer
        ("gpt-5.2", "minimal", "'none', 'low', 'medium', 'high', and 'xhigh'"),
    ],
)
def test_an_effort_the_model_does_not_take_is_refused(
    app: webtest.TestApp, model: str, effort: str, allowed: str
) -> None:
    chat_body = {"model": model, "messages": user("x"), "reasoning_effort": effort}
    refused = app.post_json(URL, chat_body, status=400).json
    validate(refused, "ErrorResponse")
    assert refused["error"] == {
        "message": f"Unsupported value: 'reasoning_effort' does not support '{effort}' with this model. "
        f"Supported values are: {allowed}.",
        "type": "invalid_request_error",
        "param": "reasoning_effort",
        "code": "unsupported_value",
    }
    responses_effort = "minimal" if model.startswith("gpt-5.6") else effort  # max it takes there
    responses_body = {"model": model, "input": "x", "reasoning": {"effort": responses_effort}}
    answer = app.post_json("/v1/responses", responses_body, status=400).json["error"]
    assert answer["param"] == "reasoning.effort" and answer["message"].startswith(
        f"Unsupported value: '{responses_effort}' is not supported with the '{model}' model. Supported values are: "
    )
    # What each takes, and every effort on a model no rule narrows
    assert chat(app, model=model, messages=user("y"), reasoning_effort="high")["choices"]
    assert chat(app, model="gpt-5.4", messages=user("z"), reasoning_effort=effort)["choices"]


@pytest.mark.parametrize(
    "model, effort, allowed",
    [("gpt-5-codex", "none", "'low', 'medium', and 'high'"), ("gpt-5-pro", "medium", "'high'")],
)
def test_a_responses_only_model_refuses_an_effort_it_does_not_take(
    app: webtest.TestApp, model: str, effort: str, allowed: str
) -> None:
    body = {"model": model, "input": "x", "reasoning": {"effort": effort}}
    error = app.post_json("/v1/responses", body, status=400).json["error"]
    assert error["message"] == (
        f"Unsupported value: '{effort}' is not supported with the '{model}' model. Supported values are: {allowed}."
    )
    assert (error["param"], error["code"]) == ("reasoning.effort", "unsupported_value")


FUNCTION = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}


@pytest.mark.parametrize(
    "model, effort, refused",
    [
        ("gpt-5.6-luna", None, True),  # from gpt-5.6 on, reasoning by default: refused unless told none
        ("gpt-6-sol", None, True),
        ("gpt-6-sol", "low", True),
        ("gpt-6-sol", "none", False),
        ("gpt-5.5", None, False),  # gpt-5.2 to gpt-5.5: refused only when an effort is asked for
        ("gpt-5.5", "high", True),
        ("gpt-5.2", "medium", True),
        ("gpt-5.4", None, False),
        ("gpt-5.1", "high", False),  # gpt-5.1 and older reasoning models call tools at any effort
        ("o3", "high", False),
        ("gpt-5", None, False),
    ],
)
def test_newer_models_take_function_tools_on_chat_only_without_reasoning(
    app: webtest.TestApp, model: str, effort: Optional[str], refused: bool
) -> None:
    body: Dict[str, Any] = {"model": model, "messages": user("call it"), "tools": [FUNCTION]}
    if effort is not None:
        body["reasoning_effort"] = effort
    if not refused:
        assert app.post_json(URL, body).json["choices"][0]["finish_reason"] == "tool_calls"
        return
    answer = app.post_json(URL, body, status=400).json
    validate(answer, "ErrorResponse")
    assert answer["error"] == {
        "message": f"Function tools with reasoning_effort are not supported for {model} in /v1/chat/completions. "
        "To use function tools, use /v1/responses or set reasoning_effort to 'none'.",
        "type": "invalid_request_error",
        "param": "reasoning_effort",
        "code": None,
    }
    responses = {
        "model": model,
        "input": "call it",
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}],
    }
    assert app.post_json("/v1/responses", responses).json["output"][-1]["type"] == "function_call"


@pytest.mark.parametrize("model", [{"model": ""}, {}], ids=["empty", "absent"])
@pytest.mark.parametrize("url", [URL, "/v1/completions", "/v1/embeddings"])
def test_an_empty_or_absent_model_is_no_model(app: webtest.TestApp, url: str, model: Dict[str, str]) -> None:
    body = {**model, "messages": user("x"), "prompt": "x", "input": "x"}
    assert app.post_json(url, body, status=400).json["error"] == {
        "message": "you must provide a model parameter",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


@pytest.mark.parametrize(
    ("extra", "param", "code"),
    [
        ({"tools": "x"}, "tools", "invalid_type"),
        ({"tools": [{"type": "function"}]}, "tools[0].function", "missing_required_parameter"),
        ({"tools": [FUNCTION], "tool_choice": "bogus"}, "tool_choice", "invalid_value"),
    ],
)
def test_tools_are_checked_before_the_refusal_of_tools_with_reasoning(
    app: webtest.TestApp, extra: Dict[str, Any], param: str, code: str
) -> None:
    body = {"model": "gpt-5.6-terra", "messages": user("call it"), **extra}
    error = app.post_json(URL, body, status=400).json["error"]
    assert (error["param"], error["code"]) == (param, code)


@pytest.mark.parametrize(
    "model", ["gpt-5-pro", "gpt-5.5-pro-2026-04-23", "gpt-5.1-codex-max", "gpt-5.3-codex", "o3-deep-research"]
)
def test_responses_only_models_are_refused_by_chat(app: webtest.TestApp, model: str) -> None:
    refused = app.post_json(URL, {"model": model, "messages": user("hi")}, status=404).json
    validate(refused, "ErrorResponse")
    assert refused["error"] == {
        "message": "This model is only supported in v1/responses and not in v1/chat/completions.",
        "type": "invalid_request_error",
        "param": "model",
        "code": None,
    }
    answered = app.post_json("/v1/responses", {"model": model, "input": "hi"}).json
    assert answered["output"][-1]["content"][0]["text"] == "hi"


def test_a_stream_with_logprobs_opens_with_empty_ones(app: webtest.TestApp) -> None:
    """The real API's role chunk carries ``{"content": [], "refusal": null}`` when logprobs are asked
    for, so that code reading ``chunk.choices[0].logprobs.content`` on every chunk works from the
    first; without them it is null."""
    body = {
        "model": "gpt-4o",
        "messages": user("two words"),
        "stream": True,
        "logprobs": True,
        "top_logprobs": 2,
    }
    chunks = sse.parse(app.post_json(URL, body).body)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[0]["choices"][0]["logprobs"] == {"content": [], "refusal": None}
    assert [len(chunk["choices"][0]["logprobs"]["content"]) for chunk in chunks[1:3]] == [1, 1]
    plain = sse.parse(app.post_json(URL, dict(body, logprobs=False, top_logprobs=None)).body)
    assert plain[0]["choices"][0]["logprobs"] is None
