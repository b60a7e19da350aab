"""Output amplification against the real servers: refused at once, memory flat, others served."""

from __future__ import annotations

import threading
import time
from typing import Any, List

import pytest

from ..servers import LiveServer, request, request_json, server_rss_kb
from ..spec import assert_invalid_request

WORDS_8K = " ".join(["word"] * 1600)
WORDS_246K = " ".join(["word"] * 50_000)
ATTACKS: List[Any] = [
    (
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": WORDS_8K}], "n": 128, "logprobs": True, "top_logprobs": 20},
        "n",
    ),
    (
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": WORDS_246K}], "n": 128, "stream": True},
        "n",
    ),
    ("/v1/completions", {"prompt": ["a b c"] * 4000, "n": 128}, "n"),
    (
        "/v1/chat/completions",
        {"model": "m" * 1_000_000, "messages": [{"role": "user", "content": "hi"}]},
        "model",
    ),
]


@pytest.mark.parametrize("kind", ["module", "gunicorn"])
def test_amplifying_requests_are_refused_while_others_are_served(kind: str) -> None:
    server = LiveServer(kind, env={"MOKKU_MAX_BODY_BYTES": str(16 * 1024 * 1024)})
    try:
        before = server_rss_kb(server)
        health: List[int] = []
        stop = threading.Event()

        def probe() -> None:
            while not stop.is_set():
                health.append(request("GET", server.url + "/health", timeout=30)[0])
                time.sleep(0.05)

        prober = threading.Thread(target=probe)
        prober.start()
        try:
            for _ in range(3):
                for url, body, param in ATTACKS:
                    # Unbounded, the first of these took 86 s and 1.8 GB (its work is counted in
                    # test_output_bounds); the timeout only keeps a regression from hanging here.
                    status, _, answer = request_json(
                        "POST", server.url + url, {"model": "mokku-echo-1", **body}, timeout=60
                    )
                    assert status == 400
                    assert_invalid_request(answer, param, answer["error"]["code"], r"")  # type: ignore[index]
        finally:
            stop.set()
            prober.join()
        assert health and set(health) == {200}
        assert server_rss_kb(server) - before < 100 * 1024
    finally:
        server.close()
