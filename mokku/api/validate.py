"""Small checks for request fields that raise a 400 naming the field, worded as the real API.

Each takes the field's value and its ``param`` path (e.g. ``messages[0].role``)
and returns the value when it is acceptable. ``None`` means "not sent" for the
optional fields, as the API's fields are nullable.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

from mokku import errors
from mokku.errors import APIError, json_type


def missing(param: str) -> APIError:
    return errors.invalid_request(
        f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
    )


def wrong_type(param: str, expected: str, value: Any) -> APIError:
    return errors.invalid_request(
        f"Invalid type for '{param}': expected {expected}, but got {json_type(value)} instead.",
        param,
        "invalid_type",
    )


def invalid_value(param: str, value: Any, supported: Sequence[str]) -> APIError:
    return errors.invalid_request(
        f"Invalid value: '{value}'. Supported values are: {_quoted(supported, 'and')}.",
        param,
        "invalid_value",
    )


def required(body: Mapping[str, Any], name: str, param: Optional[str] = None) -> Any:
    value = body.get(name)
    if value is None:
        raise missing(param or name)
    return value


def required_string(body: Mapping[str, Any], name: str, param: Optional[str] = None) -> str:
    value = required(body, name, param)
    if not isinstance(value, str):
        raise wrong_type(param or name, "a string", value)
    return value


def string(value: Any, param: str) -> Optional[str]:
    if value is not None and not isinstance(value, str):
        raise wrong_type(param, "a string", value)
    return value


def identifier(value: Any, param: str) -> Optional[str]:
    """An id the client names, to be looked up or kept: a string the stores can hold (UTF-8, so
    without the lone surrogates a JSON ``\\ud800`` escape can write)."""
    if string(value, param) is not None:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise errors.invalid_request(
                f"Invalid '{param}': an id cannot hold a lone surrogate.", param, "invalid_value"
            ) from None
    return value


def boolean(value: Any, param: str) -> Optional[bool]:
    if value is not None and not isinstance(value, bool):
        raise wrong_type(param, "a boolean", value)
    return value


def obj(value: Any, param: str) -> Optional[Dict[str, Any]]:
    if value is not None and not isinstance(value, dict):
        raise wrong_type(param, "an object", value)
    return value


Check = Callable[[Any, str], Any]


def one_of(*values: str, listed: bool = False) -> Check:
    """A string field's check: one of ``values``; ``listed``: a value of another type is refused
    naming them (``expected one of 'auto' or 'disabled'``), as the real API does for some fields."""
    expected = f"one of {either(values)}" if listed else "a string"

    def check(value: Any, param: str) -> Any:
        if value is None:
            return value
        if not isinstance(value, str):
            raise wrong_type(param, expected, value)
        if value not in values:
            raise invalid_value(param, value, values)
        return value

    return check


def fields(
    value: Mapping[str, Any], param: str, required: Sequence[str], checks: Mapping[str, Check]
) -> None:
    """An object's fields: the ``required`` present, each one sent passing its check."""
    for name in required:
        if value.get(name) is None:
            raise missing(f"{param}.{name}")
    for name, check in checks.items():
        if name in value:
            check(value[name], f"{param}.{name}")


def object_of(required: Sequence[str] = (), **checks: Check) -> Check:
    """An object field's check: ``fields`` of it, once it is an object."""

    def check(value: Any, param: str) -> Any:
        if obj(value, param) is not None:
            fields(value, param, required, checks)
        return value

    return check


def too_long(param: str, maximum: int, length: int) -> APIError:
    return errors.invalid_request(
        f"Invalid '{param}': string too long. Expected a string with maximum length {maximum}, "
        f"but got a string with length {length} instead.",
        param,
        "string_above_max_length",
    )


_FUNCTION_NAME = re.compile(r"[a-zA-Z0-9_-]+")
MAX_FUNCTION_NAME = 64


def function_name(value: Any, param: str) -> str:
    """A function's (or custom tool's) name: what the model can write back, as the API checks it."""
    name = string(value, param) or ""
    if not name:
        raise errors.invalid_request(
            f"Invalid '{param}': empty string. Expected a string with minimum length 1, but got an empty "
            "string instead.",
            param,
            "empty_string",
        )
    if len(name) > MAX_FUNCTION_NAME:
        raise too_long(param, MAX_FUNCTION_NAME, len(name))
    if not _FUNCTION_NAME.fullmatch(name):
        raise errors.invalid_request(
            f"Invalid '{param}': string does not match pattern. Expected a string that matches the "
            "pattern '^[a-zA-Z0-9_-]+$'.",
            param,
            "invalid_value",
        )
    return name


def short_string(length: int) -> Check:
    """A string field's check: at most ``length`` characters."""

    def check(value: Any, param: str) -> Any:
        if string(value, param) is not None and len(value) > length:
            raise too_long(param, length, len(value))
        return value

    return check


def array_of(check: Check) -> Check:
    """An array field's check: each item passes ``check``."""

    def check_items(value: Any, param: str) -> Any:
        for index, item in enumerate(array(value, param) or ()):
            check(item, f"{param}[{index}]")
        return value

    return check_items


def options(body: Mapping[str, Any], checks: Mapping[str, Check]) -> None:
    """Check the fields of ``checks`` a request sent (the fields only passed along, read nowhere
    else): a request sending none costs one set test."""
    if body.keys().isdisjoint(checks):
        return
    for name, check in checks.items():
        if name in body:
            check(body[name], name)


def array(
    value: Any, param: str, min_length: int = 0, max_length: Optional[int] = None, expected: str = "an array"
) -> Optional[List[Any]]:
    """``expected``: what the type error says the array holds (``an array of objects``)."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise wrong_type(param, expected, value)
    if len(value) < min_length:
        if not value:
            raise errors.invalid_request(
                f"Invalid '{param}': empty array. Expected an array with minimum length {min_length}, "
                "but got an empty array instead.",
                param,
                "empty_array",
            )
        raise errors.invalid_request(
            f"Invalid '{param}': array too short. Expected an array with minimum length {min_length}, "
            f"but got an array with length {len(value)} instead.",
            param,
            "array_below_min_length",
        )
    if max_length is not None and len(value) > max_length:
        raise errors.invalid_request(
            f"Invalid '{param}': array too long. Expected an array with maximum length {max_length}, "
            f"but got an array with length {len(value)} instead.",
            param,
            "array_above_max_length",
        )
    return value


def _range(value: Any, param: str, kind: str, minimum: Any, maximum: Any) -> Any:
    if minimum is not None and value < minimum:
        raise errors.invalid_request(
            f"Invalid '{param}': {kind} below minimum value. Expected a value >= {minimum}, "
            f"but got {value} instead.",
            param,
            f"{kind}_below_min_value",
        )
    if maximum is not None and value > maximum:
        raise errors.invalid_request(
            f"Invalid '{param}': {kind} above maximum value. Expected a value <= {maximum}, "
            f"but got {value} instead.",
            param,
            f"{kind}_above_max_value",
        )
    return value


def integer(
    value: Any, param: str, minimum: Optional[int] = None, maximum: Optional[int] = None
) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise wrong_type(param, "an integer", value)
    return _range(value, param, "integer", minimum, maximum)


def number(
    value: Any, param: str, minimum: Optional[float] = None, maximum: Optional[float] = None
) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise wrong_type(param, "a decimal", value)
    return _range(value, param, "decimal", minimum, maximum)


def known_params(names: str, **members: str) -> Dict[str, Optional[frozenset]]:
    """An operation's top-level parameters for ``MOKKU_STRICT``, with the members of the objects whose
    unknown members the real API refuses too (``None``: not looked into)."""
    known: Dict[str, Optional[frozenset]] = dict.fromkeys(names.split())
    for name, listed in members.items():
        known[name] = frozenset(listed.split())
    return known


def reject_unknown(
    body: Mapping[str, Any], known: Mapping[str, Optional[frozenset]], required: Sequence[str] = ()
) -> None:
    """``MOKKU_STRICT``: refuse parameters the real API does not know, as it does: a missing
    ``required`` one first, then an unknown key, then an unknown member of a known object."""
    for name in required:
        if name not in body:
            raise missing(name)
    for name in body:
        if name not in known:
            raise _unknown(name, name, known.keys() - body.keys())
    for name, members in known.items():
        value = body.get(name)
        if members is not None and isinstance(value, dict):
            for member in value:
                if member not in members:
                    raise _unknown(f"{name}.{member}", member, members - value.keys())


def _unknown(param: str, name: str, candidates: Iterable[str]) -> APIError:
    """Suggesting the known names within two edits of ``name`` that the body has not sent, nearest
    first."""
    near = sorted((edits, candidate) for candidate in candidates if (edits := _edits(name, candidate)) <= 2)
    message = f"Unknown parameter: '{param}'."
    if near:
        message += f" Did you mean {either([candidate for _, candidate in near])}?"
    return errors.invalid_request(message, param, "unknown_parameter")


def abbreviated(name: str) -> str:
    """A long name as the real API shortens it inside some messages: ``'pre..._id'``."""
    return f"{name[:3]}...{name[-3:]}" if len(name) > 16 else name


def either(names: Sequence[str]) -> str:
    """Names quoted as the real API lists alternatives: 'a' or 'b'; 'a', 'b', or 'c'."""
    return _quoted(names, "or")


def _quoted(names: Sequence[str], conjunction: str) -> str:
    """'a' and 'b'; 'a', 'b', and 'c' (with ``conjunction`` ``and``), as the real API lists names."""
    listed = [f"'{name}'" for name in names]
    if len(listed) <= 2:
        return f" {conjunction} ".join(listed)
    return ", ".join(listed[:-1]) + f", {conjunction} " + listed[-1]


def _edits(one: str, other: str, most: int = 2) -> int:
    """Levenshtein distance, or ``most + 1`` once it is past ``most`` (so a long name costs nothing)."""
    if abs(len(one) - len(other)) > most:
        return most + 1
    previous = list(range(len(other) + 1))
    for i, char in enumerate(one, 1):
        current = [i]
        for j, other_char in enumerate(other, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char != other_char)))
        if min(current) > most:
            return most + 1
        previous = current
    return previous[-1]
