"""Simulated failures: the one place that decides whether a request fails on purpose.

Every generation endpoint calls ``check`` once, after validating the model
field and before producing any output, so a simulated error is always a
whole HTTP error response, never a broken stream.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

from opentelemetry.trace import Span

from . import errors, telemetry

_BY_MODEL: Dict[str, Callable[[], errors.APIError]] = {
    # The seed's quota simulation: 402, unlike the real API's 429, kept as users rely on it.
    "credit-error": lambda: errors.insufficient_quota(402),
}

SIMULATION_MODELS: Tuple[str, ...] = tuple(_BY_MODEL)


def check(model: str, span: Optional[Span] = None) -> None:
    """Raise the simulated error that ``model`` asks for, if any, noting it on the span."""
    make = _BY_MODEL.get(model)
    if make is not None:
        telemetry.record_fault(span, model)
        raise make()
