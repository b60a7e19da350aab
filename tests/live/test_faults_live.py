"""Every fault through the official SDK against the real server, by each trigger; limits and latency."""

from __future__ import annotations

import http.client
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional

import openai
import pytest

from mokku import config
from mokku.simulation import faults

from ..servers import LiveServer
from ..spec import validate

HI = [{"role": "user", "content": "one two three four five six seven"}]

ERRORS: Dict[str, Any] = {
    "credit": (openai.APIStatusError, 402, "insufficient_quota"),
    "quota": (openai.RateLimitError, 429, "insufficient_quota"),
    "rate_limit": (openai.RateLimitError, 429, "rate_limit_exceeded"),
    "rate_limit_tokens": (openai.RateLimitError, 429, "rate_limit_exceeded"),
    "invalid_api_key": (openai.AuthenticationError, 401, "invalid_api_key"),
    "permission": (openai.PermissionDeniedError, 403, "unsupported_country_region_territory"),
    "context_length": (openai.BadRequestError, 400, "context_length_exceeded"),
    "server_error": (openai.InternalServerError, 500, None),
    "overloaded": (openai.InternalServerError, 503, None),
}


def triggers(fault: str, arg: Optional[int] = None) -> List[Dict[str, Any]]:
    spec = f"{fault}:{arg}" if arg is not None else fault
    ways = [{"model": f"gpt-4o@{spec}"}, {"model": "gpt-4o", "extra_headers": {"X-Mokku-Fault": spec}}]
    if arg is None:
        ways.append({"model": faults.model_name(fault)})
    return ways


@pytest.mark.parametrize("fault", sorted(ERRORS))
def test_error_faults_raise_the_sdk_exception(client: openai.OpenAI, fault: str) -> None:
    kind, status, code = ERRORS[fault]
    for way in triggers(fault):
        for stream in (False, True):
            with pytest.raises(kind) as caught:
                client.chat.completions.create(messages=HI, stream=stream, **way)
            assert caught.value.status_code == status
            assert caught.value.code == code
            validate({"error": caught.value.body}, "ErrorResponse")


def test_rate_limit_fault_headers(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o@rate_limit:1500", messages=HI)
    headers = caught.value.response.headers
    assert headers["retry-after-ms"] == "1500" and headers["retry-after"] == "2"
    assert headers["x-mokku-fault"] == "rate_limit"


def test_sdk_retries_obey_retry_after_ms(live_server: LiveServer) -> None:
    with openai.OpenAI(base_url=live_server.url + "/v1", api_key="sk-x", max_retries=2) as client:
        started = time.monotonic()
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(
                model="gpt-4o", messages=HI, extra_headers={"X-Mokku-Fault": "rate_limit:1500"}
            )
        # Two retries, each after the 1.5 s the server asked for (the SDK's own backoff is shorter).
        assert time.monotonic() - started >= 3.0


def test_timeout_fault_times_the_client_out(live_server: LiveServer) -> None:
    with openai.OpenAI(
        base_url=live_server.url + "/v1", api_key="sk-x", max_retries=0, timeout=0.5
    ) as client:
        for way in [*triggers("timeout", 5), {"model": "timeout-error"}]:
            with pytest.raises(openai.APITimeoutError):
                client.chat.completions.create(messages=HI, **way)
    # The server noticed each client leaving and is free.
    with openai.OpenAI(base_url=live_server.url + "/v1", api_key="sk-x", max_retries=0) as client:
        assert client.chat.completions.create(model="m", messages=HI).choices[0].message.content


def test_content_filter(client: openai.OpenAI) -> None:
    for way in triggers("content_filter"):
        completion = client.chat.completions.create(messages=HI, **way)
        assert completion.choices[0].finish_reason == "content_filter"
        chunks = list(client.chat.completions.create(messages=HI, stream=True, **way))
        assert chunks[-1].choices[0].finish_reason == "content_filter"


def _consume(client: openai.OpenAI, **kwargs: Any) -> List[Any]:
    return list(client.chat.completions.create(messages=HI, stream=True, **kwargs))


def test_stream_drop_breaks_the_connection(client: openai.OpenAI) -> None:
    for way in [*triggers("stream_drop", 2), {"model": "stream-drop-error"}]:
        with pytest.raises(Exception) as caught:
            _consume(client, **way)
        error = caught.value
        assert isinstance(error, openai.APIConnectionError) or type(error).__module__.startswith("httpx"), (
            repr(error)
        )


def test_stream_drop_is_a_reset_on_both_servers(live_server: LiveServer) -> None:
    """A reset (ECONNRESET), as a failing load balancer's, not a clean FIN: clients that handle only
    resets see the same on either server."""
    body = json.dumps({"model": "m@stream_drop:2", "messages": HI, "stream": True}).encode()
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + b"Content-Length: %d\r\n\r\n" % len(body)
            + body
        )
        with pytest.raises(ConnectionResetError):
            while sock.recv(65536):
                pass


def test_stream_error_event(client: openai.OpenAI) -> None:
    for way in [*triggers("stream_error", 2), {"model": "stream-error"}]:
        with pytest.raises(openai.APIError) as caught:
            _consume(client, **way)
        assert "server had an error" in caught.value.message


def test_stream_truncated_ends_without_finish(client: openai.OpenAI) -> None:
    for way in [*triggers("stream_truncated", 3), {"model": "stream-truncated-error"}]:
        chunks = _consume(client, **way)
        assert len(chunks) == 3
        assert all(choice.finish_reason is None for chunk in chunks for choice in chunk.choices)


def test_stream_malformed_chunk(client: openai.OpenAI) -> None:
    for way in [*triggers("stream_malformed", 2), {"model": "stream-malformed-error"}]:
        with pytest.raises(ValueError):
            _consume(client, **way)


def test_stream_stall_trips_a_read_timeout(live_server: LiveServer) -> None:
    with openai.OpenAI(
        base_url=live_server.url + "/v1", api_key="sk-x", max_retries=0, timeout=0.7
    ) as client:
        for way in [*triggers("stream_stall", 5), {"model": "stream-stall-error"}]:
            started = time.monotonic()
            with pytest.raises(Exception) as caught:
                _consume(client, **way)
            assert (
                "timeout" in type(caught.value).__name__.lower() or "timed out" in str(caught.value).lower()
            )
            assert time.monotonic() - started >= 0.7
        with openai.OpenAI(base_url=live_server.url + "/v1", api_key="sk-x", max_retries=0) as patient:
            chunks = _consume(patient, model="gpt-4o@stream_stall:1")
        assert chunks[-1].choices[0].finish_reason == "stop"


def _fault_sequence(url: str, n: int) -> List[str]:
    host, port = url[len("http://") :].split(":")
    seen = []
    body = json.dumps({"model": "m", "messages": HI, "stream": True}).encode()
    for _ in range(n):
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            connection.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            seen.append(response.getheader("x-mokku-fault") or "-")
            try:
                response.read()
            except (http.client.HTTPException, OSError):
                pass  # the broken-stream faults
        finally:
            connection.close()
    return seen


@pytest.mark.parametrize("kind", ["module", "gunicorn"])
def test_random_trigger_covers_every_fault_reproducibly(kind: str) -> None:
    """With MOKKU_FAULTS naming every fault and a seed, the server fires the sequence the seed gives."""
    rate = 0.95 / len(faults.FAULTS)
    # No waiting (timeout and stall of 0 s); broken streams break after the first chunk, once headers are out.
    args = {"timeout": ":0", "stream_stall": ":0", "rate_limit": ":1", "rate_limit_tokens": ":1"}
    specs = [name + args.get(name, ":1" if faults.FAULTS[name].arg else "") for name in faults.FAULTS]
    env = {"MOKKU_FAULTS": ",".join(f"{spec}={rate}" for spec in specs), "MOKKU_SEED": "7"}
    simulator = faults.Simulator(config.load(env))
    expected = [(simulator._draw() or ("-", None))[0] for _ in range(120)]
    assert set(expected) == set(faults.FAULTS) | {"-"}
    server = LiveServer(kind, env=env)
    try:
        assert _fault_sequence(server.url, 120) == expected
        assert "Traceback" not in server.output()
    finally:
        server.close()


@pytest.mark.parametrize("kind", ["module", "gunicorn"])
def test_rate_limiter_under_20_threads(kind: str) -> None:
    """60 requests from 20 threads against 20 requests per minute: the full bucket's 20 pass, and
    at most what the bucket refilled (continuously, 20 a minute) while they ran. The exact
    arithmetic is in test_limits."""
    server = LiveServer(kind, env={"MOKKU_RPM": "20", "MOKKU_THREADS": "32"})
    try:

        def call(_: int) -> int:
            with openai.OpenAI(base_url=server.url + "/v1", api_key="sk-limited", max_retries=0) as client:
                try:
                    client.chat.completions.create(model="m", messages=HI)
                    return 200
                except openai.RateLimitError as error:
                    assert error.code == "rate_limit_exceeded"
                    assert int(error.response.headers["retry-after-ms"]) > 0
                    return 429

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=20) as pool:
            statuses = list(pool.map(call, range(60)))
        elapsed = time.monotonic() - started
        passed = statuses.count(200)
        assert 20 <= passed <= 20 + elapsed * 20 / 60, (passed, elapsed)
        assert statuses.count(429) == 60 - passed
    finally:
        server.close()


def test_api_key_required(live_server: LiveServer) -> None:
    server = LiveServer(live_server.kind, env={"MOKKU_API_KEY": "sk-right-key-123456"})
    try:
        with openai.OpenAI(
            base_url=server.url + "/v1", api_key="sk-wrong-key-999999", max_retries=0
        ) as client:
            with pytest.raises(openai.AuthenticationError) as caught:
                client.models.list()
            assert caught.value.code == "invalid_api_key"
            assert "sk-wrong-key-999999" not in caught.value.message
        with openai.OpenAI(
            base_url=server.url + "/v1", api_key="sk-right-key-123456", max_retries=0
        ) as client:
            assert client.models.retrieve("gpt-4o").id == "gpt-4o"
        assert "sk-wrong-key-999999" not in server.output()
    finally:
        server.close()


def test_inter_token_delay_paces_the_stream(client: openai.OpenAI) -> None:
    text = " ".join(["tick"] * 20)
    started = time.monotonic()
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": text}],
            stream=True,
            extra_headers={"X-Mokku-Token-Ms": "50"},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert time.monotonic() - started >= 19 * 0.05


@pytest.mark.parametrize("kind", ["module", "gunicorn"])
def test_hung_up_clients_free_their_threads_at_once(kind: str) -> None:
    """Two threads, two slow streams whose clients leave: a third request is served, rather than
    waiting for the ten minutes the streams would still have waited (the client gives up after one)."""
    server = LiveServer(kind, env={"MOKKU_THREADS": "2", "MOKKU_TOKEN_MS": "600000"})
    try:
        host_port = ("127.0.0.1", server.port)
        body = json.dumps({"model": "m", "messages": HI, "stream": True}).encode()
        import socket

        for _ in range(2):
            with socket.create_connection(host_port, timeout=10) as sock:
                sock.sendall(
                    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                received = b""
                while b"data: " not in received:
                    chunk = sock.recv(65536)
                    assert chunk, received
                    received += chunk
        with openai.OpenAI(base_url=server.url + "/v1", api_key="sk-x", max_retries=0, timeout=60) as client:
            completion = client.chat.completions.create(
                model="m", messages=HI, extra_headers={"X-Mokku-Token-Ms": "0"}
            )
        assert completion.choices[0].message.content
        assert "Traceback" not in server.output()
    finally:
        server.close()
