"""schemathesis hooks for the contract test (``SCHEMATHESIS_HOOKS``): leave out requests naming a fault
model that breaks the wire on purpose (a 30 s stall or timeout, a reset, half an event, a cut
stream), which the server lists and a stateful run can pick from that list."""

from __future__ import annotations

from typing import Any

import schemathesis

from mokku.simulation.faults import model_name

WIRE_BREAKING = tuple(
    model_name(fault)
    for fault in ("stream_stall", "stream_malformed", "stream_drop", "stream_truncated", "timeout")
)


def names_wire_breaking(value: Any) -> bool:
    if isinstance(value, str):
        return any(name in value for name in WIRE_BREAKING)
    if isinstance(value, dict):
        return any(names_wire_breaking(item) for item in value.values())
    if isinstance(value, list):
        return any(names_wire_breaking(item) for item in value)
    return False


@schemathesis.hook
def filter_case(ctx: Any, case: Any) -> bool:
    return not any(names_wire_breaking(part) for part in (case.path_parameters, case.query, case.body))
