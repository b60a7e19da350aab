"""What one request may produce is bounded: a 400 naming the parameter, before any work."""

from __future__ import annotations

from typing import Any, Dict

import pytest
import webtest

from mokku import config
from mokku.server.app import App

from .spec import assert_invalid_request
from .work import at_most

CHAT = "/v1/chat/completions"


def build(**env: str) -> webtest.TestApp:
    return webtest.TestApp(App(config.load(env)))


def user(text: str) -> Any:
    return [{"role": "user", "content": text}]


WORDS_8K = " ".join(["word"] * 1600)  # 8 KB, 1,600 tokens


@pytest.mark.parametrize("stream", [False, True])
def test_many_choices_with_logprobs_of_a_long_message(stream: bool) -> None:
    """1,600 tokens x 128 choices x 21 (top_logprobs 20): 4.3 million tokens, refused at once."""
    body = {"model": "gpt-4o", "messages": user(WORDS_8K), "n": 128, "logprobs": True, "top_logprobs": 20}
    app = build()
    with at_most(100_000):  # unbounded, this took 86 s and 1.8 GB
        response = app.post_json(CHAT, dict(body, stream=stream), status=400)
    assert_invalid_request(response.json, "n", "invalid_value", r"would produce 4,300,800 output tokens")
    assert "MOKKU_MAX_OUTPUT_TOKENS" in response.json["error"]["message"]


def test_many_choices_of_a_long_message() -> None:
    body = {"model": "gpt-4o", "messages": user(" ".join(["word"] * 60_000)), "n": 128}
    response = build().post_json(CHAT, body, status=400)
    assert_invalid_request(response.json, "n", "invalid_value", r"128 choice\(s\) x 60,000 tokens")


def test_many_prompts_with_many_choices() -> None:
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": ["a b c"] * 4000, "n": 128}
    response = build().post_json("/v1/completions", body, status=400)
    assert_invalid_request(response.json, "n", "invalid_value", r"over 4000 prompts")


def test_an_echoed_prompt_counts_as_output() -> None:
    """``echo`` repeats the prompt in every choice (with its logprobs): without ``max_tokens`` output
    of its own, a 1 MB prompt once made a 103 MB answer."""
    app = build(MOKKU_MAX_OUTPUT_TOKENS="1000")
    echo = {
        "model": "gpt-3.5-turbo-instruct",
        "prompt": " ".join(["word"] * 400),
        "echo": True,
        "max_tokens": 0,
    }
    assert app.post_json("/v1/completions", echo).json["choices"][0]["text"].startswith("word word")
    response = app.post_json("/v1/completions", dict(echo, n=3), status=400)
    assert_invalid_request(
        response.json, "n", "invalid_value", r"3 choice\(s\) x 400 tokens with the echoed prompt"
    )
    response = app.post_json("/v1/completions", dict(echo, logprobs=2), status=400)
    assert_invalid_request(response.json, "logprobs", "invalid_value", r"would produce 1,200 output tokens")


@pytest.mark.parametrize(
    ("url", "body", "param"),
    [
        (CHAT, {"messages": user("one two three four"), "max_tokens": 4}, "messages"),
        (CHAT, {"messages": user("one two"), "logprobs": True, "top_logprobs": 2}, "top_logprobs"),
        ("/v1/completions", {"prompt": ["one two", "three four"]}, "prompt"),
        ("/v1/completions", {"prompt": "one two", "logprobs": 2}, "logprobs"),
        ("/v1/responses", {"input": "one two three four", "max_output_tokens": 16}, "input"),
    ],
)
def test_the_parameter_that_makes_the_output_is_named(url: str, body: Dict[str, Any], param: str) -> None:
    app = build(MOKKU_MAX_OUTPUT_TOKENS="3")
    response = app.post_json(url, dict(body, model="mokku-echo-1"), status=400)
    assert_invalid_request(response.json, param, "invalid_value", r"more than the 3 this server allows")


@pytest.mark.parametrize(
    ("url", "body"),
    [
        (CHAT, {"messages": user(" ".join(["word"] * 40))}),
        ("/v1/responses", {"input": " ".join(["word"] * 40)}),
    ],
)
def test_one_answer_with_no_limit_asked_stops_at_the_bound(url: str, body: Dict[str, Any]) -> None:
    """As a model stops at its own output limit (each far below the bound's default): a long prompt
    with no ``max_tokens`` is answered, cut, not refused."""
    app = build(MOKKU_MAX_OUTPUT_TOKENS="16")
    answer = app.post_json(url, dict(body, model="gpt-4.1")).json
    usage = answer["usage"]
    assert usage.get("completion_tokens", usage.get("output_tokens")) == 16
    assert answer.get("status") == "incomplete" or answer["choices"][0]["finish_reason"] == "length"


def test_requests_the_real_api_takes_stay_within_the_bound() -> None:
    app = build()
    body = {"model": "gpt-4o", "messages": user(" ".join(["word"] * 85)), "n": 8, "logprobs": True}
    response = app.post_json(CHAT, dict(body, top_logprobs=20))
    assert len(response.json["choices"]) == 8
    long_echo = app.post_json(CHAT, {"model": "gpt-4o", "messages": user(" ".join(["word"] * 100_000))})
    assert long_echo.json["usage"]["completion_tokens"] == 100_000


def test_a_model_id_is_at_most_256_characters() -> None:
    app = build()
    response = app.post_json(
        CHAT, {"model": "m" * 1_000_000, "messages": user("hi"), "stream": True}, status=400
    )
    assert_invalid_request(
        response.json,
        "model",
        "string_above_max_length",
        r"maximum length 256, but got a string with length 1000000",
    )
    assert app.post_json(CHAT, {"model": "m" * 256, "messages": user("hi")}).json["model"] == "m" * 256
