"""A request checked as Google's proto3-JSON parser checks it, before anything reads it.

Every nested message's names are looked up in ``fields.MESSAGES`` (lowerCamelCase or snake_case),
every scalar checked by proto3 JSON's rules (an int32 takes ``5``, ``5.0`` and ``"5"``, not ``1.5``
or ``true``; a bool only ``true``/``false``; bytes valid base64; an enum its names), null is
unset. Every violation is reported, in Google's words, joined by newlines, with the
``google.rpc.BadRequest`` ``fieldViolations`` Google sends. One pass over the body, nesting capped.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any, Dict, List, Optional, Tuple

from mokku import errors
from mokku.gemini.fields import CASE_INSENSITIVE_ENUMS, ENUMS, MESSAGES, ONEOFS, OPAQUE, SCALAR_TYPES, Field

MAX_DEPTH = 100  # messages inside messages (a schema's properties nest one level each)
# An error's size, whatever the body: the violations it lists, and the characters of a value it shows.
MAX_VIOLATIONS = 100
MAX_SHOWN = 1_000
INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_INTEGER = re.compile(r"-?[0-9]{1,20}")
_NUMBER = re.compile(r"-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|NaN|-?Infinity")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")
_DURATION = re.compile(r"-?[0-9]{1,12}(\.[0-9]{1,9})?s")
_TYPE = "type.googleapis.com/google.ai.generativelanguage.{version}.{name}"


def _snake(camel: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in camel)


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(word.capitalize() for word in rest)


def camel_keys(value: Any) -> Any:
    """``value`` with every object's keys in lowerCamelCase: one spelling of a request's part,
    whichever the client wrote, for what must not depend on it (its token count)."""
    if isinstance(value, dict):
        return {_camel(key): camel_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [camel_keys(item) for item in value]
    return value


# Each message's fields by either name: (the snake_case name errors use, the field).
_LOOKUP: Dict[str, Dict[str, Tuple[str, Field]]] = {
    message: {name: (_snake(camel), spec) for camel, spec in table.items() for name in (camel, _snake(camel))}
    for message, table in MESSAGES.items()
}


class Violations(errors.APIError):
    """400 listing every field the parser refused, each as a ``fieldViolations`` entry."""

    def __init__(self, found: List[Tuple[str, str]]) -> None:
        super().__init__(400, "\n".join(text for _, text in found), param=found[0][0] or None)
        self.found = found

    def details(self) -> List[Dict[str, Any]]:
        return [
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [
                    {"field": where, "description": text} if where else {"description": text}
                    for where, text in self.found
                ],
            }
        ]


def check(body: Dict[str, Any], request: str, version: str) -> None:
    """Raise ``Violations`` unless ``body`` parses as the message ``request``."""
    walk = _Walk(request, version)
    walk.message(body, request, "", 0)
    if walk.found:
        raise Violations(walk.found[:MAX_VIOLATIONS])
    if walk.unset:
        raise errors.invalid_request("".join(walk.unset))


def integer(value: Any) -> Optional[int]:
    """A checked int32/int64 field's value as an int (it may have come as ``5.0`` or ``"5"``)."""
    return None if value is None else int(value)


def number(value: Any) -> Optional[float]:
    """A checked float/double field's value as a float (it may have come as ``"0.5"``)."""
    return None if value is None else float(value)


def _at(path: str) -> str:
    return f" at '{path}'" if path else ""


class _Walk:
    def __init__(self, request: str, version: str) -> None:
        self.request = request
        self.version = version
        self.found: List[Tuple[str, str]] = []
        self.unset: List[str] = []  # required oneofs without a member, as Google's checks word them

    def message(self, body: Dict[str, Any], name: str, path: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise errors.invalid_request(
                f"* {self.request}.{path}: the request nests deeper than {MAX_DEPTH} levels\n", path
            )
        lookup = _LOOKUP[name]
        for key, value in body.items():
            entry = lookup.get(key)
            if entry is None:
                text = f'Invalid JSON payload received. Unknown name "{key}"{_at(path)}: Cannot find field.'
                self.found.append((path, text))
                continue
            if value is None:
                continue
            snake, spec = entry
            where = f"{path}.{snake}" if path else snake
            if isinstance(value, list) and not spec.repeated:
                self.found.append(
                    (
                        path,
                        f'Invalid JSON payload received. Unknown name "{key}"{_at(path)}: '
                        "Proto field is not repeating, cannot start list.",
                    )
                )
            elif isinstance(value, list):
                for index, item in enumerate(value):
                    self.value(item, spec, key, path, f"{where}[{index}]", depth)
            elif spec.map:
                if not isinstance(value, dict):
                    self.invalid(where, self.type_name(spec, key), value)
                    continue
                for index, item in enumerate(value.values()):
                    self.value(item, spec, key, path, f"{where}[{index}].value", depth)
            else:
                self.value(value, spec, key, path, where, depth)
        if name in ONEOFS:
            self.oneof(body, name, path)

    def oneof(self, body: Dict[str, Any], name: str, path: str) -> None:
        """One member of the message's oneof, no more (the second is refused), no less."""
        oneof, members = ONEOFS[name]
        lookup = _LOOKUP[name]
        first = None
        for key, value in body.items():
            if value is None or key not in lookup or _camel(lookup[key][0]) not in members:
                continue
            if first is not None:
                text = f"Invalid value at '{path}' (oneof), oneof field '{oneof}' is already set. Cannot set '{key}'"
                self.found.append((path, text))
                return
            first = key
        if first is None:
            where = f"{path}.{oneof}"
            self.unset.append(
                f"* {self.request}.{where}: required oneof field '{oneof}' must have one initialized field\n"
            )

    def value(self, value: Any, spec: Field, key: str, parent: str, where: str, depth: int) -> None:
        kind = spec.kind
        if kind == "json" or value is None:
            return
        if kind in MESSAGES or kind == OPAQUE:
            if isinstance(value, dict):
                if kind != OPAQUE:
                    self.message(value, kind, where, depth + 1)
            elif not (spec.text and isinstance(value, str)):
                self.invalid(where, self.type_name(spec, key), value)
            return
        if isinstance(value, dict):
            text = f"Invalid value{_at(parent)} ({_snake(key)}), Starting an object on a scalar field"
            self.found.append((where, text))
        elif isinstance(value, list):
            self.invalid(where, self.type_name(spec, key), value)
        elif kind in ENUMS:
            if not _enum(value, kind):
                self.invalid(where, self.type_name(spec, key), value)
        elif kind == "bytes" and isinstance(value, str) and not _base64(value):
            self.found.append(
                (
                    where,
                    f"Invalid value at '{where}' (TYPE_BYTES), Base64 decoding failed for {_shown(value)}",
                )
            )
        elif not _scalar(value, kind):
            self.invalid(where, SCALAR_TYPES[kind], value)

    def type_name(self, spec: Field, key: str) -> str:
        if spec.kind in SCALAR_TYPES:
            return SCALAR_TYPES[spec.kind]
        name = spec.kind if spec.kind != OPAQUE else key[0].upper() + key[1:]
        return _TYPE.format(version=self.version, name=name)

    def invalid(self, where: str, type_name: str, value: Any) -> None:
        self.found.append((where, f"Invalid value at '{where}' ({type_name}), {_shown(value)}"))


def _shown(value: Any) -> str:
    """A refused value as an error shows it: its JSON, cut at ``MAX_SHOWN`` characters."""
    try:
        shown = json.dumps(value, ensure_ascii=False)
    except (RecursionError, ValueError):
        shown = "..."
    return shown if len(shown) <= MAX_SHOWN else shown[:MAX_SHOWN] + "..."


def _enum(value: Any, kind: str) -> bool:
    """An enum by its name (the numbers proto3 JSON also allows are not taken: nothing sends them)."""
    if not isinstance(value, str):
        return False
    return (value.upper() if kind in CASE_INSENSITIVE_ENUMS else value) in ENUMS[kind]


def _base64(value: str) -> bool:
    return _BASE64.fullmatch(value) is not None and len(value.rstrip("=")) % 4 != 1


_LARGEST_DOUBLE = int(sys.float_info.max)


def _scalar(value: Any, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind in ("string", "bytes"):
        return isinstance(value, str)
    if kind == "duration":
        return isinstance(value, str) and _DURATION.fullmatch(value) is not None
    if isinstance(value, bool):
        return False
    if kind in INT_RANGES:
        if isinstance(value, str):
            if not _INTEGER.fullmatch(value):
                return False
            value = int(value)
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            return False
        low, high = INT_RANGES[kind]
        return isinstance(value, (int, float)) and low <= value <= high
    if isinstance(value, str):  # float, double
        return _NUMBER.fullmatch(value) is not None
    if isinstance(value, int):
        return abs(value) <= _LARGEST_DOUBLE  # a larger one does not convert
    return isinstance(value, float) and math.isfinite(value)  # 1e400 reads as infinity
