"""``POST /v1/completions`` in-process: prompt forms, echo, limits, logprobs, streaming, validation."""

from __future__ import annotations

import re
from typing import Any, Dict, List

import pytest
import webtest

from mokku.api.tokens import count, tokenize

from . import sse
from .spec import assert_invalid_request, validate

URL = "/v1/completions"
QUOTA_BODY = (
    b'{"error":{"message":"You exceeded your current quota, please check your plan and billing details.",'
    b'"type":"insufficient_quota","param":null,"code":"insufficient_quota"}}'
)


def complete(app: webtest.TestApp, **body: Any) -> Dict[str, Any]:
    body.setdefault("model", "gpt-3.5-turbo-instruct")
    response = app.post_json(URL, body)
    validate(response.json, "CreateCompletionResponse")
    return response.json


def stream(app: webtest.TestApp, **body: Any) -> List[Dict[str, Any]]:
    body.setdefault("model", "gpt-3.5-turbo-instruct")
    return sse.post_stream(app, URL, body, validate_chunk)


def validate_chunk(chunk: Dict[str, Any]) -> None:
    """Stream chunks share CreateCompletionResponse's shape, but (as the real API streams them)
    ``finish_reason`` is null until a choice's last chunk and, with ``include_usage``, ``usage`` is
    null until the last chunk; the spec marks neither nullable, so only those nulls are set aside."""
    choices = [dict(c, finish_reason=c["finish_reason"] or "stop") for c in chunk["choices"]]
    checked = dict(chunk, choices=choices)
    if "usage" in chunk and chunk["usage"] is None:
        del checked["usage"]
    validate(checked, "CreateCompletionResponse")


def texts(chunks: List[Dict[str, Any]], index: int = 0) -> str:
    return "".join(c["text"] for chunk in chunks for c in chunk["choices"] if c["index"] == index)


def test_string_prompt(app: webtest.TestApp) -> None:
    body = complete(app, prompt="Say this is a test")
    assert re.fullmatch(r"cmpl-[A-Za-z0-9]{29}", body["id"])
    assert body["object"] == "text_completion"
    assert body["model"] == "gpt-3.5-turbo-instruct"
    assert body["choices"] == [
        {"text": "Say this is a test", "index": 0, "logprobs": None, "finish_reason": "stop"}
    ]
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}


def test_default_max_tokens_is_16(app: webtest.TestApp) -> None:
    prompt = " ".join(f"w{i}" for i in range(30))
    body = complete(app, prompt=prompt)
    assert body["choices"][0]["text"] == "".join(tokenize(prompt)[:16])
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 16
    long = complete(app, prompt=prompt, max_tokens=None)
    assert long["choices"][0]["finish_reason"] == "length"
    whole = complete(app, prompt=prompt, max_tokens=1000)
    assert whole["choices"][0]["text"] == prompt
    assert whole["choices"][0]["finish_reason"] == "stop"


def test_max_tokens_zero_with_echo_returns_the_prompt(app: webtest.TestApp) -> None:
    body = complete(app, prompt="score this", max_tokens=0, echo=True)
    assert body["choices"][0]["text"] == "score this"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 0


def test_list_of_prompts_with_n(app: webtest.TestApp) -> None:
    body = complete(app, prompt=["first one", "second"], n=2)
    assert [(c["index"], c["text"]) for c in body["choices"]] == [
        (0, "first one"),
        (1, "first one"),
        (2, "second"),
        (3, "second"),
    ]
    assert body["usage"]["prompt_tokens"] == count("first one") + count("second")
    assert body["usage"]["completion_tokens"] == 2 * count("first one") + 2 * count("second")


def test_token_id_prompts(app: webtest.TestApp) -> None:
    body = complete(app, prompt=[1212, 318, 257, 1332, 13])
    assert body["choices"][0]["text"] == "1212 318 257 1332 13"
    assert body["usage"]["prompt_tokens"] == 5
    body = complete(app, prompt=[[1, 2, 3], [42]])
    assert [c["text"] for c in body["choices"]] == ["1 2 3", "42"]
    assert body["usage"]["prompt_tokens"] == 4


def test_echo_prepends_prompt(app: webtest.TestApp) -> None:
    body = complete(app, prompt="Hello there", echo=True)
    assert body["choices"][0]["text"] == "Hello there" + "Hello there"
    assert body["usage"]["completion_tokens"] == count("Hello there")


def test_suffix_is_accepted_and_not_returned(app: webtest.TestApp) -> None:
    body = complete(app, prompt="def add(a, b):", suffix="\n    return result")
    assert body["choices"][0]["text"] == "def add(a, b):"


def test_stop(app: webtest.TestApp) -> None:
    body = complete(app, prompt="one\ntwo\nthree", stop=["\n"])
    assert body["choices"][0]["text"] == "one"
    assert body["choices"][0]["finish_reason"] == "stop"


def test_best_of_bills_every_candidate(app: webtest.TestApp) -> None:
    body = complete(app, prompt="a b", n=1, best_of=3)
    assert len(body["choices"]) == 1
    assert body["usage"]["completion_tokens"] == 3 * count("a b")


def test_logprobs(app: webtest.TestApp) -> None:
    body = complete(app, prompt="Hello, world", logprobs=3)
    logprobs = body["choices"][0]["logprobs"]
    assert logprobs["tokens"] == ["Hello", ",", " world"]
    assert logprobs["text_offset"] == [0, 5, 6]
    assert all(-0.25 <= lp <= 0 for lp in logprobs["token_logprobs"])
    for token, lp, top in zip(logprobs["tokens"], logprobs["token_logprobs"], logprobs["top_logprobs"]):
        assert len(top) == 3
        assert top[token] == lp == max(top.values())
    assert complete(app, prompt="Hello, world", logprobs=3)["choices"][0]["logprobs"] == logprobs


def test_logprobs_with_echo_cover_the_prompt(app: webtest.TestApp) -> None:
    logprobs = complete(app, prompt="ab cd", echo=True, logprobs=0)["choices"][0]["logprobs"]
    assert "".join(logprobs["tokens"]) == "ab cdab cd"
    assert logprobs["text_offset"] == [0, 2, 5, 7]
    assert logprobs["top_logprobs"] == [{}, {}, {}, {}]


def test_stream(app: webtest.TestApp) -> None:
    chunks = stream(app, prompt="Stream me, please", n=2)
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["object"] == "text_completion" for c in chunks)
    for index in (0, 1):
        assert texts(chunks, index) == "Stream me, please"
        finals = [
            c for chunk in chunks for c in chunk["choices"] if c["index"] == index and c["finish_reason"]
        ]
        assert finals == [{"text": "", "index": index, "logprobs": None, "finish_reason": "stop"}]
    token_chunks = [chunk for chunk in chunks if chunk["choices"][0]["finish_reason"] is None]
    assert [chunk["choices"][0]["text"] for chunk in token_chunks[::2]] == tokenize("Stream me, please")


def test_stream_echo_and_usage(app: webtest.TestApp) -> None:
    chunks = stream(app, prompt="ab cd", echo=True, stream_options={"include_usage": True})
    assert texts(chunks) == "ab cdab cd"
    assert all(chunk["usage"] is None for chunk in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == complete(app, prompt="ab cd", echo=True)["usage"]


def test_stream_logprobs(app: webtest.TestApp) -> None:
    chunks = stream(app, prompt="Hello, world", logprobs=2)
    whole = complete(app, prompt="Hello, world", logprobs=2)["choices"][0]["logprobs"]
    token_chunks = [chunk["choices"][0] for chunk in chunks if chunk["choices"][0]["finish_reason"] is None]
    for key in ("tokens", "token_logprobs", "top_logprobs", "text_offset"):
        assert [c["logprobs"][key][0] for c in token_chunks] == whole[key]


def test_stream_length(app: webtest.TestApp) -> None:
    chunks = stream(app, prompt="a b c d", max_tokens=2)
    assert texts(chunks) == "a b"
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_credit_error(app: webtest.TestApp) -> None:
    for extra in ({}, {"stream": True}):
        response = app.post_json(URL, {"model": "credit-error", "prompt": "x", **extra}, status=402)
        assert response.body == QUOTA_BODY


PROMPT_TYPES = (
    r"expected a string, an array of strings, an array of integers, or an array of arrays of integers"
)

INVALID = [
    ({"model": "m"}, "prompt", "missing_required_parameter", r"'prompt'"),
    ({"model": "m", "prompt": 5}, "prompt", "invalid_type", PROMPT_TYPES),
    ({"model": "m", "prompt": {"a": 1}}, "prompt", "invalid_type", PROMPT_TYPES),
    ({"model": "m", "prompt": []}, "prompt", "empty_array", r"empty array"),
    ({"model": "m", "prompt": ["a", 1]}, "prompt", "invalid_type", PROMPT_TYPES),
    ({"model": "m", "prompt": [[1], []]}, "prompt[1]", "empty_array", r"empty array"),
    ({"model": "m", "prompt": [[1], ["a"]]}, "prompt[1][0]", "invalid_type", r"expected an integer"),
    ({"model": "m", "prompt": [-1]}, "prompt[0]", "integer_below_min_value", r">= 0"),
    ({"model": "m", "prompt": "x", "max_tokens": -1}, "max_tokens", "integer_below_min_value", r">= 0"),
    ({"model": "m", "prompt": "x", "n": 0}, "n", "integer_below_min_value", r">= 1"),
    ({"model": "m", "prompt": "x", "logprobs": 6}, "logprobs", "integer_above_max_value", r"<= 5"),
    ({"model": "m", "prompt": "x", "logprobs": True}, "logprobs", "invalid_type", r"expected an integer"),
    ({"model": "m", "prompt": "x", "best_of": 21}, "best_of", "integer_above_max_value", r"<= 20"),
    (
        {"model": "m", "prompt": "x", "best_of": 1, "n": 2},
        "best_of",
        None,
        r"best_of must be greater than or equal to n",
    ),
    ({"model": "m", "prompt": "x", "best_of": 2, "stream": True}, "best_of", None, r"Cannot stream"),
    ({"model": "m", "prompt": "x", "echo": "yes"}, "echo", "invalid_type", r"expected a boolean"),
    ({"model": "m", "prompt": "x", "suffix": 1}, "suffix", "invalid_type", r"expected a string"),
    ({"model": "m", "prompt": "x", "temperature": 9}, "temperature", "decimal_above_max_value", r"<= 2"),
    ({"model": "m", "prompt": "x", "stop": ["a"] * 5}, "stop", "array_above_max_length", r"maximum length 4"),
    (
        {"model": "m", "prompt": "x", "stream_options": {"include_usage": True}},
        "stream_options",
        None,
        r"'stream'",
    ),
]


@pytest.mark.parametrize(("body", "param", "code", "message"), INVALID)
def test_validation_errors(
    app: webtest.TestApp, body: Dict[str, Any], param: str, code: Any, message: str
) -> None:
    assert_invalid_request(app.post_json(URL, body, status=400).json, param, code, message)


def test_strict_mode(make_app: Any) -> None:
    app = make_app({"MOKKU_STRICT": "1"})
    response = app.post_json(URL, {"model": "m", "prompt": "x", "messages": []}, status=400)
    assert response.json["error"]["message"] == "Unknown parameter: 'messages'."
    assert response.json["error"]["code"] == "unknown_parameter"


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4o-2024-08-06", "gpt-5.5", "o1", "gpt-3.5-turbo"])
def test_a_chat_model_is_refused_here_and_a_completions_model_on_chat(
    app: webtest.TestApp, model: str
) -> None:
    refused = app.post_json(URL, {"model": model, "prompt": "hi"}, status=404).json
    validate(refused, "ErrorResponse")
    assert refused["error"] == {
        "message": "This is a chat model and not supported in the v1/completions endpoint. "
        "Did you mean to use v1/chat/completions?",
        "type": "invalid_request_error",
        "param": "model",
        "code": None,
    }
    chat = {"model": "gpt-3.5-turbo-instruct", "messages": [{"role": "user", "content": "hi"}]}
    not_chat = app.post_json("/v1/chat/completions", chat, status=404).json["error"]
    assert not_chat["message"] == (
        "This is not a chat model and thus not supported in the v1/chat/completions endpoint. "
        "Did you mean to use v1/completions?"
    )
    assert not_chat["param"] == "model"
    chat["model"] = "text-embedding-3-small"
    assert app.post_json("/v1/chat/completions", chat, status=404).json["error"] == not_chat
    # A mock's own model name, and an Azure deployment named after no known model, are taken by both.
    assert complete(app, model="my-model", prompt="hi")["choices"][0]["text"] == "hi"
    azure = "/openai/deployments/my-deployment/completions?api-version=2024-10-21"
    assert app.post_json(azure, {"prompt": "hi"}, headers={"api-key": "k"}).json["choices"][0]["text"] == "hi"
