"""A loaded server under real servers: a bounded number running across gunicorn's workers, the rest
waiting, the queue's refusal, and the gauges that show it."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional

import openai
import pytest

from ..servers import LiveServer
from .test_metrics_live import scrape, total, wait_for

HI = [{"role": "user", "content": "wait your turn"}]


def stream(server: LiveServer, token_ms: int = 100, ready: Optional[threading.Barrier] = None) -> float:
    """Seconds to the stream's first chunk (two tokens, ``token_ms`` apart); it is read to its end.
    With ``ready``, the request is sent once every caller has its client made."""
    with openai.OpenAI(base_url=server.url + "/v1", api_key="sk-load", max_retries=0, timeout=60) as client:
        if ready is not None:
            ready.wait(30)
        started = time.monotonic()
        first = 0.0
        chunks = client.chat.completions.create(
            model="gpt-4o",
            messages=HI,
            stream=True,
            max_tokens=2,
            extra_headers={"X-Mokku-Token-Ms": str(token_ms)},
        )
        for _ in chunks:
            first = first or time.monotonic() - started
    return first


def test_four_run_across_two_workers_while_sixteen_wait() -> None:
    # Twenty threads per worker: however gunicorn's workers share the twenty connections out, each
    # one is being served (running or waiting), none queued inside a worker where no gauge sees it.
    env = {"MOKKU_MAX_RUNNING": "4", "MOKKU_METRICS": "vllm", "MOKKU_THREADS": "20"}
    server = LiveServer("gunicorn", env=env, workers=2)
    try:
        seen: List[tuple] = []
        with ThreadPoolExecutor(max_workers=20) as pool:
            ready = threading.Barrier(20)
            firsts = [pool.submit(stream, server, 3000, ready) for _ in range(20)]
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                samples = scrape(server)
                counts = (
                    total(samples, "vllm:num_requests_running"),
                    total(samples, "vllm:num_requests_waiting"),
                )
                seen.append(counts)
                if counts == (4, 16):
                    break
                time.sleep(0.02)
            results = sorted(future.result() for future in firsts)
        assert (4, 16) in seen, seen
        assert max(running for running, _ in seen) == 4  # never more than four, whichever worker
        # Four at a time, each 3 s (two tokens 3 s apart, so that all twenty are queued well within
        # the first round, however busy the machine): the last four waited for the
        # four rounds before them.
        assert results[-1] >= 4 * 3.0
        samples = wait_for(server, "vllm:request_queue_time_seconds_count", 20)
        assert (total(samples, "vllm:num_requests_running"), total(samples, "vllm:num_requests_waiting")) == (
            0,
            0,
        )
        # Sixteen waited, four of them for each round before theirs: the queue's histogram says so.
        assert total(samples, "vllm:request_queue_time_seconds_count") == 20
        assert total(samples, "vllm:request_queue_time_seconds_sum") >= 4 * 3.0 * (1 + 2 + 3 + 4) * 0.8
    finally:
        server.close()


@pytest.mark.parametrize("kind", ["gunicorn", "module"])
def test_a_full_queue_is_refused_and_a_client_that_leaves_gives_its_place_back(kind: str) -> None:
    env = {"MOKKU_MAX_RUNNING": "1", "MOKKU_MAX_WAITING": "1", "MOKKU_METRICS": "vllm", "MOKKU_THREADS": "8"}
    server = LiveServer(kind, env=env, workers=2 if kind == "gunicorn" else 1)
    try:
        running = threading.Thread(target=stream, args=(server, 5000))
        running.start()
        deadline = time.monotonic() + 10
        while total(scrape(server), "vllm:num_requests_running") < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        # One waits on a raw socket, then hangs up.
        body = b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
        waiting = socket.create_connection(("127.0.0.1", server.port))
        waiting.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        while total(scrape(server), "vllm:num_requests_waiting") < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        with openai.OpenAI(base_url=server.url + "/v1", api_key="sk-load", max_retries=0) as client:
            with pytest.raises(openai.RateLimitError) as refused:
                client.chat.completions.create(model="gpt-4o", messages=HI)
        assert refused.value.code == "rate_limit_exceeded"
        assert refused.value.response.headers["retry-after"] == "1"
        waiting.close()
        while total(scrape(server), "vllm:num_requests_waiting") > 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        samples = scrape(server)  # it left the queue at once, not when the slot came free
        assert (total(samples, "vllm:num_requests_running"), total(samples, "vllm:num_requests_waiting")) == (
            1,
            0,
        )
        assert running.is_alive()
        running.join(30)
        samples = scrape(server)
        assert (total(samples, "vllm:num_requests_running"), total(samples, "vllm:num_requests_waiting")) == (
            0,
            0,
        )
    finally:
        server.close()


@pytest.mark.parametrize("kind", ["gunicorn", "module"])
def test_the_prefix_cache_is_the_servers_whichever_worker_answers(kind: str) -> None:
    server = LiveServer(kind, env={"MOKKU_PREFIX_CACHE": "1024"}, workers=2 if kind == "gunicorn" else 1)
    system = "You answer questions about the weather, at length and with care. " * 4
    try:

        def ask(index: int) -> int:
            with openai.OpenAI(base_url=server.url + "/v1", api_key="sk-prefix", max_retries=0) as client:
                answer = client.chat.completions.create(
                    model="gpt-4o",
                    messages=[{"role": "system", "content": system}, {"role": "user", "content": "Rain?"}],
                )
                assert answer.usage is not None and answer.usage.prompt_tokens_details is not None
                return answer.usage.prompt_tokens_details.cached_tokens or 0

        first = ask(0)
        with ThreadPoolExecutor(max_workers=8) as pool:
            later = list(pool.map(ask, range(1, 25)))
        assert first == 0
        assert len(set(later)) == 1 and later[0] > 0  # every one found the same blocks cached
    finally:
        server.close()
