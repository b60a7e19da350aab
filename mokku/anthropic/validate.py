"""Request checks worded as Anthropic words them: ``<location>: <what is wrong>``.

A location is the path to the field, dotted, list positions as numbers (``messages.0.content``).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

from mokku import errors

_KINDS = {
    str: "a valid string",
    int: "a valid integer",
    float: "a valid number",
    bool: "a valid boolean",
    list: "a valid list",
    dict: "a valid dictionary",
}


def invalid(location: str, problem: str) -> errors.APIError:
    return errors.invalid_request(f"{location}: {problem}", location)


def required(body: Mapping[str, Any], name: str, location: str = "") -> Any:
    value = body.get(name)
    if value is None:
        raise invalid(location or name, "Field required")
    return value


def of_type(value: Any, kind: type, location: str) -> Any:
    """``value`` when it is of ``kind`` (None passes; an integer passes as a number)."""
    if value is None:
        return None
    ok = isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if not ok:
        raise invalid(location, f"Input should be {_KINDS[kind]}")
    return value


def text(value: Any, location: str) -> Optional[str]:
    result: Optional[str] = of_type(value, str, location)
    return result


def whole(value: Any, location: str, minimum: Optional[int] = None) -> Optional[int]:
    result: Optional[int] = of_type(value, int, location)
    if result is not None and minimum is not None and result < minimum:
        raise invalid(location, f"Input should be greater than or equal to {minimum}")
    return result


def number(value: Any, location: str, minimum: float, maximum: float) -> Optional[float]:
    result: Optional[float] = of_type(value, float, location)
    if result is not None and result < minimum:
        raise invalid(location, f"Input should be greater than or equal to {minimum:g}")
    if result is not None and result > maximum:
        raise invalid(location, f"Input should be less than or equal to {maximum:g}")
    return result


def listing(value: Any, location: str) -> Optional[List[Any]]:
    result: Optional[List[Any]] = of_type(value, list, location)
    return result


def mapping(value: Any, location: str) -> Optional[Dict[str, Any]]:
    result: Optional[Dict[str, Any]] = of_type(value, dict, location)
    return result


def one_of(value: Any, choices: Sequence[str], location: str) -> str:
    if value not in choices:
        quoted = [f"'{choice}'" for choice in choices]
        allowed = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
        raise invalid(location, f"Input should be {allowed}")
    return str(value)


def tag(value: Any, tags: Sequence[str], location: str) -> str:
    """``value`` when it is one of a closed union's ``type`` tags, worded as pydantic words a miss."""
    if value not in tags:
        expected = ", ".join(f"'{one}'" for one in tags)
        raise invalid(
            location,
            f"Input tag '{value}' found using 'type' does not match any of the expected tags: {expected}",
        )
    return str(value)


def element(value: Any, kind: type, location: str) -> Any:
    """A list's element of ``kind``: unlike a field left out, a null element is refused."""
    if value is None:
        raise invalid(location, f"Input should be {_KINDS[kind]}")
    return of_type(value, kind, location)
