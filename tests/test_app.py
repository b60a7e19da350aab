"""The WSGI core in-process: routing, error envelopes, body handling, common headers."""

from __future__ import annotations

import io
import json
import logging
import re
from typing import Any, Dict, List, Tuple

import pytest
import webtest

from mokku import config
from mokku.server.app import App
from mokku.server.http import Request, Response, json_response
from mokku.server.routes import build_routes
from mokku.server.routing import Route

from .spec import validate


def _echo_body(request: Request) -> Response:
    return json_response({"received": request.json()})


def _boom(request: Request) -> Response:
    raise RuntimeError("handler bug")


def _app_with(env: Dict[str, str], *extra: Route) -> App:
    settings = config.load(env)
    return App(settings, build_routes(settings) + list(extra))


@pytest.fixture
def body_app() -> webtest.TestApp:
    """The real app plus a route that parses a JSON body and a route whose handler fails."""
    return webtest.TestApp(
        _app_with({}, Route("POST", "/test/body", _echo_body), Route("GET", "/test/boom", _boom))
    )


def assert_envelope(response: Any, status: int, message: str, type_: str, code: Any = None) -> Dict[str, Any]:
    assert response.status_int == status
    assert response.content_type == "application/json"
    body = response.json
    validate(body, "ErrorResponse")
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == type_
    assert body["error"]["code"] == code
    assert re.search(message, body["error"]["message"]), body["error"]["message"]
    return body["error"]


def test_unknown_path_is_404_invalid_url(app: webtest.TestApp) -> None:
    response = app.get("/v1/nope", status=404)
    error = assert_envelope(response, 404, r"^Invalid URL \(GET /v1/nope\)$", "invalid_request_error")
    assert error["param"] is None


def test_unknown_path_names_the_method(app: webtest.TestApp) -> None:
    response = app.post("/v1/nope", status=404)
    assert_envelope(response, 404, r"^Invalid URL \(POST /v1/nope\)$", "invalid_request_error")


def test_root_is_404(app: webtest.TestApp) -> None:
    assert_envelope(app.get("/", status=404), 404, r"Invalid URL \(GET /\)", "invalid_request_error")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/v1/models", "GET, HEAD"),
        ("DELETE", "/v1/models", "GET, HEAD"),
        ("PUT", "/v1/models/gpt-4o", "DELETE, GET, HEAD"),
        ("POST", "/health", "GET, HEAD"),
        ("PUT", "/v1/chat/completions", "GET, HEAD, POST"),
        ("GET", "/v1/embeddings", "POST"),
        ("get", "/v1/models", "GET, HEAD"),  # methods are case-sensitive
    ],
)
def test_wrong_method_is_405_with_allow(app: webtest.TestApp, method: str, path: str, allow: str) -> None:
    response = app.request(path, method=method, status=405)
    assert response.headers["Allow"] == allow
    assert_envelope(response, 405, rf"\({method} {re.escape(path)}\).*{allow}", "invalid_request_error")


PAGE = {"Origin": "http://localhost:5173"}


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/v1/chat/completions", "GET, HEAD, POST"),
        ("/v1/responses/resp_1", "DELETE, GET, HEAD"),
        ("/v1/messages", "POST"),
    ],
)
def test_a_preflight_is_allowed_without_credentials(path: str, methods: str) -> None:
    app = webtest.TestApp(_app_with({"MOKKU_API_KEY": "sk-only-this"}))
    asked = "authorization,content-type,x-stainless-os"
    headers = dict(PAGE, **{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": asked})
    answer = app.options(path, headers=headers, status=204)
    assert answer.body == b""
    allowed = {name: value for name, value in answer.headerlist if name.startswith("Access-Control-")}
    assert allowed == {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": methods,
        "Access-Control-Max-Age": "86400",
        "Access-Control-Allow-Headers": asked,
    }
    assert [name for name, _ in answer.headerlist].count("Access-Control-Allow-Origin") == 1
    # An unknown path is not pretended to exist.
    assert_envelope(
        app.options("/v1/nope", headers=PAGE, status=404), 404, r"OPTIONS /v1/nope", "invalid_request_error"
    )


def test_answers_to_a_page_may_be_read_by_it(app: webtest.TestApp) -> None:
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    read = app.post_json("/v1/chat/completions", chat, headers=PAGE)
    assert (read.headers["Access-Control-Allow-Origin"], read.headers["Access-Control-Expose-Headers"]) == (
        "*",
        "*",
    )
    refused = app.post_json("/v1/chat/completions", {"model": "m"}, headers=PAGE, status=400)
    assert refused.headers["Access-Control-Allow-Origin"] == "*"  # errors too, so the page sees why
    streamed = app.post_json("/v1/chat/completions", dict(chat, stream=True), headers=PAGE)
    assert streamed.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Origin" not in app.post_json("/v1/chat/completions", chat).headers
    # Anthropic's API answers a browser only when it opts in, as the SDK's dangerouslyAllowBrowser does.
    message = {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    anthropic = dict(PAGE, **{"x-api-key": "k", "anthropic-version": "2023-06-01"})
    assert (
        "Access-Control-Allow-Origin" not in app.post_json("/v1/messages", message, headers=anthropic).headers
    )
    opted = dict(anthropic, **{"anthropic-dangerous-direct-browser-access": "true"})
    assert app.post_json("/v1/messages", message, headers=opted).headers["Access-Control-Allow-Origin"] == "*"


def test_json_body_is_parsed(body_app: webtest.TestApp) -> None:
    response = body_app.post_json("/test/body", {"a": [1, 2.5, None, True], "b": "ünï ✓ 🎉"})
    assert response.json == {"received": {"a": [1, 2.5, None, True], "b": "ünï ✓ 🎉"}}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", r"could not parse the JSON body.*line 1 column 2"),
        (b'{"a": 1,}', r"could not parse the JSON body"),
        (b"", r"the body is empty"),
        (b"   ", r"the body is empty"),
        (b'{"a": NaN}', r"NaN is not valid JSON"),
        (b'{"a": "\xff"}', r"could not parse the JSON body.*utf-8"),
        (b"[" * 100000 + b"]" * 100000, r"could not parse the JSON body"),
    ],
)
def test_malformed_json_is_400(body_app: webtest.TestApp, body: bytes, message: str) -> None:
    response = body_app.post("/test/body", body, content_type="application/json", status=400)
    assert_envelope(response, 400, message, "invalid_request_error")


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"[1, 2]", "an array"),
        (b'"text"', "a string"),
        (b"3", "an integer"),
        (b"2.5", "a decimal number"),
        (b"null", "null"),
        (b"true", "a boolean"),
    ],
)
def test_body_must_be_an_object(body_app: webtest.TestApp, body: bytes, kind: str) -> None:
    response = body_app.post("/test/body", body, content_type="application/json", status=400)
    assert_envelope(response, 400, rf"must be a JSON object, but got {kind} instead", "invalid_request_error")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_wrong_content_type_is_400(body_app: webtest.TestApp, content_type: str) -> None:
    response = body_app.post("/test/body", b'{"a": 1}', content_type=content_type, status=400)
    assert_envelope(
        response, 400, rf"Invalid Content-Type header \({content_type}\)", "invalid_request_error"
    )


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/vnd.api+json", ""])
def test_json_content_types_and_none_are_accepted(body_app: webtest.TestApp, content_type: str) -> None:
    response = body_app.post("/test/body", b'{"a": 1}', content_type=content_type)
    assert response.json == {"received": {"a": 1}}


class _CountingInput(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk


def _call(
    app: App, environ_extra: Dict[str, Any], data: bytes
) -> Tuple[str, List[Tuple[str, str]], bytes, Any]:
    stream = _CountingInput(data)
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/test/body",
        "CONTENT_TYPE": "application/json",
        "wsgi.input": stream,
        "wsgi.multithread": True,
        **environ_extra,
    }
    seen: Dict[str, Any] = {}

    def start_response(status: str, headers: List[Tuple[str, str]]) -> None:
        seen["status"], seen["headers"] = status, headers

    body = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], body, stream


def test_body_over_cap_is_413_dropped_not_kept() -> None:
    """Past the cap a body is read and dropped (so a client writing it whole gets the 413, not a
    reset), never kept; past ``DRAIN_LIMIT`` it is not read at all."""
    from mokku.server.http import DRAIN_LIMIT

    app = _app_with({"MOKKU_MAX_BODY_BYTES": "1000"}, Route("POST", "/test/body", _echo_body))
    data = b'{"a": "' + b"x" * 5000 + b'"}'
    status, _, body, stream = _call(app, {"CONTENT_LENGTH": str(len(data))}, data)
    assert status == "413 Request Entity Too Large"
    error = json.loads(body)["error"]
    validate(json.loads(body), "ErrorResponse")
    assert error["code"] == "request_too_large"
    assert "1000 bytes" in error["message"]
    assert stream.bytes_read == len(data)
    status, _, _, stream = _call(app, {"CONTENT_LENGTH": str(DRAIN_LIMIT + 1)}, data)
    assert status.startswith("413 ") and stream.bytes_read == 0
    waiting = {"CONTENT_LENGTH": str(len(data)), "HTTP_EXPECT": "100-continue"}  # not sent until asked for
    status, _, _, stream = _call(app, waiting, data)
    assert status.startswith("413 ") and stream.bytes_read == 0


def test_chunked_body_over_cap_is_413_reading_at_most_the_cap() -> None:
    app = _app_with({"MOKKU_MAX_BODY_BYTES": "1000"}, Route("POST", "/test/body", _echo_body))
    data = b'{"a": "' + b"x" * 500000 + b'"}'
    status, _, _, stream = _call(app, {"wsgi.input_terminated": True}, data)
    assert status.startswith("413 ")
    assert stream.bytes_read <= 1001


def test_chunked_body_under_cap_is_read() -> None:
    app = _app_with({"MOKKU_MAX_BODY_BYTES": "1000"}, Route("POST", "/test/body", _echo_body))
    status, _, body, _ = _call(app, {"wsgi.input_terminated": True}, b'{"a": "' + b"x" * 900 + b'"}')
    assert status == "200 OK"
    assert json.loads(body) == {"received": {"a": "x" * 900}}


def test_body_exactly_at_cap_is_accepted() -> None:
    data = b'{"a": "' + b"x" * 100 + b'"}'
    app = _app_with({"MOKKU_MAX_BODY_BYTES": str(len(data))}, Route("POST", "/test/body", _echo_body))
    status, _, _, _ = _call(app, {"CONTENT_LENGTH": str(len(data))}, data)
    assert status == "200 OK"


@pytest.mark.parametrize("length", ["abc", "-5"])
def test_bad_content_length_is_400(length: str) -> None:
    app = _app_with({}, Route("POST", "/test/body", _echo_body))
    status, _, body, _ = _call(app, {"CONTENT_LENGTH": length}, b"{}")
    assert status.startswith("400 ")
    assert "Content-Length" in json.loads(body)["error"]["message"]


def test_unexpected_exception_is_500_envelope_and_logged(
    body_app: webtest.TestApp, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="mokku"):
        response = body_app.get("/test/boom", status=500)
    assert_envelope(response, 500, r"The server had an error", "server_error")
    assert "handler bug" not in response.text
    records = [r for r in caplog.records if r.name == "mokku" and r.exc_info]
    assert records and "GET /test/boom" in records[0].getMessage()
    assert "RuntimeError: handler bug" in caplog.text
    assert body_app.get("/health").status_int == 200


def test_common_headers_on_success_and_error(app: webtest.TestApp) -> None:
    for response in (app.get("/v1/models"), app.get("/v1/nope", status=404)):
        assert response.headers["Content-Type"] == "application/json"
        assert re.fullmatch(r"req_[0-9a-f]{32}", response.headers["x-request-id"])
        assert response.headers["openai-version"] == "2020-10-01"
        assert int(response.headers["openai-processing-ms"]) >= 0
        assert int(response.headers["Content-Length"]) == len(response.body)


def test_request_ids_are_unique(app: webtest.TestApp) -> None:
    ids = {app.get("/health").headers["x-request-id"] for _ in range(20)}
    assert len(ids) == 20


def test_client_request_id_is_echoed(app: webtest.TestApp) -> None:
    response = app.get("/v1/models", headers={"X-Request-Id": "my-trace-123"})
    assert response.headers["x-request-id"] == "my-trace-123"


def test_unsafe_client_request_id_is_replaced(app: webtest.TestApp) -> None:
    response = app.get("/v1/models", headers={"X-Request-Id": "x" * 500})
    assert re.fullmatch(r"req_[0-9a-f]{32}", response.headers["x-request-id"])


def test_json_is_compact_utf8(body_app: webtest.TestApp) -> None:
    response = body_app.post_json("/test/body", {"text": "héllo ✓ 日本 🎉", "n": [1, 2]})
    assert response.body == '{"received":{"text":"héllo ✓ 日本 🎉","n":[1,2]}}'.encode()


def test_lone_surrogate_survives_as_escape(body_app: webtest.TestApp) -> None:
    response = body_app.post("/test/body", b'{"t": "a\\ud800b"}', content_type="application/json")
    assert json.loads(response.body) == {"received": {"t": "a\ud800b"}}


def test_health(app: webtest.TestApp) -> None:
    response = app.get("/health")
    assert response.json["status"] == "ok"


def test_single_threaded_server_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    app = webtest.TestApp(App(config.load({})))
    with caplog.at_level(logging.WARNING, logger="mokku"):
        app.get("/health", extra_environ={"wsgi.multithread": False})
        app.get("/health", extra_environ={"wsgi.multithread": False})
    warnings = [r for r in caplog.records if "threaded workers" in r.getMessage()]
    assert len(warnings) == 1


def test_threaded_server_does_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    app = webtest.TestApp(App(config.load({})))
    with caplog.at_level(logging.WARNING, logger="mokku"):
        app.get("/health", extra_environ={"wsgi.multithread": True})
    assert not [r for r in caplog.records if "threaded workers" in r.getMessage()]


@pytest.mark.parametrize("path", ["/v1/models", "/v1/models/gpt-4o", "/health", "/openapi.yml"])
def test_head_answers_as_get_without_a_body(app: webtest.TestApp, path: str) -> None:
    got = app.get(path)
    head = app.head(path)
    assert head.status_int == 200 and head.body == b""
    assert head.headers["Content-Length"] == got.headers["Content-Length"] == str(len(got.body))
    assert head.headers["Content-Type"] == got.headers["Content-Type"]


def test_a_large_answer_the_client_does_not_take_makes_the_servers_close_immediate() -> None:
    """An answer that may not fit the socket's buffers: if the server does not get all of it out
    (the client stopped reading), the connection resets at once on close, as a stream's does,
    instead of gunicorn's polite close waiting on its worker's main thread."""
    import socket
    import struct

    app = App(config.load({"MOKKU_JOURNAL": "0"}))
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    with listener, client, server:
        for words, taken in ((2, True), (60_000, True), (60_000, False)):
            body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "word " * words}]})
            environ = {
                "REQUEST_METHOD": "POST",
                "PATH_INFO": "/v1/chat/completions",
                "CONTENT_TYPE": "application/json",
                "CONTENT_LENGTH": str(len(body)),
                "wsgi.input": io.BytesIO(body.encode()),
                "gunicorn.socket": server,
            }
            answer = app(environ, lambda status, headers, exc_info=None: None)
            iterator = iter(answer)
            first = next(iterator)
            if taken:
                assert b"".join([first, *iterator]).endswith(b"}")
            getattr(answer, "close", lambda: None)()
            linger = struct.unpack("ii", server.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8))
            assert linger == ((0, 0) if taken else (1, 0)), (words, taken)
