"""Record and replay against real servers: a second mokku is the upstream (no test reaches the
internet). Recorded under both entry points (gunicorn with 2 workers), replayed with the upstream
stopped, compared byte for byte; secrets never written; misses, sequences, timing, concurrency and
upstream errors."""

from __future__ import annotations

import http.client
import json
import socketserver
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Protocol, Tuple, Type

import pytest

from ..servers import LiveServer, cassette_why, request

SECRET = "sk-live-secret-0123456789"
HEADERS = {
    "Content-Type": "application/json",
    "Authorization": f"Bearer {SECRET}",
    "x-api-key": SECRET,
    "api-key": SECRET,
    "x-goog-api-key": SECRET,
    "OpenAI-Organization": "org-private",
    "Cookie": "session=private",
}
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
CALLS: List[Tuple[str, dict]] = [
    ("/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": "plain chat"}]}),
    (
        "/v1/chat/completions",
        {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "a streamed chat"}]},
    ),
    (
        "/v1/chat/completions",
        {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "Oslo"}],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": SCHEMA}}],
        },
    ),
    (
        "/v1/chat/completions",
        {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "Bergen"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "city", "schema": SCHEMA, "strict": True},
            },
        },
    ),
    ("/v1/embeddings", {"model": "text-embedding-3-small", "input": "embed me"}),
    ("/v1/responses", {"model": "gpt-4o", "input": "a streamed response", "stream": True}),
    (
        "/v1/messages",
        {
            "model": "claude-haiku-4-5",
            "max_tokens": 50,
            "stream": True,
            "messages": [{"role": "user", "content": "hi Claude"}],
        },
    ),
    (
        "/v1beta/models/gemini-2.5-flash:generateContent?key=" + SECRET,
        {"contents": [{"parts": [{"text": "hi Gemini"}]}]},
    ),
]


def call(server: LiveServer, path: str, body: dict, headers: Dict[str, str] = HEADERS) -> Tuple[int, bytes]:
    if path.startswith("/v1/messages"):
        headers = {**headers, "anthropic-version": "2023-06-01"}  # as Anthropic's SDKs always send it
    status, _, data = request("POST", server.url + path, json.dumps(body).encode(), headers, timeout=60)
    return status, data


class Upstream(Protocol):
    url: str


def recorder(kind: str, upstream: Upstream, cassettes: Path, mode: str = "record", **env: str) -> LiveServer:
    settings = {"MOKKU_MODE": mode, "MOKKU_UPSTREAM": upstream.url, "MOKKU_CASSETTES": str(cassettes), **env}
    return LiveServer(kind, env=settings, workers=2 if kind == "gunicorn" else 1)


def replayer(kind: str, cassettes: Path, **env: str) -> LiveServer:
    settings = {"MOKKU_MODE": "replay", "MOKKU_CASSETTES": str(cassettes), **env}
    return LiveServer(kind, env=settings, workers=2 if kind == "gunicorn" else 1)


@pytest.mark.parametrize("kind", ["gunicorn", "module"])
def test_recorded_answers_replay_byte_for_byte_offline(kind: str, tmp_path: Path) -> None:
    upstream = LiveServer("module")
    server = recorder(kind, upstream, tmp_path)
    try:
        recorded = [call(server, path, body) for path, body in CALLS]
    finally:
        server.close()
        upstream.close()  # replayed with nothing to forward to
    assert all(status == 200 for status, _ in recorded), recorded
    files = sorted(tmp_path.rglob("*.json"))
    assert len(files) == len(CALLS) and not list(tmp_path.rglob(".recording-*"))
    for file in files:
        text = file.read_text(encoding="utf-8")
        json.loads(text)
        for secret in (SECRET, "org-private", "session=private"):
            assert secret not in text, (file, secret)
    server = replayer(kind, tmp_path, MOKKU_REPLAY_SPEED="0")
    try:
        replayed = [call(server, path, body) for path, body in CALLS]
    finally:
        server.close()
    assert replayed == recorded  # ids, streams and all


def test_a_miss_names_the_closest_recording_and_sequences_replay_in_order(tmp_path: Path) -> None:
    upstream = LiveServer("module")
    server = recorder("module", upstream, tmp_path)
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "same question"}]}
    try:
        first, second = call(server, "/v1/chat/completions", body), call(server, "/v1/chat/completions", body)
    finally:
        server.close()
        upstream.close()
    assert first != second  # each answer has its own id
    server = replayer("module", tmp_path, MOKKU_REPLAY_SPEED="0")
    try:
        answers = [call(server, "/v1/chat/completions", dict(body, user="ignored")) for _ in range(3)]
        assert answers == [first, second, second]  # the n-th gets the n-th; past them, the last
        status, missed = call(
            server,
            "/v1/chat/completions",
            {"model": "gpt-4o", "messages": [{"role": "user", "content": "other question"}]},
        )
        error = json.loads(missed)["error"]
        assert status == 404 and error["code"] == "recording_not_found"
        assert 'body.messages[0].content: "same question" recorded, "other question" sent' in error["message"]
        status, missed = call(
            server,
            "/v1/messages",
            {"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        )
        assert status == 404 and json.loads(missed)["type"] == "error"  # in the dialect's envelope
    finally:
        server.close()
    request_file = tmp_path / "request.json"
    request_file.write_text(
        json.dumps(
            {
                "path": "/v1/chat/completions",
                "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": "other question"}]},
            }
        )
    )
    why = cassette_why(tmp_path, request_file)
    assert why.returncode == 1 and "no match; the closest recording is" in why.stdout
    assert '"same question" recorded, "other question" sent' in why.stdout


def test_streams_replay_with_their_timing(tmp_path: Path) -> None:
    upstream = LiveServer("module", env={"MOKKU_TOKEN_MS": "150"})
    server = recorder("module", upstream, tmp_path)
    body = {
        "model": "gpt-4o",
        "stream": True,
        "messages": [{"role": "user", "content": "one two three four five"}],
    }
    try:
        started = time.monotonic()
        recorded = call(server, "/v1/chat/completions", body)
        took = time.monotonic() - started
    finally:
        server.close()
        upstream.close()
    assert took >= 0.5
    server = replayer("module", tmp_path)  # real time by default
    try:
        started = time.monotonic()
        assert call(server, "/v1/chat/completions", body) == recorded
        assert time.monotonic() - started >= 0.5  # the recorded pacing, kept (no upper bound: machines vary)
    finally:
        server.close()


def test_fifty_clients_record_at_once(tmp_path: Path) -> None:
    upstream = LiveServer("module")
    server = recorder("gunicorn", upstream, tmp_path)
    try:
        with ThreadPoolExecutor(max_workers=50) as pool:
            results = list(
                pool.map(
                    lambda n: call(
                        server,
                        "/v1/chat/completions",
                        {"model": "gpt-4o", "messages": [{"role": "user", "content": f"client {n}"}]},
                    ),
                    range(50),
                )
            )
    finally:
        server.close()
        upstream.close()
    assert all(status == 200 for status, _ in results)
    files = list(tmp_path.rglob("*.json"))
    assert len(files) == 50 and not list(tmp_path.rglob(".recording-*"))
    assert sorted(
        json.loads(f.read_text())["request"]["body"]["messages"][0]["content"] for f in files
    ) == sorted(f"client {n}" for n in range(50))


def test_upstream_errors_are_recorded_as_they_happened(tmp_path: Path) -> None:
    upstream = LiveServer("module")
    server = recorder("module", upstream, tmp_path)
    limited = {"model": "gpt-4o@rate_limit", "messages": [{"role": "user", "content": "x"}]}
    failed = {"model": "gpt-4o@server_error", "messages": [{"role": "user", "content": "x"}]}
    dropped = {
        "model": "gpt-4o@stream_drop:3",
        "stream": True,
        "messages": [{"role": "user", "content": "one two three four"}],
    }
    try:
        first = [call(server, "/v1/chat/completions", body) for body in (limited, failed)]
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            call(server, "/v1/chat/completions", dropped)
    finally:
        server.close()
        upstream.close()
    assert [status for status, _ in first] == [429, 500]
    server = replayer("module", tmp_path, MOKKU_REPLAY_SPEED="0")
    try:
        assert [call(server, "/v1/chat/completions", body) for body in (limited, failed)] == first
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            call(server, "/v1/chat/completions", dropped)
    finally:
        server.close()


def sdk_calls(url: str) -> List[str]:
    """The same calls through the official SDKs; what each answered, as text (ids included)."""
    import anthropic
    import openai
    from google import genai

    out: List[str] = []
    with openai.OpenAI(base_url=url + "/v1", api_key=SECRET, max_retries=0) as client:
        chat = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "sdk chat"}]
        )
        out.append(chat.model_dump_json())
        stream = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "sdk stream"}], stream=True
        )
        out.append("".join(chunk.model_dump_json() for chunk in stream))
        tools = [{"type": "function", "function": {"name": "get_weather", "parameters": SCHEMA}}]
        out.append(
            client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "Oslo"}], tools=tools
            ).model_dump_json()
        )
        fmt = {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA, "strict": True}}
        out.append(
            client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "Bergen"}], response_format=fmt
            ).model_dump_json()
        )
        out.append(
            client.embeddings.create(model="text-embedding-3-small", input="sdk embed").model_dump_json()
        )
        out.append(
            "".join(
                event.model_dump_json()
                for event in client.responses.create(model="gpt-4o", input="sdk responses", stream=True)
            )
        )
    with anthropic.Anthropic(base_url=url, api_key=SECRET, max_retries=0) as claude:
        out.append(
            claude.messages.create(
                model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "sdk claude"}]
            ).model_dump_json()
        )
    gemini = genai.Client(api_key=SECRET, http_options={"base_url": url, "api_version": "v1beta"})
    out.append(
        gemini.models.generate_content(model="gemini-2.5-flash", contents="sdk gemini").model_dump_json(
            exclude={"sdk_http_response"}
        )
    )
    gemini.close()
    return out


def test_the_official_sdks_record_and_replay(tmp_path: Path) -> None:
    upstream = LiveServer("module")
    server = recorder("gunicorn", upstream, tmp_path)
    try:
        recorded = sdk_calls(server.url)
    finally:
        server.close()
        upstream.close()
    for file in tmp_path.rglob("*.json"):
        assert SECRET not in file.read_text(encoding="utf-8"), file
    server = replayer("gunicorn", tmp_path, MOKKU_REPLAY_SPEED="0")
    try:
        assert sdk_calls(server.url) == recorded
    finally:
        server.close()


def test_faults_apply_in_front_of_the_upstream(tmp_path: Path) -> None:
    """passthrough: mokku as a chaos proxy; its own faults (here drawn always, the upstream has none)
    answer before anything is forwarded, in the route's dialect."""
    upstream = LiveServer("module")
    plain = LiveServer("module", env={"MOKKU_MODE": "passthrough", "MOKKU_UPSTREAM": upstream.url})
    chaos = LiveServer(
        "module",
        env={"MOKKU_MODE": "passthrough", "MOKKU_UPSTREAM": upstream.url, "MOKKU_FAULTS": "overloaded=1"},
    )
    chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": "through"}]}
    gemini = {"contents": [{"parts": [{"text": "x"}]}]}
    try:
        status, answer = call(plain, "/v1/chat/completions", chat)
        assert status == 200 and json.loads(answer)["choices"][0]["message"]["content"] == "through"
        status, answer = call(chaos, "/v1/chat/completions", chat)
        assert status == 503 and json.loads(answer)["error"]["type"] == "server_error"
        status, answer = call(chaos, "/v1beta/models/gemini-2.5-flash:generateContent", gemini)
        assert status == 503 and json.loads(answer)["error"]["status"] == "UNAVAILABLE"
        assert not list(tmp_path.iterdir())  # nothing recorded
    finally:
        chaos.close()
        plain.close()
        upstream.close()


def chat(text: str) -> dict:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}


def said(data: bytes) -> str:
    return json.loads(data)["choices"][0]["message"]["content"]


@pytest.mark.parametrize("kind", ["gunicorn", "module"])
def test_a_scripted_rule_switches_the_mode_for_one_test(kind: str, tmp_path: Path) -> None:
    upstream = LiveServer("module", env={"MOKKU_ECHO_PREFIX": "upstream: "})
    server = recorder(kind, upstream, tmp_path, mode="replay_or_record", MOKKU_ADMIN="1")
    rules = server.url + "/mokku/scenarios"
    try:
        assert said(call(server, "/v1/chat/completions", chat("recorded"))[1]) == "upstream: recorded"

        def script(rule: dict) -> None:
            status, _, data = request("POST", rules, json.dumps(rule).encode(), HEADERS)
            assert status == 200, data

        script({"match": {"contains": "own answer"}, "reply": {"mode": "mock"}, "times": 1})
        script({"match": {"contains": "live"}, "reply": {"mode": "passthrough"}})
        script({"match": {"model": "gpt-4o-mini"}, "reply": {"mode": "replay"}})
        assert said(call(server, "/v1/chat/completions", chat("my own answer"))[1]) == "my own answer"
        assert (
            said(call(server, "/v1/chat/completions", chat("my own answer"))[1]) == "upstream: my own answer"
        )
        assert said(call(server, "/v1/chat/completions", chat("live, twice"))[1]) == "upstream: live, twice"
        status, data = call(server, "/v1/chat/completions", dict(chat("never recorded"), model="gpt-4o-mini"))
        assert status == 404 and json.loads(data)["error"]["code"] == "recording_not_found"
        status, _, data = request("DELETE", rules, None, HEADERS)
        assert status == 200
    finally:
        server.close()
        upstream.close()
    recorded = sorted(
        json.loads(f.read_text())["request"]["body"]["messages"][0]["content"]
        for f in tmp_path.rglob("*.json")
    )
    assert recorded == ["my own answer", "recorded"]  # the mock answer, the passthrough and the miss: none


def test_a_mode_rule_this_server_cannot_use_is_refused(tmp_path: Path) -> None:
    server = replayer("module", tmp_path, MOKKU_ADMIN="1")  # no upstream to record from
    try:
        rule = {"reply": {"mode": "record"}}
        status, _, data = request("POST", server.url + "/mokku/scenarios", json.dumps(rule).encode(), HEADERS)
        error = json.loads(data)["error"]
        assert status == 400 and error["code"] == "mode_unavailable" and error["param"] == "reply.mode"
        assert "MOKKU_UPSTREAM" in error["message"]
    finally:
        server.close()


def test_every_api_route_is_forwarded_and_replayed(tmp_path: Path) -> None:
    """GETs and DELETEs too (a stored response lives upstream), and paths only the upstream knows."""
    upstream = LiveServer("module", env={"MOKKU_MODELS": "upstream-only-model"})
    server = recorder("module", upstream, tmp_path)
    try:
        status, created = call(server, "/v1/responses", {"model": "gpt-4o", "input": "keep me"})
        assert status == 200
        answer = json.loads(created)["id"]
        calls = [
            ("GET", f"/v1/responses/{answer}"),
            ("GET", "/v1/models"),
            ("GET", "/v1/only-upstream-knows"),
            ("DELETE", f"/v1/responses/{answer}"),
        ]
        recorded = [
            request(method, server.url + path, None, {"Authorization": f"Bearer {SECRET}"})
            for method, path in calls
        ]
    finally:
        server.close()
        upstream.close()
    assert [status for status, _, _ in recorded] == [200, 200, 404, 200]
    assert json.loads(recorded[0][2])["output"][0]["content"][0]["text"] == "keep me"
    assert "upstream-only-model" in [m["id"] for m in json.loads(recorded[1][2])["data"]]
    server = replayer("module", tmp_path, MOKKU_REPLAY_SPEED="0")
    try:
        replayed = [
            request(method, server.url + path, None, {"Authorization": f"Bearer {SECRET}"})
            for method, path in calls
        ]
    finally:
        server.close()
    assert [(status, data) for status, _, data in replayed] == [
        (status, data) for status, _, data in recorded
    ]


BIG = 65 << 20  # past MAX_RECORDED_BYTES (64 MiB)


class _RawServer:
    """An upstream written on raw sockets, in a thread: ``url`` once ``serve`` has started it."""

    def serve(self, handler: Type[socketserver.StreamRequestHandler]) -> None:
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _HostileUpstream(_RawServer):
    """An upstream that misbehaves as the request's model says: ``status-N`` answers status N (520, a
    gateway's, with no reason phrase); ``big`` sends 65 MiB of a stated length; ``flaky`` closes
    the first connection unanswered, then answers ``{"n": 1}``, ``{"n": 2}`` ...; ``short`` promises 1,000 bytes and
    sends 5; ``endless`` and ``endless-Chunked`` send 1 MiB blocks (to the close; chunked, the
    coding's name capitalised) until the reader goes."""

    def __init__(self) -> None:

        answered: List[int] = []

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    head += self.rfile.read(1)
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                model = json.loads(self.rfile.read(length))["model"]
                block = b"x" * (1 << 20)
                try:
                    if model.startswith("status-"):  # a gateway's status, with no reason phrase
                        page = b"<html>error code: %s</html>" % model[7:].encode()
                        self.wfile.write(b"HTTP/1.1 %s \r\nContent-Type: text/html\r\n" % model[7:].encode())
                        self.wfile.write(
                            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(page), page)
                        )
                    elif model == "big":  # whole, of a stated length past the recording's bound
                        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
                        self.wfile.write(b"Content-Length: %d\r\n\r\n" % BIG)
                        for _ in range(BIG // len(block)):
                            self.wfile.write(block)
                    elif model == "flaky":  # the first call closed unanswered, then each answered
                        answered.append(len(answered))
                        if answered[-1]:
                            page = b'{"n":%d}' % answered[-1]
                            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
                            self.wfile.write(b"Content-Length: %d\r\n\r\n%s" % (len(page), page))
                    elif model == "short":
                        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
                        self.wfile.write(b'Content-Length: 1000\r\nConnection: close\r\n\r\n{"a":')
                    elif model == "endless":
                        self.wfile.write(
                            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
                        )
                        while True:
                            self.wfile.write(block)
                    else:
                        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
                        self.wfile.write(b"Transfer-Encoding: Chunked\r\n\r\n")
                        while True:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
                except OSError:
                    pass  # the reader went

        self.serve(Handler)


@pytest.mark.parametrize("kind", ["gunicorn", "module"])
def test_an_upstream_answer_is_passed_on_as_it_comes_never_held_whole(kind: str, tmp_path: Path) -> None:
    upstream = _HostileUpstream()
    env = {"MOKKU_MODE": "record", "MOKKU_UPSTREAM": upstream.url, "MOKKU_CASSETTES": str(tmp_path)}
    server = LiveServer(kind, env=env)
    try:
        short = call(server, "/v1/chat/completions", {"model": "short", "messages": []})
        assert short[0] == 502 and json.loads(short[1])["error"]["code"] == "upstream_unavailable"
        for model in ("endless", "endless-Chunked"):  # answered at once, read as it arrives
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            connection.request("POST", "/v1/chat/completions", json.dumps({"model": model}), HEADERS)
            answer = connection.getresponse()
            assert answer.status == 200 and len(answer.read(3 << 20)) == 3 << 20
            connection.close()
        assert request("GET", server.url + "/health")[0] == 200
    finally:
        server.close()
        upstream.close()
    recorded = [json.loads(path.read_text()) for path in tmp_path.rglob("*.json")]
    assert len(recorded) == 2 and all(entry["response"].get("dropped") for entry in recorded)


def test_a_broken_recording_is_a_500_naming_its_file(tmp_path: Path) -> None:
    upstream = LiveServer("module")
    server = recorder("module", upstream, tmp_path)
    bodies = [{"model": "gpt-4o", "messages": [{"role": "user", "content": word}]} for word in ("one", "two")]
    try:
        assert [call(server, "/v1/chat/completions", body)[0] for body in bodies] == [200, 200]
    finally:
        server.close()
        upstream.close()
    first, second = sorted(tmp_path.rglob("*.json"), key=lambda path: path.stat().st_mtime)
    first.write_text('{"key": broken')
    edited = json.loads(second.read_text())
    del edited["response"]["status"]
    second.write_text(json.dumps(edited))
    server = replayer("module", tmp_path)
    try:
        for body, path in zip(bodies, (first, second)):
            status, data = call(server, "/v1/chat/completions", body)
            error = json.loads(data)["error"]
            assert status == 500 and error["code"] == "recording_unreadable" and str(path) in error["message"]
        assert "Traceback" not in server.output()
    finally:
        server.close()


class _GatedUpstream(_RawServer):
    """An upstream that streams three events, each step only once the test says its client saw the
    step before (``gates``): its headers, then its first event. A proxy that holds anything back
    (the headers, the first event) never sees the next step come: the gate times out and ``opened``
    says so. ``cut``: the connection closes after the second event, without the stream's end."""

    EVENTS: Tuple[bytes, ...] = tuple(b'data: {"i":%d}\n\n' % i for i in range(3))

    def __init__(self, cut: bool = False) -> None:

        self.gates = [threading.Event(), threading.Event()]
        self.opened: List[bool] = []
        gates, opened = self.gates, self.opened

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    head += self.rfile.read(1)
                self.rfile.read(int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]))

                def send(data: bytes) -> None:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()

                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n")
                self.wfile.write(b"Transfer-Encoding: chunked\r\n\r\n")
                self.wfile.flush()
                opened.append(gates[0].wait(15))
                send(_GatedUpstream.EVENTS[0])
                opened.append(gates[1].wait(15))
                send(_GatedUpstream.EVENTS[1])
                if not cut:
                    send(_GatedUpstream.EVENTS[2])
                    self.wfile.write(b"0\r\n\r\n")

        self.serve(Handler)


STREAMED = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "gated"}]}


def open_stream(server: LiveServer, headers: Dict[str, str] = HEADERS) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("POST", "/v1/chat/completions", json.dumps(STREAMED), headers)
    return connection.getresponse()


def next_event(answer: http.client.HTTPResponse) -> bytes:
    """The stream's next event, read byte by byte (nothing past it is waited for)."""
    data = b""
    while not data.endswith(b"\n\n"):
        byte = answer.read(1)
        if not byte:
            break
        data += byte
    return data


@pytest.mark.parametrize("kind", ["gunicorn", "module"])
@pytest.mark.parametrize("mode", ["record", "passthrough"])
def test_a_stream_is_passed_on_as_it_comes(kind: str, mode: str, tmp_path: Path) -> None:
    """The headers reach the client before the upstream sends an event, and the first event before the
    upstream sends the next: nothing is held back (the upstream waits on the client, so no timing)."""
    upstream = _GatedUpstream()
    server = recorder(kind, upstream, tmp_path, mode=mode)
    try:
        answer = open_stream(server)
        assert answer.status == 200
        upstream.gates[0].set()
        assert next_event(answer) == _GatedUpstream.EVENTS[0]
        upstream.gates[1].set()
        assert answer.read() == b"".join(_GatedUpstream.EVENTS[1:])
    finally:
        server.close()
        upstream.close()
    assert upstream.opened == [True, True]


@pytest.mark.parametrize("kind", ["gunicorn", "module"])
def test_a_stream_cut_by_the_upstream_passes_on_what_came_and_replays_cut_there(
    kind: str, tmp_path: Path
) -> None:
    upstream = _GatedUpstream(cut=True)
    for gate in upstream.gates:
        gate.set()
    server = recorder(kind, upstream, tmp_path)
    try:
        answer = open_stream(server)
        assert answer.status == 200
        assert [next_event(answer), next_event(answer)] == list(_GatedUpstream.EVENTS[:2])
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            answer.read()
    finally:
        server.close()
        upstream.close()
    (file,) = tmp_path.rglob("*.json")
    recording = json.loads(file.read_text())
    assert recording["response"]["dropped"] is True
    server = replayer(kind, tmp_path, MOKKU_REPLAY_SPEED="0")
    try:
        answer = open_stream(server)
        assert [next_event(answer), next_event(answer)] == list(_GatedUpstream.EVENTS[:2])
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            answer.read()
    finally:
        server.close()


@pytest.mark.parametrize("kind", ["gunicorn", "module"])
def test_a_replayed_stream_goes_out_at_its_recorded_times(kind: str, tmp_path: Path) -> None:
    """The first event comes at once although the last one is due an hour later: never held back."""
    upstream = _GatedUpstream()
    server = recorder(kind, upstream, tmp_path)
    try:
        answer = open_stream(server)
        upstream.gates[0].set()
        assert next_event(answer) == _GatedUpstream.EVENTS[0]  # read apart from the rest
        upstream.gates[1].set()
        assert answer.read() == b"".join(_GatedUpstream.EVENTS[1:])
    finally:
        server.close()
        upstream.close()
    (file,) = tmp_path.rglob("*.json")
    recording = json.loads(file.read_text())
    recording["response"]["chunks"][-1]["at"] = 3600.0
    file.write_text(json.dumps(recording))
    server = replayer(kind, tmp_path)  # real time
    try:
        answer = open_stream(server)
        assert answer.status == 200 and next_event(answer) == _GatedUpstream.EVENTS[0]
        answer.close()
    finally:
        server.close()


def headers_of(server: LiveServer, path: str, body: dict, extra: Dict[str, str]) -> List[Tuple[str, str]]:
    """Every header of the answer, as sent (none merged)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("POST", path, json.dumps(body), {**HEADERS, **extra})
        answer = connection.getresponse()
        answer.read()
        return [(name.lower(), value) for name, value in answer.getheaders()]
    finally:
        connection.close()


@pytest.mark.parametrize("kind", ["gunicorn", "module"])
def test_the_upstreams_headers_are_passed_on_once_mokku_adding_only_what_is_missing(
    kind: str, tmp_path: Path
) -> None:
    anthropic = {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    calls = [
        ("/v1/chat/completions", chat("once"), {}, "x-request-id"),
        ("/v1/messages", anthropic, {"anthropic-version": "2023-06-01"}, "request-id"),
    ]
    upstream = LiveServer("module")
    server = recorder(kind, upstream, tmp_path)
    passthrough = recorder(kind, upstream, tmp_path, mode="passthrough")
    try:
        recorded = [headers_of(server, path, body, extra) for path, body, extra, _ in calls]
        forwarded = [headers_of(passthrough, path, body, extra) for path, body, extra, _ in calls]
    finally:
        passthrough.close()
        server.close()
        upstream.close()
    server = replayer(kind, tmp_path, MOKKU_REPLAY_SPEED="0")
    try:
        replayed = [headers_of(server, path, body, extra) for path, body, extra, _ in calls]
    finally:
        server.close()
    for headers in recorded + forwarded + replayed:
        names = [name for name, _ in headers]
        assert len(names) == len(set(names)), headers
    files = {
        json.loads(f.read_text())["request"]["path"]: json.loads(f.read_text())
        for f in tmp_path.rglob("*.json")
    }
    for (path, _, _, id_header), live, again in zip(calls, recorded, replayed):
        kept = dict(files[path]["response"]["headers"])
        assert dict(live)[id_header] == kept[id_header] == dict(again)[id_header]  # the upstream's own
        assert (
            "openai-processing-ms" not in kept
            or dict(again)["openai-processing-ms"] == kept["openai-processing-ms"]
        )


def test_rate_limits_counted_in_tokens_are_recorded_and_replayed(tmp_path: Path) -> None:
    upstream = LiveServer("module", env={"MOKKU_RPM": "1000", "MOKKU_TPM": "1000000"})
    server = recorder("module", upstream, tmp_path)
    anthropic = {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    calls = [
        ("/v1/chat/completions", chat("limits"), {}, "x-ratelimit-remaining-tokens"),
        (
            "/v1/messages",
            anthropic,
            {"anthropic-version": "2023-06-01"},
            "anthropic-ratelimit-input-tokens-remaining",
        ),
    ]
    try:
        recorded = [dict(headers_of(server, path, body, extra)) for path, body, extra, _ in calls]
    finally:
        server.close()
        upstream.close()
    server = replayer("module", tmp_path, MOKKU_REPLAY_SPEED="0")
    try:
        replayed = [dict(headers_of(server, path, body, extra)) for path, body, extra, _ in calls]
    finally:
        server.close()
    for (_, _, _, name), live, again in zip(calls, recorded, replayed):
        assert live[name] == again[name], (name, live, again)
    kept = {
        name for f in tmp_path.rglob("*.json") for name, _ in json.loads(f.read_text())["response"]["headers"]
    }
    assert {"x-ratelimit-limit-tokens", "x-ratelimit-reset-tokens", "x-ratelimit-remaining-tokens"} <= kept


JOURNALED = ("status", "body", "model", "response_id", "finish_reasons", "usage", "stream")


def journal(server: LiveServer) -> List[dict]:
    """The journal's entries, oldest first, with what a generation's entry says of it."""
    status, _, data = request("GET", server.url + "/mokku/requests?limit=100")
    assert status == 200
    # In the order the requests came: an entry's time is when its answer ended, and a stream's server
    # may end it after the client, which had the last event, has sent its next request.
    entries = sorted(json.loads(data)["data"], key=lambda entry: entry["time"] - entry["duration_ms"] / 1000)
    return [{name: entry.get(name) for name in JOURNALED} for entry in entries]


def test_forwarded_and_replayed_calls_are_journaled_as_mock_answers_are(tmp_path: Path) -> None:
    """The upstream is mokku in mock mode: its journal says what the recorder's, the passthrough's
    and the replayer's must say of the same calls (a stream's events counted as events)."""
    claude = {
        "model": "claude-haiku-4-5",
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": "a streamed message"}],
    }
    calls = [
        ("/v1/chat/completions", chat("journal me")),
        ("/v1/chat/completions", dict(STREAMED, stream_options={"include_usage": True})),
        ("/v1/messages", claude),
        ("/v1beta/models/gemini-2.5-flash:generateContent", {"contents": [{"parts": [{"text": "g"}]}]}),
    ]
    upstream = LiveServer("module")
    server = recorder("module", upstream, tmp_path)
    passthrough = recorder("module", upstream, tmp_path, mode="passthrough")
    try:
        for proxy in (server, passthrough):
            assert [call(proxy, path, body)[0] for path, body in calls] == [200] * len(calls)
        truth, recorded, forwarded = journal(upstream), journal(server), journal(passthrough)
    finally:
        passthrough.close()
        server.close()
        upstream.close()
    assert truth[0]["usage"] and truth[1]["stream"]["events"] > 3 and truth[2]["response_id"]
    for got, want in zip(recorded + forwarded, truth):
        assert got == want, (got, want)
    server = replayer("module", tmp_path, MOKKU_REPLAY_SPEED="0")
    try:
        assert [call(server, path, body)[0] for path, body in calls] == [200] * len(calls)
        assert journal(server) == recorded
        for word in ("one", "two", "three"):  # three different questions, none recorded: no retry
            assert call(server, "/v1/chat/completions", chat(word))[0] == 404
        verdict = json.loads(request("GET", server.url + "/mokku/verdict")[2])
        assert verdict["passed"], verdict
    finally:
        server.close()


@pytest.mark.parametrize("kind", ["gunicorn", "module"])
def test_a_status_http_does_not_name_is_passed_on_recorded_and_replayed(kind: str, tmp_path: Path) -> None:
    upstream = _HostileUpstream()
    server = recorder(kind, upstream, tmp_path)
    try:
        passed = [call(server, "/v1/chat/completions", {"model": f"status-{n}"}) for n in (520, 522, 524)]
        invalid = call(server, "/v1/chat/completions", {"model": "status-999"})
    finally:
        server.close()
        upstream.close()
    assert passed == [(n, b"<html>error code: %d</html>" % n) for n in (520, 522, 524)]
    assert invalid[0] == 502 and json.loads(invalid[1])["error"]["code"] == "upstream_unavailable"
    assert len(list(tmp_path.rglob("*.json"))) == 3
    server = replayer(kind, tmp_path, MOKKU_REPLAY_SPEED="0")
    try:
        assert [
            call(server, "/v1/chat/completions", {"model": f"status-{n}"}) for n in (520, 522, 524)
        ] == passed
        assert "Traceback" not in server.output()
    finally:
        server.close()


@pytest.mark.parametrize("mode", ["record", "passthrough"])
def test_an_answer_past_the_recordings_bound_reaches_the_client_whole(mode: str, tmp_path: Path) -> None:
    upstream = _HostileUpstream()
    server = recorder("module", upstream, tmp_path, mode=mode)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        connection.request("POST", "/v1/chat/completions", json.dumps({"model": "big"}), HEADERS)
        answer = connection.getresponse()
        assert answer.status == 200 and len(answer.read()) == BIG  # whole, and no reset at its end
        connection.close()
    finally:
        server.close()
        upstream.close()
    recorded = [json.loads(path.read_text()) for path in tmp_path.rglob("*.json")]
    if mode == "record":  # only the recording is cut: it never replays as a whole answer
        (entry,) = recorded
        assert entry["response"]["dropped"] is True
        assert sum(len(chunk["text"]) for chunk in entry["response"]["chunks"]) <= 64 << 20
    else:
        assert recorded == []


def test_a_fault_while_recording_reaches_the_client_only(tmp_path: Path) -> None:
    """mokku's control headers stay with mokku; the cassette holds the upstream's real answer."""
    upstream = LiveServer("module")
    server = recorder("module", upstream, tmp_path)
    faulty = dict(HEADERS, **{"X-Mokku-Fault": "stream_drop:2", "X-Mokku-Token-Ms": "1"})
    try:
        answer = open_stream(server, faulty)
        assert [next_event(answer), next_event(answer)] != [b"", b""]
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            answer.read()
        (seen,) = [entry for entry in json.loads(request("GET", upstream.url + "/mokku/requests")[2])["data"]]
    finally:
        server.close()
        upstream.close()
    assert not [name for name in seen["headers"] if name.lower().startswith("x-mokku-")]
    assert seen["stream"] == {"outcome": "completed", "events": seen["stream"]["events"]}
    (file,) = tmp_path.rglob("*.json")
    response = json.loads(file.read_text())["response"]
    assert "dropped" not in response and "".join(c["text"] for c in response["chunks"]).endswith(
        "data: [DONE]\n\n"
    )
    server = replayer("module", tmp_path, MOKKU_REPLAY_SPEED="0")
    try:
        replayed = open_stream(server).read()  # whole, as the upstream sent it
        assert (
            replayed.endswith(b"data: [DONE]\n\n") and replayed.count(b"data: ") == seen["stream"]["events"]
        )
    finally:
        server.close()


def test_an_upstream_that_fails_uses_up_no_number(tmp_path: Path) -> None:
    upstream = _HostileUpstream()
    server = recorder("module", upstream, tmp_path)
    try:
        statuses = [call(server, "/v1/chat/completions", {"model": "flaky"}) for _ in range(3)]
    finally:
        server.close()
        upstream.close()
    assert [status for status, _ in statuses] == [502, 200, 200]
    assert sorted(path.name.rsplit("-", 1)[1] for path in tmp_path.rglob("*.json")) == ["1.json", "2.json"]
    server = replayer("module", tmp_path, MOKKU_REPLAY_SPEED="0")
    try:
        assert [call(server, "/v1/chat/completions", {"model": "flaky"}) for _ in range(2)] == statuses[1:]
    finally:
        server.close()


class _Mirror(_RawServer):
    """An upstream that answers every request with what it received: its request line and headers."""

    def __init__(self) -> None:

        self.seen: List[str] = []
        seen = self.seen

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    head += self.rfile.read(1)
                seen.append(head.decode("latin-1"))
                page = json.dumps(head.decode("latin-1").split("\r\n")).encode()
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
                self.wfile.write(b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(page), page))

        self.serve(Handler)


@pytest.mark.parametrize("kind", ["gunicorn", "module"])
def test_a_forwarded_path_stays_under_the_upstreams_base_and_carries_no_query(kind: str) -> None:
    mirror = _Mirror()
    server = LiveServer(kind, env={"MOKKU_MODE": "passthrough", "MOKKU_UPSTREAM": mirror.url + "/base"})
    hops = {"Proxy-Authorization": "Basic c2VjcmV0", "Connection": "X-Hop", "X-Hop": "1", "X-Kept": "1"}
    try:
        for path in ("/v1/%2e%2e/%2e%2e/admin", "/v1/%2E%2E/x", "/v1/./models", "/v1/models/.."):
            status, _, data = request("GET", server.url + path)
            assert status == 400 and json.loads(data)["error"]["type"] == "invalid_request_error", path
        assert mirror.seen == []  # nothing left the base path
        lines = [
            json.loads(request("GET", server.url + path, None, hops)[2])
            for path in ("/v1/models/x%3Fkey=INJ%26alt=sse%23frag", "/v1/models/a%20b")
        ]
    finally:
        server.close()
        mirror.close()
    assert [head[0] for head in lines] == [
        "GET /base/v1/models/x%3Fkey=INJ&alt=sse%23frag HTTP/1.1",
        "GET /base/v1/models/a%20b HTTP/1.1",
    ]
    sent = [name.split(":")[0].lower() for name in lines[0][1:]]
    assert "x-kept" in sent and not {"proxy-authorization", "x-hop"} & set(sent)


@pytest.mark.parametrize("kind", ["gunicorn", "module"])
def test_a_restarted_server_counts_from_1_in_a_kept_state_file(kind: str, tmp_path: Path) -> None:
    state = {"MOKKU_STATE": str(tmp_path / "state.sqlite3")}
    cassettes = tmp_path / "c"
    upstream = LiveServer("module")
    try:
        answers = []
        for times in (2, 1):  # two runs on one state file
            server = recorder(kind, upstream, cassettes, **state)
            try:
                answers += [call(server, "/v1/chat/completions", chat("again")) for _ in range(times)]
            finally:
                server.close()
    finally:
        upstream.close()
    assert sorted(path.name[-6:] for path in cassettes.rglob("*.json")) == ["1.json", "2.json"]
    for _ in range(2):  # a replay restarted on the same state file replays from the first again
        server = replayer(kind, cassettes, MOKKU_REPLAY_SPEED="0", **state)
        try:
            assert call(server, "/v1/chat/completions", chat("again")) == answers[2]  # the last run's 1st
        finally:
            server.close()
