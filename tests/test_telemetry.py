"""Tracing in-process: when it is on, and what the spans carry (with the SDK's in-memory exporter)."""

from __future__ import annotations

from typing import Any, Dict, Iterator, Tuple

import pytest
import webtest
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from mokku import config, telemetry
from mokku.server.app import App


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
    assert attributes["gen_ai.request.model"] == "gpt-4o"
    assert attributes["gen_ai.response.id"] == body["id"]
    assert attributes["gen_ai.request.choice.count"] == 2
    assert attributes["gen_ai.request.stop_sequences"] == ("x",)
    assert attributes["gen_ai.response.finish_reasons"] == ("stop", "stop")
    assert attributes["gen_ai.usage.output_tokens"] == body["usage"]["completion_tokens"]
    assert "secret words" not in repr(attributes)


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


def test_shared_attribute_encoding_sends_the_same_bytes(
    traced: Tuple[webtest.TestApp, InMemorySpanExporter], monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.exporter.otlp.proto.common._internal import trace_encoder
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    app, exporter = traced
    for text in ("one", "two", "one"):
        app.post_json(
            "/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}
        )
    app.post_json(
        "/v1/chat/completions",
        {"model": "m@server_error", "messages": [{"role": "user", "content": "x"}]},
        expect_errors=True,
    )  # a span with an event
    spans = exporter.get_finished_spans()
    stock = trace_encoder._encode_attributes
    monkeypatch.setattr(trace_encoder, "_encode_attributes", stock)  # restored after the test
    expected = encode_spans(spans).SerializeToString()
    telemetry.share_attribute_encoding()
    shared = trace_encoder._encode_attributes
    assert shared is not stock
    assert encode_spans(spans).SerializeToString() == expected
    assert encode_spans(spans).SerializeToString() == expected  # from the cache this time
    telemetry.share_attribute_encoding()  # twice: no second layer
    assert trace_encoder._encode_attributes is shared
    # A value the cache cannot hold (unhashable) is encoded the stock way.
    assert shared({"list": [1, 2]}) == stock({"list": [1, 2]})


def test_shared_attribute_encoding_passes_unknown_arguments_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.exporter.otlp.proto.common._internal import trace_encoder

    calls = []

    def newer_stock(attributes: Any, *more: Any, **options: Any) -> str:
        calls.append((attributes, more, options))
        return "stock"

    monkeypatch.setattr(trace_encoder, "_encode_attributes", newer_stock)
    telemetry.share_attribute_encoding()
    shared = trace_encoder._encode_attributes
    assert shared({"a": 1}, allow_null=True) == "stock"  # an argument it does not know: the stock way
    assert calls == [({"a": 1}, (), {"allow_null": True})]
    assert shared({"a": 1})[0].key == "a" and len(calls) == 1  # the usual call: from the cache
