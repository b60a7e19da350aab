"""Tracing in-process: when it is on, and what the spans carry (with the SDK's in-memory exporter)."""

from __future__ import annotations

import os
import time
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import webtest
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from mokku import config, telemetry
from mokku.server.app import App

from .otlp import GrpcReceiver, SilentPort
from .servers import free_port


@pytest.mark.parametrize(
    ("env", "on", "said"),
    [
        ({}, False, "tracing off: set OTEL_EXPORTER_OTLP_ENDPOINT"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4317"},
            True,
            "tracing on: OTLP grpc to http://jaeger:4317",
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            },
            True,
            "tracing on: OTLP http/protobuf",
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4317", "OTEL_SDK_DISABLED": "true"},
            False,
            "OTEL_SDK_DISABLED=true",
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4317", "OTEL_SDK_DISABLED": "false"},
            True,
            "tracing on",
        ),
    ],
)
def test_enabled_and_described(env: Dict[str, str], on: bool, said: str) -> None:
    assert telemetry.enabled(env) is on
    assert said in telemetry.describe(env)


def test_tracing_off_leaves_the_app_unwrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    core = App(config.load({}))
    assert telemetry.instrument(core) is core


@pytest.fixture
def traced() -> Iterator[Tuple[webtest.TestApp, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = OpenTelemetryMiddleware(App(config.load({})), tracer_provider=provider)
    yield webtest.TestApp(app), exporter
    provider.shutdown()


def only_span(exporter: InMemorySpanExporter) -> Any:
    (span,) = exporter.get_finished_spans()
    return span


def test_chat_span_attributes(traced: Tuple[webtest.TestApp, InMemorySpanExporter]) -> None:
    app, exporter = traced
    body = app.post_json(
        "/v1/chat/completions",
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "secret words"}], "n": 2, "stop": "x"},
    ).json
    span = only_span(exporter)
    assert span.name == "POST /v1/chat/completions"
    assert span.kind == SpanKind.SERVER
    attributes = dict(span.attributes)
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o"
    # The model the answer names: the snapshot the alias serves, as the conventions keep them apart.
    assert attributes["gen_ai.response.model"] == body["model"] == "gpt-4o-2024-08-06"
    assert attributes["gen_ai.response.id"] == body["id"]
    assert attributes["gen_ai.request.choice.count"] == 2
    assert attributes["gen_ai.request.stop_sequences"] == ("x",)
    assert attributes["gen_ai.response.finish_reasons"] == ("stop", "stop")
    assert attributes["gen_ai.usage.output_tokens"] == body["usage"]["completion_tokens"]
    assert "secret words" not in repr(attributes)


def test_messages_span_names_anthropic(traced: Tuple[webtest.TestApp, InMemorySpanExporter]) -> None:
    app, exporter = traced
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 50,
        "stop_sequences": ["x"],
        "messages": [{"role": "user", "content": "hi"}],
    }
    reply = app.post_json("/v1/messages", body, headers={"anthropic-version": "2023-06-01"}).json
    attributes = dict(only_span(exporter).attributes)
    assert attributes["gen_ai.provider.name"] == attributes["gen_ai.system"] == "anthropic"
    assert attributes["gen_ai.request.max_tokens"] == 50
    assert attributes["gen_ai.request.stop_sequences"] == ("x",)
    assert attributes["gen_ai.response.id"] == reply["id"]
    assert attributes["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert attributes["gen_ai.response.model"] == reply["model"] == "claude-sonnet-4-5-20250929"


def test_validation_error_sets_status(traced: Tuple[webtest.TestApp, InMemorySpanExporter]) -> None:
    app, exporter = traced
    app.post_json("/v1/embeddings", {"model": "m", "input": ""}, status=400)
    span = only_span(exporter)
    assert span.name == "POST /v1/embeddings"
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == "empty_string"


def test_stream_records_tokens_only_at_the_end(traced: Tuple[webtest.TestApp, InMemorySpanExporter]) -> None:
    app, exporter = traced
    app.post_json(
        "/v1/completions", {"model": "m", "prompt": "a b c", "stream": True, "encoding_format": None}
    )
    span = only_span(exporter)
    assert span.attributes["gen_ai.operation.name"] == "text_completion"
    assert span.attributes["mokku.stream.outcome"] == "completed"
    assert span.attributes["gen_ai.usage.output_tokens"] == 3


def test_a_responses_span_names_the_model_answering(
    traced: Tuple[webtest.TestApp, InMemorySpanExporter],
) -> None:
    app, exporter = traced
    body = app.post_json("/v1/responses", {"model": "gpt-4o", "input": "hi", "stream": True}).text
    span = only_span(exporter)
    assert span.attributes["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert '"model":"gpt-4o-2024-08-06"' in body


def _queued_spans(monkeypatch: pytest.MonkeyPatch, endpoint: str, count: int) -> List[str]:
    """Install, as ``setup`` does, a provider with the stock OTLP gRPC exporter (a ten-minute export
    timeout, with its retries), and end ``count`` spans that stay queued until shutdown."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TIMEOUT", raising=False)
    exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=600)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=600_000))
    monkeypatch.setattr(telemetry, "_provider", provider)
    monkeypatch.setattr(telemetry, "_provider_pid", os.getpid())
    monkeypatch.setattr(telemetry, "_span_exporter", exporter)
    names = [f"queued-{i}" for i in range(count)]
    tracer = provider.get_tracer("test")
    for name in names:
        tracer.start_span(name).end()
    return names


def test_shutdown_sends_every_queued_span(monkeypatch: pytest.MonkeyPatch) -> None:
    receiver = GrpcReceiver()
    try:
        names = _queued_spans(monkeypatch, receiver.endpoint, 100)
        assert not receiver.spans
        telemetry.shutdown()
        assert sorted(span.name for span in receiver.spans) == sorted(names)
    finally:
        receiver.stop()


def test_stop_sends_the_queued_spans_and_the_last_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both flushes run side by side, under one deadline, when a process stops."""
    receiver = GrpcReceiver()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "600000")  # only the last export
        monkeypatch.setattr(telemetry, "_meter_pid", None)
        histogram = telemetry.meter().create_histogram("mokku.test.stop", unit="s")
        histogram.record(0.5)
        names = _queued_spans(monkeypatch, receiver.endpoint, 10)
        telemetry.stop()
        assert sorted(span.name for span in receiver.spans) == sorted(names)
        (point,) = receiver.points("mokku.test.stop")
        assert point["count"] == 1 and point["sum"] == 0.5
        assert telemetry._meter_provider is None and telemetry._provider is None
    finally:
        receiver.stop()


@pytest.mark.parametrize("collector", ["refusing", "silent"])
def test_shutdown_is_bounded_when_the_collector_does_not_answer(
    collector: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    port = SilentPort() if collector == "silent" else None
    endpoint = port.endpoint if port else f"http://127.0.0.1:{free_port()}"
    try:
        _queued_spans(monkeypatch, endpoint, 100)
        started = time.monotonic()
        telemetry.shutdown(timeout_millis=300)
        # Unbounded, the exporter would retry (or wait on a silent collector) for ten minutes.
        assert time.monotonic() - started < 20
        assert "queued spans dropped" in caplog.text
    finally:
        if port:
            port.close()


def test_metrics_stay_off_otlp_when_its_exporter_is_none() -> None:
    """Jaeger takes traces only: the compose file sends spans there and keeps metrics off OTLP."""
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4317"}
    assert telemetry.metrics_enabled(endpoint) and telemetry.enabled(endpoint)
    traces_only = {**endpoint, "OTEL_METRICS_EXPORTER": "none"}
    assert not telemetry.metrics_enabled(traces_only) and telemetry.enabled(traces_only)
