"""The real server over real sockets: both entry points, the SDK, keep-alive, signals."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, Iterator, List

import openai
import pytest

from mokku import config
from mokku.server.app import App
from mokku.server.http import Request, Response, json_response
from mokku.server.routes import build_routes
from mokku.server.routing import Route
from mokku.server.stdlib import make_server

from ..servers import LiveServer, request, request_json
from ..spec import validate


def test_sdk_lists_models(client: openai.OpenAI) -> None:
    models = client.models.list()
    ids = [model.id for model in models]
    assert "gpt-4o" in ids and "credit-error" in ids
    assert all(model.object == "model" for model in models)


def test_sdk_retrieves_model(client: openai.OpenAI) -> None:
    model = client.models.retrieve("gpt-4o-mini")
    assert (model.id, model.object) == ("gpt-4o-mini", "model")
    assert model.owned_by == "system"


def test_sdk_unknown_model_is_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("ft:gpt-4o-mini:acme:nope:123")
    assert caught.value.status_code == 404
    assert caught.value.code == "model_not_found"
    validate(caught.value.body and {"error": caught.value.body}, "ErrorResponse")


def test_raw_errors(live_server: LiveServer) -> None:
    status, headers, body = request_json("GET", live_server.url + "/v1/nope")
    assert status == 404
    validate(body, "ErrorResponse")
    assert body["error"]["message"] == "Invalid URL (GET /v1/nope)"
    assert headers["content-type"] == "application/json"
    assert re.fullmatch(r"req_[0-9a-f]{32}", headers["x-request-id"])
    status, headers, body = request_json("DELETE", live_server.url + "/v1/models")
    assert status == 405
    assert headers["allow"] == "GET, HEAD"
    validate(body, "ErrorResponse")


@pytest.mark.parametrize("path", ["/v1/models", "/v1/models/gpt-4o", "/health", "/openapi.json"])
def test_head_answers_as_get_without_a_body(live_server: LiveServer, path: str) -> None:
    status, headers, body = request("GET", live_server.url + path)
    head_status, head_headers, head_body = request("HEAD", live_server.url + path)
    assert (head_status, head_body) == (status, b"")
    assert head_headers["content-length"] == headers["content-length"] == str(len(body))
    assert head_headers["content-type"] == headers["content-type"]


def test_a_browser_preflight_and_request_on_one_connection(live_server: LiveServer) -> None:
    # The openai SDK in a browser (dangerouslyAllowBrowser) sends its x-stainless-* headers: the
    # preflight allows whatever is asked, and the connection carries on to the request itself.
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", live_server.port, timeout=10)
    try:
        asked = "authorization,content-type,x-stainless-os,x-stainless-retry-count"
        conn.request(
            "OPTIONS",
            "/v1/chat/completions",
            headers={
                "Origin": "http://localhost:5173",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": asked,
            },
        )
        preflight = conn.getresponse()
        assert (preflight.status, preflight.read()) == (204, b"")
        assert preflight.getheader("Access-Control-Allow-Origin") == "*"
        assert preflight.getheader("Access-Control-Allow-Methods") == "GET, HEAD, POST"
        assert preflight.getheader("Access-Control-Allow-Headers") == asked
        body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "from a page"}]})
        conn.request(
            "POST",
            "/v1/chat/completions",
            body=body,
            headers={"Origin": "http://localhost:5173", "Content-Type": "application/json"},
        )
        answer = conn.getresponse()
        assert json.loads(answer.read())["choices"][0]["message"]["content"] == "from a page"
        assert answer.getheader("Access-Control-Allow-Origin") == "*"
        assert answer.getheader("Access-Control-Expose-Headers") == "*"
    finally:
        conn.close()


def test_request_id_echo(live_server: LiveServer) -> None:
    _, headers, _ = request("GET", live_server.url + "/health", headers={"X-Request-Id": "abc-123"})
    assert headers["x-request-id"] == "abc-123"
    assert headers["openai-version"] == "2020-10-01"
    assert int(headers["openai-processing-ms"]) >= 0


def _read_response(sock_file) -> tuple:
    status_line = sock_file.readline().decode()
    headers = {}
    while True:
        line = sock_file.readline().decode()
        if line in ("\r\n", ""):
            break
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = sock_file.read(int(headers["content-length"]))
    return status_line, headers, body


def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    server = LiveServer("gunicorn")
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock_file = sock.makefile("rb")
            for path in ("/health", "/v1/models", "/v1/models/gpt-4o", "/v1/nope", "/health"):
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
                status_line, headers, body = _read_response(sock_file)
                assert status_line.startswith("HTTP/1.1 ")
                assert headers.get("connection", "keep-alive").lower() != "close"
                json.loads(body)
            assert status_line.startswith("HTTP/1.1 200")
    finally:
        server.close()


def test_fifty_concurrent_clients_do_not_block_each_other() -> None:
    """50 connections that stall mid-request must not stop others from being served."""
    server = LiveServer("module")
    stalled: List[socket.socket] = []
    try:
        for _ in range(50):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\n")  # headers not finished
            stalled.append(sock)
        # Blocked behind the stalled connections, it would wait until they are closed, below.
        status, _, _ = request("GET", server.url + "/v1/models/gpt-4o", timeout=60)
        assert status == 200

        def finish(sock: socket.socket) -> str:
            sock.sendall(b"\r\n")
            return sock.makefile("rb").readline().decode()

        with ThreadPoolExecutor(max_workers=50) as pool:
            lines = list(pool.map(finish, stalled))
        assert all(line.startswith("HTTP/1.1 200") for line in lines), lines

        def fetch(_: int) -> int:
            return request("GET", server.url + "/v1/models")[0]

        with ThreadPoolExecutor(max_workers=50) as pool:
            assert list(pool.map(fetch, range(200))) == [200] * 200
    finally:
        for sock in stalled:
            sock.close()
        server.close()


@pytest.mark.parametrize("kind", ["module", "gunicorn"])
def test_sigterm_exits_cleanly(kind: str) -> None:
    server = LiveServer(kind)
    try:
        assert request("GET", server.url + "/health")[0] == 200
        assert server.stop(signal.SIGTERM) == 0
        assert "Traceback" not in server.output()
    finally:
        server.close()


def test_module_logs_startup_line_and_stops_on_sigint() -> None:
    server = LiveServer("module")
    try:
        assert f"listening on http://127.0.0.1:{server.port}" in server.output()
        assert server.stop(signal.SIGINT) == 0
        assert "Traceback" not in server.output()
        assert "mokku stopped" in server.output()
    finally:
        server.close()


def test_plain_gunicorn_sync_worker_serves_and_warns() -> None:
    server = LiveServer("gunicorn-sync")
    try:
        status, _, body = request_json("GET", server.url + "/v1/models/gpt-4o")
        assert status == 200 and body["id"] == "gpt-4o"
        deadline = time.monotonic() + 60
        while "threaded workers" not in server.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.output().count("threaded workers") == 1
        assert server.stop() == 0
    finally:
        server.close()


def test_non_ascii_model_ids_round_trip() -> None:
    server = LiveServer("module", env={"MOKKU_MODELS": "modèle-日本"})
    try:
        with openai.OpenAI(base_url=server.url + "/v1", api_key="sk-test", max_retries=0) as sdk:
            assert sdk.models.retrieve("modèle-日本").id == "modèle-日本"
            assert "modèle-日本" in [model.id for model in sdk.models.list()]
    finally:
        server.close()


def test_version_and_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mokku", "--version"], capture_output=True, text=True, check=True
    )
    assert re.fullmatch(r"mokku \d+\.\d+\.\d+\n", out.stdout)
    out = subprocess.run(
        [sys.executable, "-m", "mokku", "--help"], capture_output=True, text=True, check=True
    )
    for flag in (
        "--host",
        "--port",
        "--threads",
        "--log-level",
        "--version",
        "mokku verdict",
        "cassette why",
    ):
        assert flag in out.stdout


def test_console_script() -> None:
    script = Path(sys.executable).with_name("mokku")
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("mokku ")


def test_bad_configuration_exits_2_with_message() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mokku", "--port", "http"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 2
    assert "MOKKU_PORT must be an integer" in out.stderr


@pytest.mark.parametrize("kind", ["module", "gunicorn"])
@pytest.mark.parametrize(
    "setting, words",
    [
        ({"MOKKU_FAULTS": "bogus=0.1"}, "MOKKU_FAULTS: Unknown fault 'bogus'"),
        ({"MOKKU_WORKERS": "0"}, "MOKKU_WORKERS must be at least 1, got 0"),
        ({"MOKKU_FAULTS": "timeout:nan=0.1"}, "MOKKU_FAULTS: "),
        ({"MOKKU_SCENARIOS": "/dev/urandom"}, "MOKKU_SCENARIOS: the file is larger than 16777216 bytes"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_EXPORTER_OTLP_TIMEOUT": "abc"},
            "OTEL_EXPORTER_OTLP_TIMEOUT must be a positive number, got 'abc'",
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_EXPORTER_OTLP_PROTOCOL": "bogus"},
            "OTEL_EXPORTER_OTLP_PROTOCOL must be one of grpc, http/protobuf, got 'bogus'",
        ),
        (
            {"MOKKU_METRICS": "1", "PROMETHEUS_MULTIPROC_DIR": "/nonexistent/metrics"},
            "PROMETHEUS_MULTIPROC_DIR must be a directory this server can write in: /nonexistent/metrics",
        ),
    ],
)
def test_a_setting_found_bad_past_the_first_read_still_exits_2(
    kind: str, setting: Dict[str, str], words: str, tmp_path: Path
) -> None:
    """Checked before any worker starts: a message and status 2, not a traceback per worker."""
    command = {
        "module": [sys.executable, "-m", "mokku"],
        "gunicorn": [sys.executable, "-m", "gunicorn", "-c", "python:mokku.gunicorn_conf", "mokku.wsgi:app"],
    }[kind]
    env = {**os.environ, "MOKKU_PORT": "0", "MOKKU_STATE": str(tmp_path / "state"), **setting}
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert words in out.stderr and "Traceback" not in out.stderr, out.stderr[-2000:]


def _parse(request: Request) -> Response:
    return json_response({"received": request.json()})


def _boom(request: Request) -> Response:
    raise ValueError("broken handler")


@pytest.fixture
def threaded_server_with_test_routes() -> Iterator[str]:
    """The real app and threaded server, plus a body-parsing route and a failing route."""
    settings = config.load({"MOKKU_MAX_BODY_BYTES": "4096"})
    routes = [*build_routes(settings), Route("POST", "/test/body", _parse), Route("GET", "/test/boom", _boom)]
    server = make_server(App(settings, routes), "127.0.0.1", 0, threads=8)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_live_500_is_an_envelope_and_server_keeps_serving(
    threaded_server_with_test_routes: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = threaded_server_with_test_routes
    for _ in range(3):
        status, _, body = request_json("GET", url + "/test/boom")
        assert status == 500
        validate(body, "ErrorResponse")
        assert body["error"]["type"] == "server_error"
        assert "broken handler" not in json.dumps(body)
    assert "ValueError: broken handler" in caplog.text
    assert request("GET", url + "/health")[0] == 200


def test_live_body_errors(threaded_server_with_test_routes: str) -> None:
    url = threaded_server_with_test_routes + "/test/body"
    status, _, body = request("POST", url, b"{oops", {"Content-Type": "application/json"})
    assert status == 400 and b"could not parse the JSON body" in body
    status, _, body = request("POST", url, b"[]", {"Content-Type": "application/json"})
    assert status == 400 and b"must be a JSON object" in body
    status, _, body = request("POST", url, b"{}", {"Content-Type": "text/plain"})
    assert status == 400 and b"Content-Type" in body
    status, _, body = request("POST", url, b'{"a": 1}')
    assert status == 200 and json.loads(body) == {"received": {"a": 1}}
    status, _, body = request(
        "POST", url, b'{"a": "' + b"x" * 10000 + b'"}', {"Content-Type": "application/json"}
    )
    assert status == 413
    validate(json.loads(body), "ErrorResponse")


def test_live_declared_huge_body_is_refused_without_sending_it(threaded_server_with_test_routes: str) -> None:
    port = int(threaded_server_with_test_routes.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /test/body HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000000\r\n\r\n{"
        )
        reply = sock.makefile("rb").read()
    assert reply.startswith(b"HTTP/1.1 413 ")
    assert b'"code": "request_too_large"' in reply


def test_a_signal_while_a_request_is_handed_to_a_thread_stops_the_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = make_server(App(config.load({})), "127.0.0.1", 0, threads=2)
    failures: List[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda hook: failures.append(hook.exc_value))
    started = threading.Thread.start
    threads: List[threading.Thread] = []

    def start_then_signal(thread: threading.Thread) -> None:
        started(thread)  # the thread runs...
        threads.append(thread)
        server.stop_soon()  # ...and SIGTERM's handler runs while start() waits for it

    monkeypatch.setattr(threading.Thread, "start", start_then_signal)
    client = socket.create_connection(server.server_address[:2])
    try:
        client.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        server.serve_forever()  # returns after the turn that handed the request over
        monkeypatch.undo()
        server.server_close()  # as the CLI does next: the request in flight gets its drain
        client.settimeout(5)
        reply = b""
        while True:
            chunk = client.recv(4096)
            if not chunk:
                break
            reply += chunk
    finally:
        client.close()
        monkeypatch.undo()
        server.server_close()
    # The request handed over as the signal came was served all the same.
    assert reply.startswith(b"HTTP/1.1 200 ")
    for thread in threads:
        thread.join(5)
        assert not thread.is_alive()
    assert failures == []
