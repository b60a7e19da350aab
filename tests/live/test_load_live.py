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
    # Four long streams take the four slots; only then are sixteen short ones sent, so that all of
    # them are queued well within the first round however busy the machine is. Twenty-four threads
    # per worker: however gunicorn's workers share the connections out, each stream is being served
    # (running or waiting), none queued inside a worker where no gauge sees it, and a scrape always
    # finds a thread.
    long_s, short_s = 8.0, 1.0
    env = {"MOKKU_MAX_RUNNING": "4", "MOKKU_METRICS": "vllm", "MOKKU_THREADS": "24"}
    server = LiveServer("gunicorn", env=env, workers=2)
    try:
        seen: List[tuple] = []

        def counts() -> tuple:
            samples = scrape(server)
            found = (total(samples, "vllm:num_requests_running"), total(samples, "vllm:num_requests_waiting"))
            seen.append(found)
            return found

        with ThreadPoolExecutor(max_workers=20) as pool:
            long_sent = time.monotonic()
            longs = [pool.submit(stream, server, int(long_s * 1000)) for _ in range(4)]
            deadline = time.monotonic() + 20
            while counts() != (4, 0) and time.monotonic() < deadline:
                time.sleep(0.02)
            ready = threading.Barrier(16)
            shorts = [pool.submit(stream, server, int(short_s * 1000), ready) for _ in range(16)]
            while counts() != (4, 16) and time.monotonic() < deadline:
                time.sleep(0.02)
            seen_at = time.monotonic()
            [future.result() for future in longs]
            results = sorted(future.result() for future in shorts)
            done = time.monotonic()
        assert (4, 16) in seen, seen
        assert max(running for running, _ in seen) == 4  # never more than four, whichever worker
        # A short stream runs only once a long one is over, a round of four at a time: the last four
        # waited for the long round and three short rounds before theirs. (A first chunk comes when a
        # stream starts running; a stream is over ``token_ms`` after.)
        assert done - long_sent >= long_s + 4 * short_s
        assert results[-1] >= 3 * short_s
        samples = wait_for(server, "vllm:request_queue_time_seconds_count", 20)
        assert (total(samples, "vllm:num_requests_running"), total(samples, "vllm:num_requests_waiting")) == (
            0,
            0,
        )
        # Sixteen waited, each at least until the long round was over (it was queued before
        # ``seen_at``) and four of them for each short round before theirs: the queue's histogram
        # says so.
        assert total(samples, "vllm:request_queue_time_seconds_count") == 20
        long_left = max(0.0, long_sent + long_s - seen_at)
        assert total(samples, "vllm:request_queue_time_seconds_sum") >= 16 * long_left + 4 * short_s * (
            1 + 2 + 3
        )
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
