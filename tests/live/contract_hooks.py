"""schemathesis hooks for the contract test (``SCHEMATHESIS_HOOKS``): leave out requests naming a fault
model that breaks the wire on purpose (a 30 s stall or timeout, a reset, half an event, a cut
stream) or answers a 5xx on purpose (``not_a_server_error`` fails every 5xx, documented or not),
which the server lists and a stateful run can pick from that list."""

from __future__ import annotations

from typing import Any

import schemathesis

from mokku.simulation.faults import model_name

_FAULTS = (
    "stream_stall",
    "stream_malformed",
    "stream_drop",
    "stream_truncated",
    "timeout",
    "server_error",
    "overloaded",
)
LEFT_OUT = (*(model_name(fault) for fault in _FAULTS), "@5")  # "@5": a status suffix, gpt-4o@503


def names_left_out(value: Any) -> bool:
    if isinstance(value, str):
        return any(name in value for name in LEFT_OUT)
    if isinstance(value, dict):
        return any(names_left_out(item) for item in value.values())
    if isinstance(value, list):
        return any(names_left_out(item) for item in value)
    return False


@schemathesis.hook
def filter_case(ctx: Any, case: Any) -> bool:
    return not any(names_left_out(part) for part in (case.path_parameters, case.query, case.body))
