"""Parse an answer strictly as an SDK's own response type: a missing required field or a field the
type does not know fails the test (the SDKs themselves accept both silently)."""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic

T = TypeVar("T")


def strict(kind: Any, data: Any) -> Any:
    """``data`` parsed as the SDK type ``kind`` (a model or a union), with nothing unknown in it."""
    try:
        value = pydantic.TypeAdapter(kind).validate_python(data)
    except pydantic.ValidationError as exc:
        raise AssertionError(f"not a valid {getattr(kind, '__name__', kind)}:\n{exc}\n{data}") from None
    _no_unknown(value, getattr(kind, "__name__", "answer"))
    return value


def _no_unknown(value: Any, path: str) -> None:
    if isinstance(value, pydantic.BaseModel):
        extra = value.__pydantic_extra__ or {}
        assert not extra, (
            f"{path} ({type(value).__name__}) has fields its type does not know: {sorted(extra)}"
        )
        for name in type(value).model_fields:
            _no_unknown(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _no_unknown(item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_unknown(item, f"{path}.{key}")
