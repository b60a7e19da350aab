"""OpenTelemetry tracing: a SERVER span per request, GenAI attributes, OTLP export.

Configured by the standard ``OTEL_*`` variables only. Tracing is on when an
OTLP endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) and ``OTEL_SDK_DISABLED`` is not
``true``; otherwise the middleware is not even installed, so tracing off costs
nothing. The SDK is set up once per process, after gunicorn forks (a worker
must not inherit the exporter thread of its parent).
Export runs in the SDK's background thread with a bounded queue: a slow or
missing collector never delays a response. On shutdown (SIGTERM to
``python -m mokku``, or a gunicorn worker's exit) the queued spans are
flushed, for 2 s at most (``SHUTDOWN_TIMEOUT_MILLIS``): a collector that does
not answer holds the exit up by about 2 s (2.5 s at the very most), whatever
the exporter's own timeout and retries, and the spans not sent are dropped.

API keys and other secret headers are never recorded. Message contents (the
request's messages and the reply) are recorded only when
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``, as the GenAI
semantic conventions ask; by default they are left out.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Sequence

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from mokku.config import ConfigError
from mokku.credentials import SECRET_WORDS, redact_query

log = logging.getLogger("mokku")

DEFAULT_SERVICE_NAME = "mokku"
# Health checks would drown the traces people look for.
UNTRACED_PATHS = frozenset(("/health", "/healthz"))
_SANITIZE_VAR = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"

_lock = threading.Lock()
_provider: Any = None
_provider_pid: Optional[int] = None
_span_exporter: Any = None


def enabled(env: Mapping[str, str] = os.environ) -> bool:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def describe(env: Mapping[str, str] = os.environ) -> str:
    """One line for the startup log saying where spans go, or why they go nowhere."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return "tracing off: OTEL_SDK_DISABLED=true"
    if not enabled(env):
        return "tracing off: set OTEL_EXPORTER_OTLP_ENDPOINT to export spans over OTLP"
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return f"tracing on: OTLP {_protocol(env)} to {endpoint}"


# The OTLP protocols the exporters speak, and the settings that name one or a time in seconds.
PROTOCOLS = ("grpc", "http/protobuf")
_PROTOCOL_VARS = (
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
)
_TIMEOUT_VARS = (
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
)


def check(env: Mapping[str, str] = os.environ) -> None:
    """At start, when spans or metrics go out over OTLP: the settings the exporters would trip on
    later, in every worker and with a traceback, or quietly take for another (a protocol mistyped),
    are refused with the reason (exit status 2)."""
    if not (enabled(env) or metrics_enabled(env)):
        return
    for name in _PROTOCOL_VARS:
        raw = env.get(name)
        if raw and raw.strip().lower() not in PROTOCOLS:
            raise ConfigError(f"{name} must be one of {', '.join(PROTOCOLS)}, got {raw!r}")
    for name in _TIMEOUT_VARS:
        raw = env.get(name)
        if raw:
            try:
                seconds = float(raw)
            except ValueError:
                seconds = -1.0
            if not 0 < seconds < math.inf:
                raise ConfigError(f"{name} must be a positive number, got {raw!r}")


def _protocol(env: Mapping[str, str]) -> str:
    value = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
    return value.strip().lower()


def instrument(app: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap the WSGI app in ``OpenTelemetryMiddleware`` when tracing is on; health checks bypass it."""
    if not enabled():
        return app
    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

    sanitize = [field for field in os.environ.get(_SANITIZE_VAR, "").split(",") if field.strip()]
    # The sanitizer searches each header name for these, as regular expressions.
    os.environ[_SANITIZE_VAR] = ",".join(sanitize + [word for word in SECRET_WORDS if word not in sanitize])
    traced = OpenTelemetryMiddleware(app)

    def traced_app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in UNTRACED_PATHS or path.startswith("/mokku/"):
            return app(environ, start_response)
        if _provider is None:
            setup()  # servers without a post-fork hook (plain gunicorn, other WSGI servers)
        return traced(environ, start_response)

    return traced_app


def setup() -> None:
    """Install the SDK's tracer provider and OTLP exporter in this process, once."""
    global _provider, _provider_pid, _span_exporter
    if not enabled() or _provider_pid == os.getpid():
        return
    with _lock:
        if _provider_pid == os.getpid():
            return
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create()
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
        exporter = _exporter()
        provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        _provider, _provider_pid, _span_exporter = provider, os.getpid(), exporter


def _exporter() -> Any:
    if _protocol(os.environ) == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter()


# How long stopping waits for queued spans to reach the collector.
SHUTDOWN_TIMEOUT_MILLIS = 2000
# Once told to stop, the exporter ends its retries and gRPC calls at once; an HTTP request in
# flight runs on, and is left behind (in a daemon thread) after this long.
_STOP_GRACE_SECONDS = 0.5


def shutdown(timeout_millis: int = SHUTDOWN_TIMEOUT_MILLIS) -> None:
    """Export every queued span, then stop the exporter: within about ``timeout_millis`` in all.

    ``provider.shutdown()`` exports what is queued, but the OTLP exporters retry a collector that
    does not answer with backoff for up to their export timeout (``OTEL_EXPORTER_OTLP_TIMEOUT``,
    10 s by default), and the SDK's flush timeouts do not interrupt them. So the flush runs in a
    daemon thread, and at the deadline the exporter is shut down: that ends its retries and a gRPC
    call in flight (an HTTP request in flight is left to that thread), and the spans not yet sent
    are dropped.
    """
    global _provider, _provider_pid, _span_exporter
    provider, exporter = _provider, _span_exporter
    if provider is None or _provider_pid != os.getpid():
        return
    _provider = _provider_pid = _span_exporter = None
    flushing = threading.Thread(target=provider.shutdown, name="mokku-tracing-shutdown", daemon=True)
    flushing.start()
    flushing.join(timeout_millis / 1000)
    if flushing.is_alive():
        log.warning(
            "tracing: spans still unsent %.1f s after stopping began (is the collector answering?); "
            "queued spans dropped",
            timeout_millis / 1000,
        )
        exporter.shutdown()
        flushing.join(_STOP_GRACE_SECONDS)


def metrics_enabled(env: Mapping[str, str] = os.environ) -> bool:
    """Whether an OTLP endpoint for metrics is set (``MOKKU_METRICS`` decides whether any are made),
    and not turned off (``OTEL_METRICS_EXPORTER=none``: the endpoint is a traces-only collector's)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_METRICS_EXPORTER", "").strip().lower() == "none":
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


_meter_provider: Any = None
_meter_pid: Optional[int] = None


def meter() -> Any:
    """This process's meter exporting over OTLP (``OTEL_METRIC_EXPORT_INTERVAL`` apart, 60 s by
    default), made once per process, after a fork. Its provider is mokku's own, not the global one:
    the WSGI middleware would otherwise record its HTTP metrics for every request too. Each process
    is its own instance (``service.instance.id``, ``process.pid``): gunicorn's workers send their
    own cumulative series, which a collector must not take for one."""
    global _meter_provider, _meter_pid
    with _lock:
        if _meter_pid != os.getpid():
            import uuid

            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
            from opentelemetry.sdk.resources import SERVICE_NAME, Resource

            resource = Resource.create()
            own: Dict[str, Any] = {"process.pid": os.getpid()}
            if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
                own[SERVICE_NAME] = DEFAULT_SERVICE_NAME
            if "service.instance.id" not in resource.attributes:
                own["service.instance.id"] = str(uuid.uuid4())
            reader = PeriodicExportingMetricReader(_metric_exporter())
            _meter_provider = MeterProvider(
                metric_readers=[reader], resource=resource.merge(Resource(own)), shutdown_on_exit=False
            )
            _meter_pid = os.getpid()
        return _meter_provider.get_meter("mokku")


def _metric_exporter() -> Any:
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL") or _protocol(os.environ)
    if protocol.strip().lower() == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as Grpc

        return Grpc()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as Http

    return Http()


def stop(timeout_millis: int = SHUTDOWN_TIMEOUT_MILLIS) -> None:
    """When the process stops: queued spans and the last metrics sent side by side, within about
    ``timeout_millis`` for both (one after the other, a collector that does not answer held the
    stop up twice as long)."""
    began = time.monotonic()
    flushing = _flush_meter(timeout_millis)
    shutdown(timeout_millis)
    if flushing is not None:
        flushing.join(max(0.0, timeout_millis / 1000 + _STOP_GRACE_SECONDS - (time.monotonic() - began)))


def _flush_meter(timeout_millis: int) -> Optional[threading.Thread]:
    """Send the last figures, in a daemon thread (returned) that gives up after ``timeout_millis``."""
    global _meter_provider, _meter_pid
    provider = _meter_provider
    if provider is None or _meter_pid != os.getpid():
        return None
    _meter_provider = _meter_pid = None
    flushing = threading.Thread(
        target=provider.shutdown,
        kwargs={"timeout_millis": timeout_millis},
        name="mokku-metrics-shutdown",
        daemon=True,
    )
    flushing.start()
    return flushing


def current_span() -> Optional[Span]:
    """The request's span when it is recording, else ``None`` (so callers skip attribute work)."""
    span = trace.get_current_span()
    return span if span.is_recording() else None


_URL_ATTRIBUTES = ("http.url", "http.target", "url.query", "url.full")


def redact_url(span: Optional[Span], query: str) -> None:
    """Mask credentials sent in the query string (``?api-key=``, ``?key=``) where the middleware
    recorded the URL."""
    if span is None or not query:
        return
    redacted = redact_query(query)
    if redacted == query:
        return
    recorded = getattr(span, "attributes", None) or {}
    for name in _URL_ATTRIBUTES:
        value = recorded.get(name)
        if isinstance(value, str) and query in value:
            span.set_attribute(name, value.replace(query, redacted))


def record_route(span: Optional[Span], method: str, template: Optional[str]) -> None:
    """Name the span after the route template, never the raw path (ids would explode cardinality)."""
    if span is None:
        return
    if template is None:
        span.update_name(method)
    else:
        span.update_name(f"{method} {template}")
        span.set_attribute("http.route", template)


def record_error(
    span: Optional[Span], status: int, error_type: str, code: Optional[str], message: str
) -> None:
    if span is None:
        return
    span.set_attribute("error.type", code or error_type)
    span.set_status(Status(StatusCode.ERROR, f"{status} {error_type}: {message}"))


def record_fault(span: Optional[Span], name: str) -> None:
    if span is not None:
        span.set_attribute("mokku.fault", name)
        span.add_event("mokku.fault", {"mokku.fault.name": name})


_REQUEST_PARAMS = (
    ("max_completion_tokens", "gen_ai.request.max_tokens"),
    ("max_tokens", "gen_ai.request.max_tokens"),
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
    ("seed", "gen_ai.request.seed"),
    ("n", "gen_ai.request.choice.count"),
)


def record_request(
    span: Optional[Span], operation: str, model: str, body: Mapping[str, Any], provider: str = "openai"
) -> None:
    """GenAI request attributes: the provider whose API was called, the operation, the model, and the
    sampling parameters that were sent."""
    if span is None:
        return
    # One set_attributes call: each attribute call takes the span's lock and validates anew.
    attributes: Dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": provider,
        "gen_ai.system": provider,  # the attribute's older name, which some backends still read
        "gen_ai.request.model": model,
    }
    for field, attribute in _REQUEST_PARAMS:
        value = body.get(field)
        if attribute not in attributes and isinstance(value, (int, float)) and not isinstance(value, bool):
            attributes[attribute] = value
    stop = body.get("stop", body.get("stop_sequences"))  # OpenAI's name, Anthropic's
    if isinstance(stop, str):
        attributes["gen_ai.request.stop_sequences"] = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        attributes["gen_ai.request.stop_sequences"] = stop
    encoding = body.get("encoding_format")
    if isinstance(encoding, str):
        attributes["gen_ai.request.encoding_formats"] = [encoding]
    span.set_attributes(attributes)


def record_response(
    span: Optional[Span],
    response_id: Optional[str],
    model: str,
    input_tokens: int,
    output_tokens: Optional[int] = None,
    finish_reasons: Sequence[str] = (),
) -> None:
    if span is None:
        return
    attributes: Dict[str, Any] = {"gen_ai.response.model": model, "gen_ai.usage.input_tokens": input_tokens}
    if response_id:
        attributes["gen_ai.response.id"] = response_id
    if output_tokens is not None:
        attributes["gen_ai.usage.output_tokens"] = output_tokens
    if finish_reasons:
        attributes["gen_ai.response.finish_reasons"] = list(finish_reasons)
    span.set_attributes(attributes)


# Opt-in, as the GenAI semantic conventions ask: message contents are sensitive.
_CAPTURE_CONTENT = (
    os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "").strip().lower() == "true"
)


def record_messages(span: Optional[Span], messages: Any, reply: Any) -> None:
    """The request's messages and the reply, only with OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true."""
    if span is None or not _CAPTURE_CONTENT:
        return
    span.set_attributes(
        {
            "gen_ai.input.messages": json.dumps(messages, ensure_ascii=False),
            "gen_ai.output.messages": json.dumps([reply], ensure_ascii=False),
        }
    )


def record_stream_end(span: Optional[Span], outcome: str, events: int) -> None:
    if span is not None:
        span.set_attributes({"mokku.stream.events": events, "mokku.stream.outcome": outcome})
