"""OpenTelemetry: every request is a SERVER span from ``OpenTelemetryMiddleware``."""

from __future__ import annotations

from typing import Any, Callable

from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware


def instrument(app: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap the WSGI app so each request is traced (a no-op until a tracer provider is set)."""
    return OpenTelemetryMiddleware(app)
