"""Tracing end to end: the real server exports OTLP to in-process receivers."""

from __future__ import annotations

import json
import signal
import socket
import time
from typing import Dict, Iterator, List

import openai
import pytest

from ..otlp import GrpcReceiver, HttpReceiver, ReceivedSpan, SilentPort
from ..servers import LiveServer, free_port, request, request_json

SPAN_KIND_SERVER = 2
STATUS_CODE_ERROR = 2
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
SECRET_KEY = "sk-secret-do-not-record-0123456789"
SECRET_TEXT = "private message content 7f3a"


def tracing_env(endpoint: str, **extra: str) -> Dict[str, str]:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def receiver() -> Iterator[GrpcReceiver]:
    collector = GrpcReceiver()
    yield collector
    collector.stop()


@pytest.fixture(scope="module", params=["gunicorn", "module"])
def traced_server(request: pytest.FixtureRequest, receiver: GrpcReceiver) -> Iterator[LiveServer]:
    env = tracing_env(receiver.endpoint, OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST=".*")
    server = LiveServer(request.param, env=env, workers=2)
    yield server
    server.close()


def spans_for(receiver: GrpcReceiver, model: str, count: int = 1) -> List[ReceivedSpan]:
    def matching(spans: List[ReceivedSpan]) -> List[ReceivedSpan]:
        return [s for s in spans if s.attributes.get("gen_ai.request.model") == model]

    return matching(receiver.wait_for(lambda spans: len(matching(spans)) >= count))


def sdk(server: LiveServer, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.url + "/v1", api_key=SECRET_KEY, max_retries=0, default_headers=headers or None
    )


def test_chat_span(traced_server: LiveServer, receiver: GrpcReceiver) -> None:
    model = f"trace-chat-{traced_server.kind}"
    with sdk(traced_server, traceparent=f"00-{TRACE_ID}-{PARENT_ID}-01") as client:
        completion = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": SECRET_TEXT}], max_tokens=50, temperature=0.5
        )
    (span,) = spans_for(receiver, model)
    assert span.name == "POST /v1/chat/completions"
    assert span.kind == SPAN_KIND_SERVER
    assert span.trace_id == TRACE_ID
    assert span.parent_span_id == PARENT_ID
    assert span.resource["service.name"] == "mokku"
    attributes = span.attributes
    assert attributes["http.route"] == "/v1/chat/completions"
    assert attributes["http.status_code"] == 200
    assert attributes["http.method"] == "POST"
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.response.model"] == model
    assert attributes["gen_ai.response.id"] == completion.id
    assert completion.usage is not None
    assert attributes["gen_ai.usage.input_tokens"] == completion.usage.prompt_tokens
    assert attributes["gen_ai.usage.output_tokens"] == completion.usage.completion_tokens
    assert attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert attributes["gen_ai.request.max_tokens"] == 50
    assert attributes["gen_ai.request.temperature"] == 0.5
    flat = json.dumps([s.attributes for s in receiver.spans] + [s.events for s in receiver.spans])
    assert SECRET_TEXT not in flat
    assert SECRET_KEY not in flat


def test_stream_span_covers_the_stream(traced_server: LiveServer, receiver: GrpcReceiver) -> None:
    model = f"trace-stream-{traced_server.kind}"
    with sdk(traced_server) as client:
        chunks = list(
            client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": "one two three four"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    (span,) = spans_for(receiver, model)
    assert span.name == "POST /v1/chat/completions"
    assert span.attributes["mokku.stream.outcome"] == "completed"
    assert span.attributes["mokku.stream.events"] == len(chunks) + 1  # and [DONE]
    usage = chunks[-1].usage
    assert usage is not None
    assert span.attributes["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert span.attributes["gen_ai.response.finish_reasons"] == ["stop"]


def test_disconnected_stream_span(traced_server: LiveServer, receiver: GrpcReceiver) -> None:
    model = f"trace-disconnect-{traced_server.kind}"
    body = json.dumps(
        {"model": model, "messages": [{"role": "user", "content": "x " * 50000}], "stream": True}
    )
    with socket.create_connection(("127.0.0.1", traced_server.port)) as sock:
        sock.sendall(
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
        )
        sock.recv(1000)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    (span,) = spans_for(receiver, model)
    assert span.attributes["mokku.stream.outcome"] == "client_disconnected"
    assert "gen_ai.usage.output_tokens" not in span.attributes


def test_a_stream_closed_before_its_first_byte_ends_its_span(
    traced_server: LiveServer, receiver: GrpcReceiver
) -> None:
    model = f"trace-early-close-{traced_server.kind}"
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "x"}], "stream": True})
    with socket.create_connection(("127.0.0.1", traced_server.port)) as sock:
        sock.sendall(
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"X-Mokku-Latency-Ms: 60000\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode()
        )
        time.sleep(0.3)  # served, and waiting a minute for its first token
    (span,) = spans_for(receiver, model)
    assert span.attributes["mokku.stream.outcome"] == "client_disconnected"
    assert span.attributes["mokku.stream.events"] == 0


def test_embeddings_and_completions_spans(traced_server: LiveServer, receiver: GrpcReceiver) -> None:
    model = f"trace-embed-{traced_server.kind}"
    with sdk(traced_server) as client:
        client.embeddings.create(model=model, input=["a", "b"])
        client.completions.create(model=model, prompt="legacy")
    spans = spans_for(receiver, model, 2)
    by_name = {s.name: s for s in spans}
    embed = by_name["POST /v1/embeddings"]
    assert embed.attributes["gen_ai.operation.name"] == "embeddings"
    assert embed.attributes["gen_ai.usage.input_tokens"] == 2
    legacy = by_name["POST /v1/completions"]
    assert legacy.attributes["gen_ai.operation.name"] == "text_completion"
    assert legacy.attributes["gen_ai.response.id"].startswith("cmpl-")


def test_error_status_and_fault_event(traced_server: LiveServer, receiver: GrpcReceiver) -> None:
    status, _, _ = request_json(
        "POST",
        traced_server.url + "/v1/chat/completions",
        {"model": "credit-error", "messages": [{"role": "user", "content": "x"}]},
    )
    assert status == 402
    spans = receiver.wait_for(
        lambda spans: any(s.attributes.get("gen_ai.request.model") == "credit-error" for s in spans)
    )
    span = [s for s in spans if s.attributes.get("gen_ai.request.model") == "credit-error"][-1]
    assert span.attributes["http.status_code"] == 402
    assert span.status_code == STATUS_CODE_ERROR
    assert "insufficient_quota" in span.status_message
    assert span.attributes["error.type"] == "insufficient_quota"
    assert span.attributes["mokku.fault"] == "credit"
    assert ("mokku.fault", {"mokku.fault.name": "credit"}) in span.events


def test_route_templates_health_and_secrets(traced_server: LiveServer, receiver: GrpcReceiver) -> None:
    marker = f"trace-route-{traced_server.kind}"
    headers = {"Authorization": f"Bearer {SECRET_KEY}", "X-Request-Id": marker}
    request("GET", traced_server.url + f"/v1/models/ft:gpt-4o:{marker}", headers=headers)
    request("GET", traced_server.url + "/health", headers={"X-Request-Id": marker + "-health"})
    request("GET", traced_server.url + "/v1/nope/" + marker, headers={"X-Request-Id": marker + "-404"})

    def by_request_id(spans: List[ReceivedSpan], value: str) -> List[ReceivedSpan]:
        return [s for s in spans if s.attributes.get("http.request.header.x_request_id") == [value]]

    spans = receiver.wait_for(lambda s: by_request_id(s, marker) and by_request_id(s, marker + "-404"))
    (model_span,) = by_request_id(spans, marker)
    assert model_span.name == "GET /v1/models/{model}"
    assert model_span.attributes["http.route"] == "/v1/models/{model}"
    assert model_span.attributes["http.request.header.authorization"] == ["[REDACTED]"]
    (missing,) = by_request_id(spans, marker + "-404")
    assert missing.name == "GET"
    time.sleep(0.5)
    assert not by_request_id(receiver.spans, marker + "-health")


def test_credentials_in_the_query_string_are_redacted(
    traced_server: LiveServer, receiver: GrpcReceiver
) -> None:
    model = f"trace-query-key-{traced_server.kind}"
    status, _, _ = request_json(
        "POST",
        traced_server.url
        + f"/v1/chat/completions?api-version=2024-10-21&api-key={SECRET_KEY}&key={SECRET_KEY}",
        {"model": model, "messages": [{"role": "user", "content": "x"}]},
    )
    assert status == 200
    (span,) = spans_for(receiver, model)
    recorded = json.dumps(span.attributes)
    assert SECRET_KEY not in recorded
    assert "api-key=REDACTED" in recorded and "api-version=2024-10-21" in recorded


def test_http_protobuf_protocol() -> None:
    receiver = HttpReceiver()
    env = tracing_env(
        receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf", OTEL_SERVICE_NAME="mock-llm"
    )
    server = LiveServer("module", env=env)
    try:
        with sdk(server) as client:
            client.chat.completions.create(model="trace-http", messages=[{"role": "user", "content": "x"}])
        (span,) = spans_for(receiver, "trace-http")  # type: ignore[arg-type]
        assert span.name == "POST /v1/chat/completions"
        assert span.resource["service.name"] == "mock-llm"
        assert receiver.paths[0] == "/v1/traces"
        assert "tracing on: OTLP http/protobuf" in server.output()
    finally:
        server.close()
        receiver.stop()


# Requests traced before SIGTERM: a few export batches' worth of spans for the shutdown to flush.
QUEUED_REQUESTS = 100
# How long SIGTERM may take to stop a server whose collector does not answer. Stopping bounds its
# span flush to about 2 s; unbounded, with the export timeout these tests set (EXPORT_TIMEOUT), the
# exporter's retries (1, 2, 4, 8 and 16 s of backoff) would hold the exit up for 25 s at the very
# least, and a silent collector for ten minutes: the bound holds however slow the machine.
QUICK_EXIT_SECONDS = 20.0
EXPORT_TIMEOUT = "600"


def traced_requests(server: LiveServer, model: str) -> None:
    for i in range(QUEUED_REQUESTS):
        status, _, _ = request_json(
            "POST",
            server.url + "/v1/chat/completions",
            {"model": model, "messages": [{"role": "user", "content": f"n{i}"}]},
        )
        assert status == 200


def timed_stop(server: LiveServer) -> float:
    started = time.monotonic()
    assert server.stop(signal.SIGTERM) == 0
    return time.monotonic() - started


@pytest.mark.parametrize("kind", ["module", "gunicorn"])
def test_spans_are_flushed_on_sigterm(kind: str, receiver: GrpcReceiver) -> None:
    env = tracing_env(receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY="600000")
    server = LiveServer(kind, env=env)
    try:
        model = f"trace-flush-{kind}"
        traced_requests(server, model)
        time.sleep(0.3)
        assert not [s for s in receiver.spans if s.attributes.get("gen_ai.request.model") == model]
        assert timed_stop(server) < QUICK_EXIT_SECONDS
        # The server has exited: whatever it sent, the receiver has taken.
        flushed = [s for s in receiver.spans if s.attributes.get("gen_ai.request.model") == model]
        assert len(flushed) == QUEUED_REQUESTS
        assert "queued spans dropped" not in server.output()
    finally:
        server.close()


@pytest.mark.parametrize("collector", ["refusing", "silent"])
@pytest.mark.parametrize("kind", ["module", "gunicorn"])
def test_sigterm_is_quick_when_the_collector_does_not_answer(kind: str, collector: str) -> None:
    """Whether the exporter is between retries or waiting on a call when SIGTERM comes."""
    silent = SilentPort() if collector == "silent" else None
    endpoint = silent.endpoint if silent else f"http://127.0.0.1:{free_port()}"
    server = LiveServer(kind, env=tracing_env(endpoint, OTEL_EXPORTER_OTLP_TIMEOUT=EXPORT_TIMEOUT))
    try:
        traced_requests(server, "gpt-4o")
        time.sleep(0.3)  # the exporter has started on them
        assert timed_stop(server) < QUICK_EXIT_SECONDS
        assert "queued spans dropped" in server.output()
        assert "Traceback" not in server.output()
    finally:
        server.close()
        if silent:
            silent.close()


@pytest.mark.parametrize("kind", ["module", "gunicorn"])
def test_unreachable_collector_does_not_hurt_clients(kind: str) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    # The exporter retries a collector that refuses with backoff (1, 2, 4, 8 and 16 s, 20% jitter)
    # within its timeout, here ten minutes: an export on the request path would hold a request for
    # 25 s at the very least, and the client gives up after 15.
    server = LiveServer(kind, env=tracing_env(closed, OTEL_EXPORTER_OTLP_TIMEOUT="600"))
    try:
        with openai.OpenAI(
            base_url=server.url + "/v1", api_key=SECRET_KEY, max_retries=0, timeout=15
        ) as client:
            for i in range(200):
                completion = client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": f"n{i}"}]
                )
                assert completion.choices[0].message.content == f"n{i}"
        assert server.stop() == 0
    finally:
        server.close()


def test_sdk_disabled_exports_nothing() -> None:
    receiver = GrpcReceiver()
    server = LiveServer("module", env=tracing_env(receiver.endpoint, OTEL_SDK_DISABLED="true"))
    try:
        with sdk(server) as client:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert server.stop() == 0
        time.sleep(0.5)
        assert receiver.requests == 0
        assert "tracing off: OTEL_SDK_DISABLED=true" in server.output()
    finally:
        server.close()
        receiver.stop()


@pytest.mark.parametrize("kind", ["module", "gunicorn"])
def test_no_endpoint_means_tracing_off_said_once(kind: str) -> None:
    server = LiveServer(kind, workers=2)
    try:
        request("GET", server.url + "/v1/models")
        assert server.stop() == 0
        assert server.output().count("tracing off: set OTEL_EXPORTER_OTLP_ENDPOINT") == 1
    finally:
        server.close()


def test_message_content_capture_is_opt_in(receiver: GrpcReceiver) -> None:
    env = tracing_env(receiver.endpoint, OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="true")
    server = LiveServer("module", env=env)
    try:
        with sdk(server) as client:
            client.chat.completions.create(
                model="trace-capture", messages=[{"role": "user", "content": "visible text"}]
            )
        (span,) = spans_for(receiver, "trace-capture")
        assert json.loads(span.attributes["gen_ai.input.messages"]) == [
            {"role": "user", "content": "visible text"}
        ]
        reply = json.loads(span.attributes["gen_ai.output.messages"])
        assert reply[0]["content"] == "visible text"
        assert SECRET_KEY not in json.dumps(span.attributes)
    finally:
        server.close()
