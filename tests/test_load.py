"""The load simulation in-process: slots, the queue's bounds, latency that grows with load."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import webtest

from mokku import config
from mokku.server.app import App
from mokku.simulation import load

from . import wsgi

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "a b c d e f g h i j k l m n o p q r s t"}]


def build(tmp_path: Path, **env: str) -> webtest.TestApp:
    settings = config.load({"MOKKU_STATE": str(tmp_path / "state.sqlite3"), "MOKKU_JOURNAL": "0", **env})
    return webtest.TestApp(App(settings), extra_environ={"wsgi.multithread": True})


@pytest.mark.parametrize(
    "env, message",
    [
        ({"MOKKU_MAX_RUNNING": "-1"}, "MOKKU_MAX_RUNNING"),
        ({"MOKKU_MAX_RUNNING": "100001"}, "at most 100000"),
        ({"MOKKU_QUEUE_FULL": "500"}, "MOKKU_QUEUE_FULL"),
        ({"MOKKU_LOAD_FACTOR": "0.5", "MOKKU_MAX_RUNNING": "4"}, "MOKKU_LOAD_FACTOR"),
        ({"MOKKU_LOAD_FACTOR": "3"}, "needs MOKKU_MAX_RUNNING"),
        ({"MOKKU_PREFILL_MS": "-1"}, "MOKKU_PREFILL_MS"),
    ],
)
def test_bad_settings_are_refused(env: dict, message: str) -> None:
    with pytest.raises(config.ConfigError, match=message):
        config.load(env)


def test_slots_fill_wait_and_are_given_back() -> None:
    slots = load.Slots(2, 1)
    first, second = slots.take({}), slots.take({})
    assert (first.running, second.running) == (1, 2)
    assert slots.counts() == (2, 0)
    first.release()
    first.release()  # once only
    assert slots.counts() == (1, 0)
    third = slots.take({})
    with pytest.raises(load.Full):  # the queue holds one: it waits for a slot, the next is refused
        slots._waiting[0] = 12345
        slots.take({})
    slots.gone(12345)  # a dead worker's place in the queue is free again
    assert slots.counts() == (2, 0)
    slots.gone(0)
    second.release()
    third.release()
    assert slots.counts() == (0, 0)


def test_a_dead_workers_slots_are_freed() -> None:
    slots = load.Slots(3, 0)
    for index in range(3):
        slots._running[index] = 424242
    with pytest.raises(load.Full):
        slots.take({})
    slots.gone(424242)
    assert slots.take({}).running == 1


def test_every_answer_gives_its_slot_back(tmp_path: Path) -> None:
    app = build(tmp_path, MOKKU_MAX_RUNNING="1", MOKKU_MAX_WAITING="0")
    app.post_json(CHAT, {"model": "gpt-4o", "messages": HI})
    app.post_json(CHAT, {"model": "gpt-4o", "messages": HI, "stream": True})
    app.post_json(CHAT, {"model": "gpt-4o", "messages": HI, "max_tokens": "x"}, status=400)
    app.post_json(CHAT, {"model": "server-error", "messages": HI}, status=500)
    app.post_json("/v1/embeddings", {"model": "text-embedding-3-small", "input": "x"})
    slots = app.app.slots
    assert slots is not None and slots.counts() == (0, 0)
    # A stream abandoned after its first chunk gives it back when the server closes it.
    body = wsgi.post(app.app, CHAT, {"model": "gpt-4o", "messages": HI, "stream": True})
    next(iter(body))
    assert slots.counts() == (1, 0)
    app.post_json(CHAT, {"model": "gpt-4o", "messages": HI}, status=429)  # full, and no queue
    body.close()  # type: ignore[attr-defined]
    assert slots.counts() == (0, 0)


def test_a_full_queue_is_a_rate_limit_or_overloaded(tmp_path: Path) -> None:
    app = build(tmp_path, MOKKU_MAX_RUNNING="1", MOKKU_MAX_WAITING="0")
    slots = app.app.slots
    assert slots is not None
    held = slots.take({})
    try:
        refused = app.post_json(CHAT, {"model": "gpt-4o", "messages": HI}, status=429)
        assert (
            refused.json["error"]["code"] == "rate_limit_exceeded"
            and refused.json["error"]["type"] == "requests"
        )
        assert refused.headers["retry-after"] == "1"
        claude = app.post_json(
            "/v1/messages",
            {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": HI},
            headers={"anthropic-version": "2023-06-01"},
            status=429,
        )
        assert claude.json["error"]["type"] == "rate_limit_error"
        overloaded = build(tmp_path, MOKKU_MAX_RUNNING="1", MOKKU_MAX_WAITING="0", MOKKU_QUEUE_FULL="503")
        assert overloaded.app.slots is not None
        busy = overloaded.app.slots.take({})
        answer = overloaded.post_json(CHAT, {"model": "gpt-4o", "messages": HI}, status=503)
        assert (
            answer.json["error"]["message"] == "The engine is currently overloaded, please try again later."
        )
        claude = overloaded.post_json(
            "/v1/messages",
            {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": HI},
            headers={"anthropic-version": "2023-06-01"},
            status=529,
        )
        assert claude.json["error"]["type"] == "overloaded_error"
        gemini = "/v1beta/models/gemini-2.5-flash:generateContent"
        contents = {"contents": [{"parts": [{"text": "hi"}]}]}
        assert app.post_json(gemini, contents, status=429).json["error"]["status"] == "RESOURCE_EXHAUSTED"
        assert overloaded.post_json(gemini, contents, status=503).json["error"]["status"] == "UNAVAILABLE"
        busy.release()
    finally:
        held.release()


def test_latency_grows_with_the_running_count(tmp_path: Path) -> None:
    app = build(tmp_path, MOKKU_MAX_RUNNING="10", MOKKU_LOAD_FACTOR="5", MOKKU_TTFT_MS="100")
    started = time.monotonic()
    app.post_json(CHAT, {"model": "gpt-4o", "messages": HI})
    assert time.monotonic() - started >= 0.1
    started = time.monotonic()  # as if all ten ran: five times the time to first token
    app.post_json(CHAT, {"model": "gpt-4o", "messages": HI}, headers={"X-Mokku-Running": "10"})
    assert time.monotonic() - started >= 0.5
    started = time.monotonic()  # halfway: 1 + 4 * 5 / 9
    app.post_json(CHAT, {"model": "gpt-4o", "messages": HI}, headers={"X-Mokku-Running": "6"})
    assert time.monotonic() - started >= 0.1 * (1 + 4 * 5 / 9)
    for wrong in ("lots", "0", "-1", "1e3", "99999999999", "٣"):
        headers = {"X-Mokku-Running": wrong}
        bad = app.post_json(CHAT, {"model": "gpt-4o", "messages": HI}, headers=headers, status=400)
        assert bad.json["error"]["param"] == "X-Mokku-Running"
    assert app.app.slots is not None and app.app.slots.counts() == (0, 0)  # refused before any slot


def test_prefill_adds_per_prompt_token(tmp_path: Path) -> None:
    app = build(tmp_path, MOKKU_PREFILL_MS="20")
    started = time.monotonic()
    answer = app.post_json(CHAT, {"model": "gpt-4o", "messages": HI}).json
    assert time.monotonic() - started >= answer["usage"]["prompt_tokens"] * 0.02
