"""Fault simulation in-process: the fault table by each trigger, latency, context windows, keys, rate limits."""

from __future__ import annotations

import json
import os
import tempfile
import time
from typing import Any, Dict, List, Optional

import pytest
import webtest

from mokku import config, errors
from mokku.api.tokens import count
from mokku.server.app import App
from mokku.simulation import faults, latency, limits
from mokku.store.sqlite import SqliteBuckets

from . import sse
from .spec import validate

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi there friend"}]

# fault -> (status, type, code)
ERROR_FAULTS = {
    "credit": (402, "insufficient_quota", "insufficient_quota"),
    "quota": (429, "insufficient_quota", "insufficient_quota"),
    "rate_limit": (429, "requests", "rate_limit_exceeded"),
    "rate_limit_tokens": (429, "tokens", "rate_limit_exceeded"),
    "invalid_api_key": (401, "invalid_request_error", "invalid_api_key"),
    "permission": (403, "request_forbidden", "unsupported_country_region_territory"),
    "context_length": (400, "invalid_request_error", "context_length_exceeded"),
    "server_error": (500, "server_error", None),
    "overloaded": (503, "server_error", None),
}


def build(env: Optional[Dict[str, str]] = None) -> webtest.TestApp:
    return webtest.TestApp(App(config.load(env or {})), extra_environ={"wsgi.multithread": True})


@pytest.fixture(scope="module")
def app() -> webtest.TestApp:
    return build()


def _triggers(fault: str) -> List[Dict[str, Any]]:
    """The same fault asked for by model name, by model suffix (name and status) and by header."""
    ways: List[Dict[str, Any]] = [  # mokku's echo model: chat, legacy completions and embeddings take it
        {"model": faults.model_name(fault)},
        {"model": f"mokku-echo-1@{fault}"},
        {"model": "mokku-echo-1", "headers": {"X-Mokku-Fault": fault}},
    ]
    alias = faults.FAULTS[fault].status_alias
    if alias:
        ways.append({"model": f"mokku-echo-1@{alias}"})
    return ways


def test_every_fault_has_a_simulation_model_listed(app: webtest.TestApp) -> None:
    listed = {m["id"] for m in app.get("/v1/models").json["data"]}
    assert {faults.model_name(name) for name in faults.FAULTS} <= listed
    assert "credit-error" in listed and "rate-limit-error" in listed and "server-error" in listed


@pytest.mark.parametrize("fault", sorted(ERROR_FAULTS))
@pytest.mark.parametrize("path", [CHAT, "/v1/completions", "/v1/embeddings"])
def test_error_faults_by_model_and_header(app: webtest.TestApp, fault: str, path: str) -> None:
    status, type_, code = ERROR_FAULTS[fault]
    for way in _triggers(fault):
        body: Dict[str, Any] = {"model": way["model"]}
        body.update(
            {CHAT: {"messages": HI}, "/v1/completions": {"prompt": "hi"}, "/v1/embeddings": {"input": "hi"}}[
                path
            ]
        )
        response = app.post_json(path, body, headers=way.get("headers", {}), status=status)
        validate(response.json, "ErrorResponse")
        error = response.json["error"]
        assert (error["type"], error["code"]) == (type_, code), way
        assert response.headers["x-mokku-fault"] == fault


@pytest.mark.parametrize(
    "model",
    [
        "gpt-4o@rate_limit:-1",
        "gpt-4o@rate_limit:nan",
        "gpt-4o@timeout:1e9",
        "gpt-4o@rate_limit:\u0665",  # an Arabic-Indic five: a digit to str.isdigit
        "gpt-4o@credit:1",
    ],
)
def test_a_fault_named_in_the_model_with_a_bad_argument_is_a_400(app: webtest.TestApp, model: str) -> None:
    error = app.post_json(CHAT, {"model": model, "messages": HI}, status=400).json["error"]
    assert error["param"] == "model" and error["message"].startswith("The fault ")


def test_an_at_sign_that_names_no_fault_is_part_of_the_model_id(app: webtest.TestApp) -> None:
    answer = app.post_json(CHAT, {"model": "claude-3-5-sonnet@20240620", "messages": HI}).json
    assert answer["model"] == "claude-3-5-sonnet@20240620"


def test_rate_limit_fault_headers_and_message(app: webtest.TestApp) -> None:
    response = app.post_json(CHAT, {"model": "gpt-4o@rate_limit:2500", "messages": HI}, status=429)
    assert response.headers["retry-after-ms"] == "2500"
    assert response.headers["retry-after"] == "3"
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert response.headers["x-ratelimit-reset-requests"] == "2.5s"
    assert response.json["error"]["message"].startswith("Rate limit reached for gpt-4o in organization")
    tokens = app.post_json(CHAT, {"model": "rate-limit-tokens-error", "messages": HI}, status=429)
    assert "tokens per min (TPM)" in tokens.json["error"]["message"]
    assert tokens.headers["x-ratelimit-remaining-tokens"] == "0"


def test_invalid_api_key_masks_the_key(app: webtest.TestApp) -> None:
    key = "sk-proj-abcdefghijklmnopqrstuvwxyz1234"
    response = app.post_json(
        CHAT,
        {"model": "invalid-api-key-error", "messages": HI},
        headers={"Authorization": f"Bearer {key}"},
        status=401,
    )
    message = response.json["error"]["message"]
    assert key not in message
    assert (
        message.startswith("Incorrect API key provided: sk-pro") and "1234." in message and "****" in message
    )


def test_context_length_fault_message(app: webtest.TestApp) -> None:
    response = app.post_json(CHAT, {"model": "gpt-4@context_length", "messages": HI}, status=400)
    error = response.json["error"]
    assert error["param"] == "messages"
    assert error["message"].startswith(
        "This model's maximum context length is 8192 tokens. However, you requested 8193 tokens ("
    )
    assert error["message"].endswith("Please reduce the length of the messages or completion.")


def test_unknown_suffix_is_part_of_the_model_id(app: webtest.TestApp) -> None:
    body = app.post_json(CHAT, {"model": "org/model@v2", "messages": HI}).json
    assert body["model"] == "org/model@v2"
    assert "x-mokku-fault" not in app.post_json(CHAT, {"model": "org/model@v2", "messages": HI}).headers


def test_suffix_answers_as_the_base_model(app: webtest.TestApp) -> None:
    response = app.post_json(CHAT, {"model": "gpt-4o-mini@content_filter", "messages": HI})
    assert response.json["model"] == "gpt-4o-mini-2024-07-18"  # the snapshot the alias serves


@pytest.mark.parametrize("value", ["nope", "rate_limit:abc", "timeout:9999", "content_filter:3", ""])
def test_bad_fault_header_is_400(app: webtest.TestApp, value: str) -> None:
    if not value:
        assert (
            app.post_json(CHAT, {"model": "m", "messages": HI}, headers={"X-Mokku-Fault": value}).status_int
            == 200
        )
        return
    response = app.post_json(
        CHAT, {"model": "m", "messages": HI}, headers={"X-Mokku-Fault": value}, status=400
    )
    validate(response.json, "ErrorResponse")
    assert response.json["error"]["param"] == "X-Mokku-Fault"


@pytest.mark.parametrize(
    "header", ["X-Mokku-Latency-Ms", "X-Mokku-Token-Ms", "X-Mokku-Jitter", "X-Mokku-Tokens-Per-Second"]
)
def test_bad_latency_headers_are_400(app: webtest.TestApp, header: str) -> None:
    response = app.post_json(CHAT, {"model": "m", "messages": HI}, headers={header: "-1"}, status=400)
    assert response.json["error"]["param"] == header


@pytest.mark.parametrize("stream", [False, True])
def test_a_rate_slower_than_a_token_every_600_s_is_400(app: webtest.TestApp, stream: bool) -> None:
    body = {"model": "m", "messages": HI, "stream": stream}
    for rate in ("1e-9", "0.0001", "0"):
        headers = {"X-Mokku-Tokens-Per-Second": rate}
        error = app.post_json(CHAT, body, headers=headers, status=400).json["error"]
        assert error["param"] == "X-Mokku-Tokens-Per-Second" and "600 s" in error["message"]


def test_content_filter(app: webtest.TestApp) -> None:
    for way in _triggers("content_filter"):
        body = app.post_json(
            CHAT, {"model": way["model"], "messages": HI}, headers=way.get("headers", {})
        ).json
        validate(body, "CreateChatCompletionResponse")
        assert body["choices"][0]["finish_reason"] == "content_filter"
        assert body["choices"][0]["message"]["content"] == ""
    chunks = sse.parse(
        app.post_json(CHAT, {"model": "content-filter-error", "messages": HI, "stream": True}).body
    )
    assert chunks[-1]["choices"][0]["finish_reason"] == "content_filter"
    legacy = app.post_json("/v1/completions", {"model": "content-filter-error", "prompt": "x"}).json
    assert legacy["choices"][0]["finish_reason"] == "content_filter"


def _stream_body(app: webtest.TestApp, fault: str, text: str = "one two three four five six") -> bytes:
    return app.post_json(
        CHAT, {"model": f"gpt-4o@{fault}", "messages": [{"role": "user", "content": text}], "stream": True}
    ).body


def test_stream_truncated_has_no_done(app: webtest.TestApp) -> None:
    body = _stream_body(app, "stream_truncated:3")
    assert b"[DONE]" not in body
    assert body.count(b"data: ") == 3


def test_stream_error_event(app: webtest.TestApp) -> None:
    body = _stream_body(app, "stream_error:2")
    events = body.split(b"\n\n")
    assert body.count(b"data: ") == 3 and b"[DONE]" not in body
    import json

    error = json.loads(events[2][len(b"data: ") :])
    validate(error, "ErrorResponse")
    assert error["error"]["type"] == "server_error"


def test_stream_malformed_chunk(app: webtest.TestApp) -> None:
    import json

    body = _stream_body(app, "stream_malformed:1")
    events = [e for e in body.split(b"\n\n") if e]
    json.loads(events[0][6:])
    with pytest.raises(ValueError):
        json.loads(events[1][6:])
    assert events[-1] == b"data: [DONE]"


def test_stream_fault_past_the_end_applies_before_done(app: webtest.TestApp) -> None:
    body = _stream_body(app, "stream_truncated:500", "short")
    assert b"[DONE]" not in body and b'"finish_reason":"stop"' in body


def test_stream_faults_leave_plain_requests_alone(app: webtest.TestApp) -> None:
    body = app.post_json(CHAT, {"model": "stream-drop-error", "messages": HI}).json
    assert body["choices"][0]["message"]["content"] == "hi there friend"


def test_timeout_fault_delays_the_start(app: webtest.TestApp) -> None:
    started = time.monotonic()
    app.post_json(CHAT, {"model": "m", "messages": HI}, headers={"X-Mokku-Fault": "timeout:1"})
    assert time.monotonic() - started >= 1.0


def test_stream_stall(app: webtest.TestApp) -> None:
    started = time.monotonic()
    body = _stream_body(app, "stream_stall:1")
    assert time.monotonic() - started >= 1.0
    assert body.endswith(b"data: [DONE]\n\n")


def test_latency_headers_pace_streams_and_whole_responses(app: webtest.TestApp) -> None:
    text = " ".join(["word"] * 10)  # 10 tokens: 9 gaps
    headers = {"X-Mokku-Latency-Ms": "100", "X-Mokku-Token-Ms": "50"}
    for stream in (True, False):
        started = time.monotonic()
        app.post_json(
            CHAT,
            {"model": "m", "messages": [{"role": "user", "content": text}], "stream": stream},
            headers=headers,
        )
        assert time.monotonic() - started >= 0.1 + 9 * 0.05 - 0.01
    started = time.monotonic()
    app.post_json(
        CHAT,
        {"model": "m", "messages": [{"role": "user", "content": text}], "stream": True},
        headers={"X-Mokku-Tokens-Per-Second": "20"},
    )
    assert time.monotonic() - started >= 9 * 0.05 - 0.01


def test_a_whole_response_waits_as_long_as_its_stream_would_last() -> None:
    pace = latency.Pace(ttft=0.1, token_delay=0.05)
    assert pace.whole_response(10) == pytest.approx(0.1 + 9 * 0.05)  # the first token, then 9 gaps
    assert pace.whole_response(1) == pace.whole_response(0) == pytest.approx(0.1)


def _paced(monkeypatch: pytest.MonkeyPatch, spent: List[float]) -> List[float]:
    """The waits a 50 ms token pace asks for, on a clock that advances by ``spent`` before each token."""
    clock = [100.0]
    monkeypatch.setattr(latency.time, "monotonic", lambda: clock[0])
    pace = latency.Pace(token_delay=0.05)
    waits = []
    for seconds in spent:
        clock[0] += seconds
        waits.append(pace.next_token())
        clock[0] += max(waits[-1], 0.0)  # a token already due goes out at once
    return waits


def test_tokens_keep_to_a_schedule_while_chunks_take_time_to_write(monkeypatch: pytest.MonkeyPatch) -> None:
    # 30 ms writing each chunk to a slow client: the next token waits only the 20 ms left.
    waits = _paced(monkeypatch, [0.03] * 10)
    assert waits[0] == pytest.approx(0.05)
    assert waits[1:] == pytest.approx([0.02] * 9)


def test_a_token_held_up_by_the_server_is_caught_up(monkeypatch: pytest.MonkeyPatch) -> None:
    # The server busy for 120 ms before the second token: it and the two due meanwhile go out at
    # once, and the fourth is back on the schedule set by the first.
    waits = _paced(monkeypatch, [0.0, 0.12, 0.0, 0.0, 0.0])
    assert waits[0] == pytest.approx(0.05)
    assert [max(wait, 0.0) for wait in waits[1:]] == pytest.approx([0.0, 0.0, 0.03, 0.05])


def test_schedule_restarts_after_a_long_hold_up_instead_of_bursting(monkeypatch: pytest.MonkeyPatch) -> None:
    # Held up past CATCH_UP_S: the next token still waits a whole delay, and the schedule goes on.
    waits = _paced(monkeypatch, [0.0, latency.CATCH_UP_S + 0.1, 0.0])
    assert waits == pytest.approx([0.05, 0.05, 0.05])


def test_schedule_restarts_after_a_stall(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(latency.time, "monotonic", lambda: clock[0])
    pace = latency.Pace(token_delay=0.05)
    assert pace.next_token() == pytest.approx(0.05)
    clock[0] += 0.05 + 0.3  # a stall of 0.3 s, shorter than CATCH_UP_S
    pace.resume()
    assert [pace.next_token(), pace.next_token()] == pytest.approx([0.05, 0.1])


def test_server_wide_latency_with_jitter() -> None:
    app = build({"MOKKU_TOKEN_MS": "20", "MOKKU_JITTER": "0.5"})
    started = time.monotonic()
    app.post_json(
        CHAT, {"model": "m", "messages": [{"role": "user", "content": " ".join(["w"] * 21)}], "stream": True}
    )
    assert time.monotonic() - started >= 20 * 0.02 * 0.5


def _sequence(env: Dict[str, str], n: int = 60) -> List[str]:
    app = build(env)
    return [
        app.post_json(CHAT, {"model": "m", "messages": HI}, expect_errors=True).headers.get(
            "x-mokku-fault", "-"
        )
        for _ in range(n)
    ]


def test_random_faults_repeat_with_a_seed() -> None:
    env = {"MOKKU_FAULTS": "rate_limit=0.2,server_error=0.1,content_filter=0.1", "MOKKU_SEED": "42"}
    first, second = _sequence(env), _sequence(env)
    assert first == second
    assert {"rate_limit", "server_error", "content_filter", "-"} == set(first)
    assert _sequence({**env, "MOKKU_SEED": "43"}) != first


@pytest.mark.parametrize("fault", sorted(faults.FAULTS))
def test_every_fault_by_the_random_trigger(fault: str) -> None:
    spec = f"{fault}:0" if faults.FAULTS[fault].arg else fault
    app = build({"MOKKU_FAULTS": f"{spec}=1"})
    body = {"model": "m", "messages": HI, "stream": fault.startswith("stream_")}
    if fault == "stream_drop":
        # In-process there is no connection to reset: the server sees the reset the stream raises.
        with pytest.raises(ConnectionResetError):
            app.post_json(CHAT, body)
        return
    response = app.post_json(CHAT, body, expect_errors=True)
    assert response.headers["x-mokku-fault"] == fault
    if fault in ERROR_FAULTS:
        assert response.status_int == ERROR_FAULTS[fault][0]


def test_bad_fault_configuration_is_refused() -> None:
    with pytest.raises(config.ConfigError, match="Unknown fault"):
        App(config.load({"MOKKU_FAULTS": "meteor=0.5"}))
    with pytest.raises(config.ConfigError):
        config.load({"MOKKU_FAULTS": "rate_limit=0.7,server_error=0.7"})
    with pytest.raises(config.ConfigError):
        config.load({"MOKKU_FAULTS": "rate_limit"})


# Context windows (opt-in).


def test_context_windows_are_off_by_default(app: webtest.TestApp) -> None:
    long_text = "word " * 20000
    assert (
        app.post_json(
            CHAT, {"model": "gpt-4", "messages": [{"role": "user", "content": long_text}]}
        ).status_int
        == 200
    )


def test_real_context_windows() -> None:
    app = build({"MOKKU_CONTEXT_WINDOW": "real"})
    text = "word " * 9000
    response = app.post_json(
        CHAT, {"model": "gpt-4", "messages": [{"role": "user", "content": text}]}, status=400
    )
    error = response.json["error"]
    assert (error["code"], error["param"]) == ("context_length_exceeded", "messages")
    prompt = 3 + 3 + count(text)
    assert error["message"] == (
        f"This model's maximum context length is 8192 tokens. However, you requested {prompt} tokens "
        f"({prompt} in the messages, 0 in the completion). Please reduce the length of the messages or completion."
    )
    with_completion = app.post_json(
        CHAT, {"model": "gpt-4", "messages": HI, "max_tokens": 8190}, status=400
    ).json["error"]["message"]
    hi_tokens = 3 + 3 + 3  # reply priming, one message, "hi there friend"
    assert f"({hi_tokens} in the messages, 8190 in the completion)" in with_completion
    assert (
        app.post_json(CHAT, {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}).status_int
        == 200
    )
    too_many = app.post_json(CHAT, {"model": "gpt-4o", "messages": HI, "max_tokens": 20000}, status=400).json[
        "error"
    ]
    assert too_many["param"] == "max_tokens" and "at most 16384 completion tokens" in too_many["message"]
    dated = {"model": "gpt-4-0613", "messages": [{"role": "user", "content": text}]}  # the alias's window
    assert (
        "maximum context length is 8192 tokens"
        in app.post_json(CHAT, dated, status=400).json["error"]["message"]
    )
    legacy = app.post_json(
        "/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "x", "max_tokens": 4096}, status=400
    )
    assert "(1 in your prompt; 4096 for the completion)" in legacy.json["error"]["message"]


def test_with_real_windows_an_answer_stops_at_the_models_output_limit() -> None:
    """No limit asked: the model's own (16,384 output tokens for gpt-4o) cuts the answer, as it cuts a
    real one; the Responses API then says the response is incomplete."""
    app = build({"MOKKU_CONTEXT_WINDOW": "real"})
    long_text = "word " * 20000
    chat = app.post_json(CHAT, {"model": "gpt-4o", "messages": [{"role": "user", "content": long_text}]}).json
    assert chat["choices"][0]["finish_reason"] == "length"
    assert chat["usage"]["completion_tokens"] == 16384
    response = app.post_json("/v1/responses", {"model": "gpt-4o", "input": long_text}).json
    assert response["status"] == "incomplete" and response["usage"]["output_tokens"] == 16384
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    short = app.post_json(CHAT, {"model": "gpt-4o", "messages": HI}).json
    assert short["choices"][0]["finish_reason"] == "stop"
    window = build({"MOKKU_CONTEXT_WINDOW": "100"})  # one window for all: what the prompt leaves
    near = window.post_json(
        CHAT, {"model": "m", "messages": [{"role": "user", "content": "word " * 80}]}
    ).json
    assert near["choices"][0]["finish_reason"] == "length"
    assert near["usage"]["prompt_tokens"] + near["usage"]["completion_tokens"] == 100


def test_an_embeddings_context_error_puts_every_token_in_the_prompt(app: webtest.TestApp) -> None:
    """Embeddings complete nothing: the fault's overflow is the prompt's, as the real API counts it."""
    error = app.post_json(
        "/v1/embeddings", {"model": "text-embedding-3-small@context_length", "input": "hello"}, status=400
    ).json["error"]
    assert (error["code"], error["param"]) == ("context_length_exceeded", "prompt")
    assert error["message"] == (
        "This model's maximum context length is 8192 tokens, however you requested 8193 tokens "
        "(8193 in your prompt; 0 for the completion). Please reduce your prompt; or completion length."
    )


RESPONSES_CONTEXT_ERROR = {
    "message": "Your input exceeds the context window of this model. Please adjust your input and try again.",
    "type": "invalid_request_error",
    "param": "input",
    "code": "context_length_exceeded",
}


def test_responses_context_window_error_speaks_of_input() -> None:
    """The Responses API words it without numbers and names ``input``; too many output tokens name
    ``max_output_tokens``. Streamed, it comes once the stream has begun, as the real API sends it:
    created, in progress, then the error event (numbered 2)."""
    app = build({"MOKKU_CONTEXT_WINDOW": "real"})
    long_input = {"model": "gpt-4", "input": "word " * 9000}
    for body in (long_input, {"model": "gpt-4@context_length", "input": "hi"}):
        assert app.post_json("/v1/responses", body, status=400).json["error"] == RESPONSES_CONTEXT_ERROR
        raw = app.post_json("/v1/responses", dict(body, stream=True)).text
        streamed = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: ")]
        assert [event["type"] for event in streamed] == ["response.created", "response.in_progress", "error"]
        assert streamed[2]["sequence_number"] == 2 and streamed[2]["error"] == RESPONSES_CONTEXT_ERROR
        for event in streamed:
            validate(event, "ResponseStreamEvent")
    too_many = {"model": "gpt-4o", "input": "hi", "max_output_tokens": 20000}
    error = app.post_json("/v1/responses", too_many, status=400).json["error"]
    assert error["param"] == "max_output_tokens" and "at most 16384 completion tokens" in error["message"]


def test_one_window_for_all() -> None:
    app = build({"MOKKU_CONTEXT_WINDOW": "50"})
    assert app.post_json(CHAT, {"model": "anything", "messages": HI, "max_tokens": 40}).status_int == 200
    response = app.post_json(CHAT, {"model": "anything", "messages": HI, "max_tokens": 45}, status=400)
    assert "maximum context length is 50 tokens" in response.json["error"]["message"]
    embed = app.post_json("/v1/embeddings", {"model": "e", "input": ["ok", "word " * 60]}, status=400)
    assert embed.json["error"]["code"] == "context_length_exceeded"


# API keys (opt-in).


def test_api_keys() -> None:
    app = build({"MOKKU_API_KEY": "sk-good-one-1234567890,sk-other-key-0987654321"})
    missing = app.post_json(CHAT, {"model": "m", "messages": HI}, status=401).json["error"]
    validate({"error": missing}, "ErrorResponse")
    assert missing["message"].startswith("You didn't provide an API key.")
    wrong = app.post_json(
        CHAT,
        {"model": "m", "messages": HI},
        headers={"Authorization": "Bearer sk-wrong-key-000000001234"},
        status=401,
    )
    assert wrong.json["error"]["code"] == "invalid_api_key"
    assert "sk-wrong-key-000000001234" not in wrong.text and "1234" in wrong.json["error"]["message"]
    for key in ("sk-good-one-1234567890", "sk-other-key-0987654321"):
        assert (
            app.post_json(
                CHAT, {"model": "m", "messages": HI}, headers={"Authorization": f"Bearer {key}"}
            ).status_int
            == 200
        )
    app.get("/v1/models", status=401)
    assert app.get("/health").status_int == 200


def test_settings_repr_hides_keys() -> None:
    assert "sk-secret" not in repr(config.load({"MOKKU_API_KEY": "sk-secret-1"}))


# Rate limits (opt-in).


def build_limited(env: Dict[str, str]) -> webtest.TestApp:
    """An app whose rate-limit buckets do not refill: their clock stands still (see test_limits)."""
    app = build(env)
    buckets = SqliteBuckets(os.path.join(tempfile.mkdtemp(), "state.sqlite3"))  # this test's alone
    app.app.access = limits.Access(app.app.settings, clock=lambda: 0.0, buckets=buckets)
    return app


def test_requests_per_minute() -> None:
    app = build_limited({"MOKKU_RPM": "3"})
    statuses: List[int] = []
    for _ in range(5):
        response = app.post_json(CHAT, {"model": "m", "messages": HI}, expect_errors=True)
        statuses.append(response.status_int)
        if response.status_int == 200:
            assert response.headers["x-ratelimit-limit-requests"] == "3"
    assert statuses == [200, 200, 200, 429, 429]
    error = response.json["error"]
    validate(response.json, "ErrorResponse")
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    assert int(response.headers["retry-after-ms"]) > 0


def test_rate_limits_are_per_key() -> None:
    app = build_limited({"MOKKU_RPM": "1"})
    for key in ("sk-a", "sk-b"):
        headers = {"Authorization": f"Bearer {key}"}
        assert app.post_json(CHAT, {"model": "m", "messages": HI}, headers=headers).status_int == 200
        app.post_json(CHAT, {"model": "m", "messages": HI}, headers=headers, status=429)


def test_remaining_counts_down() -> None:
    app = build_limited({"MOKKU_RPM": "10", "MOKKU_TPM": "100000"})
    remaining = [
        int(
            app.post_json(CHAT, {"model": "m", "messages": HI, "max_tokens": 100}).headers[
                "x-ratelimit-remaining-requests"
            ]
        )
        for _ in range(3)
    ]
    assert remaining == [9, 8, 7]
    response = app.get("/v1/models")
    assert response.headers["x-ratelimit-limit-tokens"] == "100000"


def test_a_rate_limit_fault_under_real_limits_sends_each_header_once() -> None:
    app = build_limited({"MOKKU_RPM": "4", "MOKKU_TPM": "100000"})
    body = {"model": "m", "messages": HI}
    response = app.post_json(CHAT, body, headers={"X-Mokku-Fault": "rate_limit"}, status=429)
    names = [name.lower() for name, _ in response.headerlist]
    assert len(names) == len(set(names)), names
    assert response.headers["x-ratelimit-remaining-requests"] == "0"  # the fault's own, not the limiter's
    assert response.headers["x-ratelimit-limit-tokens"] == "100000"  # the limiter's other limit still told
    anthropic = {"X-Mokku-Fault": "rate_limit_tokens", "x-api-key": "k", "anthropic-version": "2023-06-01"}
    message = {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": HI}
    response = app.post_json("/v1/messages", message, headers=anthropic, status=429)
    names = [name.lower() for name, _ in response.headerlist]
    assert len(names) == len(set(names)), names
    assert response.headers["anthropic-ratelimit-input-tokens-remaining"] == "0"


def test_tokens_per_minute() -> None:
    app = build_limited({"MOKKU_TPM": "1000"})
    app.post_json(CHAT, {"model": "m", "messages": HI, "max_tokens": 900})
    response = app.post_json(CHAT, {"model": "m", "messages": HI, "max_tokens": 900}, status=429)
    assert response.json["error"]["type"] == "tokens"
    assert "tokens per min (TPM)" in response.json["error"]["message"]


def test_format_duration() -> None:
    assert [errors.format_duration(s) for s in (0.12, 1, 20, 90, 360, 2.5, 3600, 8640, 17279.991)] == [
        "120ms",
        "1s",
        "20s",
        "1m30s",
        "6m0s",
        "2.5s",
        "1h0m0s",  # Go's Duration.String(), as the real API's headers
        "2h24m0s",
        "4h47m59.991s",
    ]
