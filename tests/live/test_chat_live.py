"""Chat completions against the real server: the official SDK and raw sockets."""

from __future__ import annotations

import asyncio
import json
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Tuple

import openai
import pytest

from .. import sse
from ..servers import LiveServer, request, request_json
from ..spec import validate

QUOTA_BODY = {
    "error": {
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
}


def user(text: str) -> List[Dict[str, Any]]:
    return [{"role": "user", "content": text}]


def test_sdk_create(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello, SDK! ✓"}],
    )
    assert completion.choices[0].message.content == "Hello, SDK! ✓"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gpt-4o-mini-2024-07-18"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    validate(completion.model_dump(mode="json", exclude_unset=True), "CreateChatCompletionResponse")


def test_sdk_async_create(live_server: LiveServer) -> None:
    async def main() -> List[str]:
        async with openai.AsyncOpenAI(base_url=live_server.url + "/v1", api_key="sk-x", max_retries=0) as sdk:
            results = await asyncio.gather(
                *(sdk.chat.completions.create(model="gpt-4o", messages=user(f"async {i}")) for i in range(10))
            )
        return [r.choices[0].message.content or "" for r in results]

    assert asyncio.run(main()) == [f"async {i}" for i in range(10)]


def test_sdk_stream_reassembles(client: openai.OpenAI) -> None:
    text = "Streaming through the SDK, with ünïcödé and emoji 🎉, works."
    pieces, finish = [], None
    for chunk in client.chat.completions.create(model="gpt-4o", messages=user(text), stream=True):
        validate(chunk.model_dump(mode="json", exclude_unset=True), "CreateChatCompletionStreamResponse")
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(pieces) == text
    assert finish == "stop"


def test_sdk_stream_include_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=user("usage please"), stream=True, stream_options={"include_usage": True}
        )
    )
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 2
    assert chunks[-1].usage.prompt_tokens == 3 + 3 + 2


def test_sdk_stream_helper_final_completion(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(model="gpt-4o", messages=user("helper text")) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "helper text"


def test_sdk_n_max_tokens_stop(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="gpt-4o", messages=user("a b c"), n=2)
    assert [c.message.content for c in completion.choices] == ["a b c", "a b c"]
    completion = client.chat.completions.create(model="gpt-4o", messages=user("one two three"), max_tokens=1)
    assert completion.choices[0].message.content == "one"
    assert completion.choices[0].finish_reason == "length"
    completion = client.chat.completions.create(
        model="gpt-4o", messages=user("one. two. three."), stop=[". t"]
    )
    assert completion.choices[0].message.content == "one"
    assert completion.choices[0].finish_reason == "stop"


def test_sdk_raw_response_headers(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=user("headers"), extra_headers={"X-Request-Id": "trace-42"}
    )
    assert raw.headers["x-request-id"] == "trace-42"
    assert raw.headers["openai-version"] == "2020-10-01"
    assert int(raw.headers["openai-processing-ms"]) >= 0
    assert raw.headers["content-type"] == "application/json"
    assert raw.parse().choices[0].message.content == "headers"


@pytest.mark.parametrize("stream", [False, True])
def test_sdk_credit_error(client: openai.OpenAI, stream: bool) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="credit-error", messages=user("hi"), stream=stream)
    assert caught.value.status_code == 402
    assert caught.value.code == "insufficient_quota"
    assert caught.value.type == "insufficient_quota"


def test_sdk_validation_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=user("x"), temperature=5)
    assert caught.value.param == "temperature"
    assert caught.value.code == "decimal_above_max_value"


def test_raw_credit_error_exact(live_server: LiveServer) -> None:
    status, headers, body = request_json(
        "POST", live_server.url + "/v1/chat/completions", {"model": "credit-error", "messages": user("x")}
    )
    assert status == 402
    assert body == QUOTA_BODY
    assert headers["content-type"] == "application/json"


def _post(port: int, payload: Dict[str, Any], headers: str = "") -> socket.socket:
    body = json.dumps(payload).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        + f"{headers}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    return sock


def _read_all(sock: socket.socket) -> bytes:
    parts = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(parts)
        parts.append(data)


def _dechunk(raw: bytes) -> bytes:
    """The body of a chunked transfer, in one pass (no copies of what is left to read)."""
    out, at = [], 0
    while True:
        line_end = raw.index(b"\r\n", at)
        size = int(raw[at:line_end].split(b";", 1)[0], 16)
        start = line_end + 2
        if size == 0:
            return b"".join(out)
        out.append(raw[start : start + size])
        assert raw[start + size : start + size + 2] == b"\r\n", "chunk not followed by CRLF"
        at = start + size + 2


def _split_response(raw: bytes) -> Tuple[str, Dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = _dechunk(body)
    return lines[0], headers, body


def test_raw_sse_framing(live_server: LiveServer) -> None:
    text = "Raw framing, exactly: data lines and blank lines. ✓"
    sock = _post(live_server.port, {"model": "gpt-4o", "messages": user(text), "stream": True})
    with sock:
        status, headers, body = _split_response(_read_all(sock))
    assert " 200 " in status
    assert headers["content-type"] == "text/event-stream; charset=utf-8"
    assert headers["cache-control"] == "no-cache"
    assert headers["x-accel-buffering"] == "no"
    assert "content-length" not in headers
    chunks = sse.parse(body)
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse")
    assert sse.content(chunks) == text


def test_first_event_arrives_long_before_the_stream_ends(live_server: LiveServer) -> None:
    """Each event is sent when it is made: with ten minutes between tokens, the first event of a
    60000-token stream arrives on its own, and the stream is far from its end."""
    text = "streamed " * 60000
    sock = _post(
        live_server.port,
        {"model": "gpt-4o", "messages": user(text), "stream": True},
        "X-Mokku-Token-Ms: 600000\r\n",
    )
    with sock:
        received = b""
        while b"data: " not in received:
            data = sock.recv(65536)
            assert data, received
            received += data
    assert b" 200 " in received.split(b"\r\n", 1)[0], received[:200]
    assert b"[DONE]" not in received
    assert b'"finish_reason":"stop"' not in received


@pytest.mark.parametrize("stream", [False, True])
def test_200_kb_message_round_trips(live_server: LiveServer, stream: bool) -> None:
    spread = "".join(chr(0x20 + (i * 7919) % 0x2FFF) for i in range(20000))
    text = spread + "Grüße 日本語 🎉 emoji, " * 6000
    assert len(text.encode()) > 200_000
    payload = {"model": "gpt-4o", "messages": user(text), "stream": stream}
    sock = _post(live_server.port, payload)
    with sock:
        status, _, body = _split_response(_read_all(sock))
    assert " 200 " in status
    if stream:
        assert sse.content(sse.parse(body)) == text
    else:
        assert json.loads(body)["choices"][0]["message"]["content"] == text


def _disconnect_mid_stream(port: int) -> None:
    sock = _post(port, {"model": "gpt-4o", "messages": user("bye " * 50000), "stream": True})
    received = b""
    while received.count(b"data: ") < 3:
        received += sock.recv(4096)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


@pytest.mark.parametrize("kind", ["module", "gunicorn"])
def test_100_disconnects_leave_server_healthy(kind: str) -> None:
    server = LiveServer(kind, env={"MOKKU_THREADS": "4"})
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda _: _disconnect_mid_stream(server.port), range(100)))
        # With 4 threads, the freed threads must serve 8 full streams and a plain request.
        with ThreadPoolExecutor(max_workers=8) as pool:
            bodies = list(
                pool.map(
                    lambda i: request_json(
                        "POST",
                        server.url + "/v1/chat/completions",
                        {"model": "m", "messages": user(f"after {i}")},
                    ),
                    range(8),
                )
            )
        assert [b[2]["choices"][0]["message"]["content"] for b in bodies] == [f"after {i}" for i in range(8)]
        assert request("GET", server.url + "/health")[0] == 200
        log = server.output()
        assert "Traceback" not in log, log[-4000:]
        assert "ERROR" not in log, log[-4000:]
        assert server.stop() == 0
    finally:
        server.close()
