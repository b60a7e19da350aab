"""The servers under the attacks that would knock them over, driven over raw sockets.

Mostly ``python -m mokku`` (mokku's own server), and gunicorn where the attack applies to it too.
Time bounds are generous: far below the time the attack would otherwise take (unbounded, or a
minute), far above what a loaded test machine needs.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import threading
import time
from typing import Dict, Iterator, List, Optional, Tuple

import openai
import pytest

from mokku import config
from mokku.server import connection
from mokku.server.app import App
from mokku.server.http import BODY_READ_SECONDS, BODY_SECONDS
from mokku.server.stdlib import Server, Timeouts, make_server

from ..servers import LiveServer, request, request_json
from ..spec import validate

HI = [{"role": "user", "content": "hi"}]
CHAT = json.dumps({"model": "m", "messages": HI}).encode()


def _connect(port: int, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def _post(path: str, body: bytes, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: x", "Content-Type: application/json", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _chat(body: bytes = CHAT, *headers: str) -> bytes:
    return _post("/v1/chat/completions", body, f"Content-Length: {len(body)}", *headers)


class Reader:
    """Reads HTTP/1.1 responses off a socket, one after another (Content-Length or chunked)."""

    def __init__(self, sock: socket.socket) -> None:
        self.file = sock.makefile("rb")

    def response(self) -> Tuple[int, Dict[str, str], bytes]:
        status_line = self.file.readline()
        assert status_line.startswith(b"HTTP/1.1 "), status_line
        headers: Dict[str, str] = {}
        while True:
            line = self.file.readline().decode("latin-1")
            if line in ("\r\n", ""):
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        status = int(status_line.split()[1])
        if status == 100:
            return self.response()
        if "content-length" in headers:
            return status, headers, self.file.read(int(headers["content-length"]))
        assert headers.get("transfer-encoding") == "chunked", headers
        body = b""
        while True:
            size = int(self.file.readline().split(b";")[0], 16)
            if not size:
                assert self.file.readline() == b"\r\n"
                return status, headers, body
            body += self.file.read(size)
            assert self.file.read(2) == b"\r\n"


def _exchange(port: int, data: bytes, half_close: bool = False) -> Tuple[int, Dict[str, str], bytes]:
    with _connect(port) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return Reader(sock).response()


def _error(body: bytes) -> Dict[str, object]:
    envelope = json.loads(body)
    validate(envelope, "ErrorResponse")
    return envelope["error"]


def _answered_within(url: str, seconds: float, path: str = "/health") -> None:
    started = time.monotonic()
    assert request("GET", url + path, timeout=seconds)[0] == 200
    assert time.monotonic() - started < seconds


def _eof_within(sock: socket.socket, seconds: float) -> bytes:
    """What the server sends before it closes the connection, which it must do within ``seconds``."""
    sock.settimeout(seconds)
    received = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"still open after {seconds} s: {received!r}")


@pytest.fixture
def module_server() -> Iterator[LiveServer]:
    server = LiveServer("module", env={"MOKKU_THREADS": "4", "MOKKU_MAX_BODY_BYTES": "2000"})
    yield server
    server.close()


@pytest.fixture
def in_process() -> Iterator[Server]:
    """The real app on the stdlib server in this process, with timeouts short enough to wait out."""
    timeouts = Timeouts(idle=0.5, head=1.0, body_read=0.5, body=1.5, linger=0.5)
    server = make_server(App(config.load({})), "127.0.0.1", 0, threads=2, timeouts=timeouts)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


# Connections that send nothing, junk, or their request too slowly.


def test_health_answers_while_idle_junk_and_slow_connections_pile_up(module_server: LiveServer) -> None:
    """4 threads; 70 idle connections, 70 HTTP/0.9 request lines, 70 request heads that never end
    and 2 bodies that never come: none of them holds a thread but the 2 bodies, so /health and
    other requests are answered at once, where before they waited for the attackers to leave."""
    port, held = module_server.port, []
    try:
        for data in (b"", b"GET /\r\n", b"GET /health HTTP/1.1\r\nHost: x\r\n"):
            for _ in range(70):
                sock = _connect(port)
                if data:
                    sock.sendall(data)
                held.append(sock)
        for _ in range(2):
            sock = _connect(port)
            sock.sendall(_post("/v1/chat/completions", b"{", "Content-Length: 100000"))
            held.append(sock)
        _answered_within(module_server.url, 5)
        _answered_within(module_server.url, 5, "/v1/models")
        status, headers, body = Reader(held[70]).response()  # an HTTP/0.9 line: refused at once
        assert (status, headers["connection"]) == (400, "close")
        assert "Invalid HTTP request line 'GET /'" in _error(body)["message"]  # type: ignore[operator]
    finally:
        for sock in held:
            sock.close()


def test_idle_connections_and_slow_requests_are_timed_out(in_process: Server) -> None:
    port, timeouts = in_process.server_address[1], in_process.timeouts
    idle, head, small_body, large_body = (_connect(port) for _ in range(4))
    head.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    small_body.sendall(_chat(CHAT)[:-5])
    large_body.sendall(_post("/v1/chat/completions", b'{"model": "m"', "Content-Length: 100000"))
    assert _eof_within(idle, timeouts.idle + 5) == b""  # closed without a word
    for sock in (head, small_body):  # the head (and a small body) must come within timeouts.head
        reply = _eof_within(sock, timeouts.head + 5)
        assert reply.startswith(b"HTTP/1.1 408 ") and b"Connection: close" in reply
        assert b"did not arrive within" in reply
    # A large body is read by a thread, a read at most timeouts.body_read apart: the app says 408.
    reply = _eof_within(large_body, timeouts.body + 5)
    assert reply.startswith(b"HTTP/1.1 408 ")
    assert b"The request body did not arrive in time" in reply
    for sock in (idle, head, small_body, large_body):
        sock.close()
    _answered_within(_url(in_process), 5, "/v1/models")


def test_the_connection_waiting_longest_makes_room_for_a_new_one(in_process: Server) -> None:
    in_process.max_connections = 16
    port = in_process.server_address[1]
    idle = [_connect(port) for _ in range(40)]
    try:
        _answered_within(_url(in_process), 5, "/v1/models")
        assert _eof_within(idle[0], 5) == b""  # among the oldest: closed to make room
    finally:
        for sock in idle:
            sock.close()


def test_health_has_threads_of_its_own(module_server: LiveServer) -> None:
    """Every thread busy (4 simulated timeouts, clients waiting): /health is still answered."""
    busy = [_connect(module_server.port) for _ in range(4)]
    try:
        for sock in busy:
            sock.sendall(_chat(CHAT, "X-Mokku-Fault: timeout:60"))
        time.sleep(0.5)
        _answered_within(module_server.url, 5)
    finally:
        for sock in busy:
            sock.close()


# A client that leaves during a simulated timeout, having sent more bytes than its request.


@pytest.mark.parametrize(
    ("header", "fault"), [("X-Mokku-Fault: timeout:60", "timeout"), ("X-Mokku-Latency-Ms: 60000", None)]
)
@pytest.mark.parametrize("kind", ["module", "gunicorn"])
def test_a_client_leaving_a_wait_frees_its_thread_whatever_it_sent(
    kind: str, header: str, fault: str
) -> None:
    """4 threads, 8 requests waiting a minute (a timeout fault, or a JSON answer's latency), each
    followed by more bytes (a pipelined request) and a hang-up: the waits end with the hang-ups,
    /health is answered at once, and the journal notes each request as 499, the client having
    left before any response."""
    server = LiveServer(kind, env={"MOKKU_THREADS": "4", "MOKKU_JOURNAL": "1"})
    try:
        clients = [_connect(server.port) for _ in range(8)]
        for sock in clients:
            sock.sendall(_chat(CHAT, header))
        time.sleep(1)  # the first four wait in the fault, their request read
        for sock in clients:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.5)
        for sock in clients:
            sock.close()
        _answered_within(server.url, 5)
        deadline = time.monotonic() + 10
        while True:
            _, _, body = request_json("GET", server.url + "/mokku/requests")
            entries = body["data"]  # type: ignore[index]
            if len(entries) == 8 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert [(e["status"], e["fault"]) for e in entries] == [(499, fault)] * 8
        assert "Traceback" not in server.output()
    finally:
        server.close()


def test_without_pollrdhup_the_server_reads_ahead_to_see_the_hang_up(
    in_process: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where poll has no POLLRDHUP (not Linux), mokku's server moves the extra bytes into its
    buffer, so that the client's close still shows to the wait."""
    monkeypatch.setattr(connection, "_RDHUP", 0)
    clients = [_connect(in_process.server_address[1]) for _ in range(4)]
    for sock in clients:
        sock.sendall(_chat(CHAT, "X-Mokku-Fault: timeout:60"))
    time.sleep(1)
    for sock in clients:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.close()
    _answered_within(_url(in_process), 5, "/v1/models")  # both threads free again


# Request bodies.


def test_a_body_that_stops_coming_frees_its_gunicorn_thread() -> None:
    """gunicorn waits on a body as long as its client keeps the connection: the app's reads wait
    ``BODY_READ_SECONDS`` each, then answer 408 (413 for a refused body it was dropping)."""
    server = LiveServer("gunicorn", env={"MOKKU_MAX_BODY_BYTES": "2000"})
    stalled = {
        408: [
            _post("/v1/chat/completions", b'{"model": "m"', "Content-Length: 100"),
            _post("/v1/chat/completions", b"5\r\n{}   \r\n", "Transfer-Encoding: chunked"),
        ],
        413: [_post("/v1/chat/completions", b"{}", "Content-Length: 5000")],
    }
    try:
        socks = []
        for status, requests in stalled.items():
            for data in requests:
                sock = _connect(server.port, timeout=BODY_SECONDS + 30)
                sock.sendall(data)
                socks.append((status, sock))
        started = time.monotonic()
        for status, sock in socks:
            answer, _, body = Reader(sock).response()
            assert answer == status, body
            if status == 408:
                assert _error(body)["message"] == (
                    f"The request body did not arrive in time: nothing came for {BODY_READ_SECONDS:g} s"
                )
            sock.close()
        assert time.monotonic() - started >= BODY_READ_SECONDS - 1  # each waited its time
        assert request("GET", server.url + "/health", timeout=60)[0] == 200  # and the server serves on
    finally:
        server.close()


@pytest.mark.parametrize("kind", ["module", "gunicorn"])
def test_request_bodies(kind: str) -> None:
    server = LiveServer(kind, env={"MOKKU_MAX_BODY_BYTES": "2000"})
    port = server.port
    try:
        # Chunked: decoded (chunk extensions and trailers allowed), and refused past the cap.
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "chunked hello"}]}).encode()
        rest = b"%030x" % (len(body) - 5)  # leading zeros: any number of them (RFC 9112: 1*HEXDIG)
        chunks = b"5;ext=1\r\n" + body[:5] + b"\r\n" + rest + b"\r\n" + body[5:] + b"\r\n"
        status, _, reply = _exchange(
            port,
            _post(
                "/v1/chat/completions", chunks + b"0\r\nX-Trailer: 1\r\n\r\n", "Transfer-Encoding: chunked"
            ),
        )
        assert status == 200, reply
        assert json.loads(reply)["choices"][0]["message"]["content"].endswith("chunked hello")
        big = b"800\r\n" + b" " * 0x800 + b"\r\n"
        status, _, reply = _exchange(
            port, _post("/v1/chat/completions", big * 2 + b"0\r\n\r\n", "Transfer-Encoding: chunked")
        )
        assert status == 413 and _error(reply)["code"] == "request_too_large"
        status, _, reply = _exchange(
            port, _post("/v1/chat/completions", b"zz\r\n{}\r\n0\r\n\r\n", "Transfer-Encoding: chunked")
        )
        assert status == 400 and "chunk size" in _error(reply)["message"]  # type: ignore[operator]
        # Whitespace before a size; and from `python -m mokku`, lines ended by LF alone, refused at
        # once (gunicorn's parser waits for a CRLF: the body timeout's 408).
        framings = [b" 2\r\n{}\r\n0\r\n\r\n"] + ([b"2\n{}\n0\n\n"] if kind == "module" else [])
        for framed in framings:
            status, _, reply = _exchange(
                port, _post("/v1/chat/completions", framed, "Transfer-Encoding: chunked")
            )
            assert status == 400 and "chunk" in _error(reply)["message"], reply  # type: ignore[operator]
        # A body that ends (the client's FIN) short of its Content-Length.
        status, _, reply = _exchange(
            port, _post("/v1/chat/completions", CHAT, f"Content-Length: {len(CHAT) + 10}"), half_close=True
        )
        assert status == 400
        assert "shorter than its Content-Length" in _error(reply)["message"]  # type: ignore[operator]
        # Expect: 100-continue: the server asks for the body before the client sends it.
        with _connect(port) as sock:
            sock.sendall(
                _post("/v1/chat/completions", b"", f"Content-Length: {len(CHAT)}", "Expect: 100-continue")
            )
            sock.settimeout(5)
            assert sock.recv(25) == b"HTTP/1.1 100 Continue\r\n\r\n"
            sock.sendall(CHAT)
            assert Reader(sock).response()[0] == 200
        # A body its headers announce two ways, or an announced length that is not plain digits.
        for framing in (
            ["Content-Length: 5", "Transfer-Encoding: chunked"],
            [f"Content-Length: {len(CHAT)}", f"Content-Length: {len(CHAT)}"],
            [f"Content-Length: +{len(CHAT)}"],
        ):
            status, _, reply = _exchange(port, _post("/v1/chat/completions", CHAT, *framing))
            assert status == 400, framing
            if kind == "module":  # gunicorn refuses them itself, with its own HTML page
                assert "Content-Length" in _error(reply)["message"]  # type: ignore[operator]
    finally:
        server.close()


def test_a_body_too_large_is_refused_without_asking_for_it(module_server: LiveServer) -> None:
    with _connect(module_server.port) as sock:
        sock.sendall(_post("/v1/chat/completions", b"", "Content-Length: 100000", "Expect: 100-continue"))
        status, headers, reply = Reader(sock).response()
        assert status == 413 and headers["connection"] == "close"
        assert _error(reply)["code"] == "request_too_large"


# HTTP/1.1 keep-alive.


def test_one_connection_serves_many_requests(module_server: LiveServer) -> None:
    stream = json.dumps({"model": "m", "messages": HI, "stream": True}).encode()
    with _connect(module_server.port) as sock:
        reader = Reader(sock)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert reader.response()[0] == 200
        sock.sendall(_chat())
        assert json.loads(reader.response()[2])["object"] == "chat.completion"
        sock.sendall(_chat(stream))  # a stream has no length: chunked, and the connection goes on
        status, headers, body = reader.response()
        assert (status, headers["transfer-encoding"]) == (200, "chunked")
        assert body.endswith(b"data: [DONE]\n\n")
        sock.sendall(b"GET /v1/nope HTTP/1.1\r\nHost: x\r\n\r\n" + _chat())  # two at once, in order
        assert reader.response()[0] == 404
        status, headers, _ = reader.response()
        assert status == 200 and "connection" not in headers
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert reader.response()[1]["connection"] == "close"
        assert _eof_within(sock, 5) == b""
    with _connect(module_server.port) as sock:  # HTTP/1.0: closed after the response unless asked
        sock.sendall(b"GET /health HTTP/1.0\r\n\r\n")
        assert _eof_within(sock, 5).startswith(b"HTTP/1.1 200 OK\r\n")


def test_the_sdk_reuses_its_connection() -> None:
    server = LiveServer("module", env={"MOKKU_LOG_LEVEL": "DEBUG"})
    try:
        with openai.OpenAI(base_url=server.url + "/v1", api_key="sk-x", max_retries=0) as client:
            client.models.list()
            for _ in range(3):
                assert client.chat.completions.create(model="m", messages=HI).choices[0].message.content
            client.embeddings.create(model="text-embedding-3-small", input="x")
        deadline = time.monotonic() + 10
        while True:
            lines = [
                line
                for line in server.output().splitlines()
                if '"GET /v1/models' in line or '"POST /v1/' in line
            ]
            if len(lines) == 5 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        ports = {re.search(r"127\.0\.0\.1:(\d+) ", line).group(1) for line in lines}  # type: ignore[union-attr]
        assert len(lines) == 5 and len(ports) == 1, lines
    finally:
        server.close()


# Stopping in the middle of a stream.


def _slow_stream() -> bytes:
    words = " ".join(["word"] * 200)
    body = json.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": words}]})
    return _chat(body.encode())


def test_sigterm_resets_a_stream_it_cannot_finish() -> None:
    """A stream that would take 40 s more: after the short drain, the client sees a reset, not a
    clean end (which an SSE client would take for the whole answer)."""
    server = LiveServer("module", env={"MOKKU_TOKEN_MS": "200"})
    try:
        with _connect(server.port, timeout=30) as sock:
            sock.sendall(_slow_stream())
            received = sock.recv(65536)
            assert b"data: " in received
            server.process.send_signal(signal.SIGTERM)
            stopped = time.monotonic()
            with pytest.raises(ConnectionResetError):
                while sock.recv(65536):
                    pass
            assert time.monotonic() - stopped < 10
        assert server.process.wait(30) == 0
        assert "Traceback" not in server.output()
        assert "resetting 1 connections still open" in server.output()
    finally:
        server.close()


@pytest.mark.parametrize("kind", ["module", "gunicorn"])
def test_sigterm_during_a_stream_is_an_error_to_the_sdk(kind: str) -> None:
    """The SDK's stream raises: mokku resets after 2 s; gunicorn lets the stream run for its
    graceful timeout (10 s), then its worker exits and the chunked body ends unfinished."""
    server = LiveServer(kind, env={"MOKKU_TOKEN_MS": "200"})
    error: Optional[BaseException] = None
    received: List[str] = []
    try:
        with openai.OpenAI(base_url=server.url + "/v1", api_key="sk-x", max_retries=0, timeout=60) as client:
            words = " ".join(["word"] * 200)
            stream = client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": words}], stream=True
            )
            try:
                for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        received.append(chunk.choices[0].delta.content)
                        if len(received) == 1:
                            server.process.send_signal(signal.SIGTERM)
            except Exception as exc:
                error = exc
        assert error is not None, f"the stream ended cleanly after {len(received)} tokens"
        assert isinstance(error, openai.APIConnectionError) or type(error).__module__.startswith("httpx"), (
            repr(error)
        )
        assert 1 <= len(received) < 200
        assert server.process.wait(30) == 0
    finally:
        server.close()


@pytest.mark.parametrize("kind", ["module", "gunicorn"])
def test_a_client_that_sends_a_large_body_whole_reads_the_413(kind: str) -> None:
    """http.client writes the whole body before it reads: the 413 must still reach it (no reset)."""
    server = LiveServer(kind)
    try:
        body = b'{"model": "gpt-4o", "messages": [], "pad": "' + b"x" * (20 * 1024 * 1024) + b'"}'
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        try:
            connection.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            assert response.status == 413
            assert json.loads(response.read())["error"]["code"] == "request_too_large"
        finally:
            connection.close()
    finally:
        server.close()


def test_a_chunk_announcing_more_than_the_cap_is_refused_when_announced() -> None:
    """The client announces a 4 GB chunk, sends three bytes and waits: the 413 comes at once, not
    the 408 of a body that stopped arriving."""
    server = LiveServer("module", env={"MOKKU_MAX_BODY_BYTES": "2000"})
    try:
        with _connect(server.port, timeout=60) as sock:
            sock.sendall(_post("/v1/chat/completions", b'FFFFFFFF\r\n{"m', "Transfer-Encoding: chunked"))
            status, _, reply = Reader(sock).response()
        assert status == 413 and _error(reply)["code"] == "request_too_large", reply
    finally:
        server.close()


@pytest.mark.parametrize("kind", ["module", "gunicorn"])
def test_a_request_head_past_the_limits_is_refused_in_json(kind: str) -> None:
    """A request line past 8,190 bytes is a 414; a header past what the server takes (gunicorn: a
    line of 8,190 bytes; mokku's own: 64 KiB of head) a 431: in the OpenAI envelope from both
    servers, where gunicorn wrote an HTML page no client's error handling reads."""
    server = LiveServer(kind)
    try:
        for head, status in (
            (f"GET /v1/models?{'q' * 9000} HTTP/1.1\r\nHost: x\r\n\r\n", 414),
            (f"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: {'v' * 70_000}\r\n\r\n", 431),
        ):
            got, headers, body = _exchange(server.port, head.encode())
            assert got == status and headers["content-type"] == "application/json", body[:200]
            assert _error(body)["type"] == "invalid_request_error"
        assert request("GET", server.url + "/health", timeout=30)[0] == 200
    finally:
        server.close()
