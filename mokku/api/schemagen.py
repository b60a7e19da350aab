"""A JSON value that validates against a JSON Schema, made deterministically from the echo text.

Used for tool-call arguments, structured outputs (``response_format`` json_schema) and the
Responses API. Strings carry the echo text where the schema lets them; every other choice is
fixed (the first enum value, the smallest number in range, one array item), so the same request
always gets the same document. Supported: ``type`` (one or a list), ``properties``,
``required``, ``additionalProperties``, ``minProperties``, ``items``, ``prefixItems``,
``minItems``/``maxItems``, ``uniqueItems``, ``enum``, ``const``, ``anyOf``/``oneOf``/``allOf``,
``$ref`` to ``$defs``/``definitions`` (recursion stops at optional or empty branches),
``minLength``/``maxLength``, ``pattern`` (best effort: the text, then simple candidates),
``format`` (``date-time``, ``date``, ``time``, ``email``, ``uuid``, ``uri``, ``hostname``,
``ipv4``), ``minimum``/``maximum``/``exclusiveMinimum``/``exclusiveMaximum``/``multipleOf``,
and OpenAPI's ``nullable``. A schema it cannot satisfy raises ``SchemaError``: never an invalid
document.
"""

from __future__ import annotations

import math
import re
import uuid
from typing import Any, Dict, List, Optional

MAX_DEPTH = 12
_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00Z",
    "email": "echo@example.com",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
}
_PATTERN_CANDIDATES = ("a", "A", "0", "echo", "abc", "ABC", "123", "a1", "A1", "aaa", "x-1", "")
_TYPE_ORDER = ("object", "array", "string", "integer", "number", "boolean", "null")


class SchemaError(ValueError):
    """The schema cannot be satisfied (or uses something this generator cannot honour)."""


def generate(schema: Any, text: str) -> Any:
    """A value valid against ``schema``, with strings taken from ``text`` where possible."""
    try:
        return _Generator(schema, text or "echo").value(schema, 0, 0)
    except SchemaError:
        raise
    except (TypeError, AttributeError, KeyError, IndexError, ValueError, RecursionError, re.error) as exc:
        # Arbitrary JSON is not always a schema: say so instead of failing the request.
        raise SchemaError(f"not a schema mokku can use ({type(exc).__name__}: {exc})") from None


class _Generator:
    def __init__(self, root: Any, text: str) -> None:
        self.root = root
        self.text = text

    def resolve(self, ref: str) -> Any:
        if not ref.startswith("#"):
            raise SchemaError(f"only local $ref are supported, got {ref!r}")
        node = self.root
        for part in ref[1:].split("/")[1:] if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                raise SchemaError(f"$ref {ref!r} points nowhere")
            node = node[part]
        return node

    def value(self, schema: Any, depth: int, salt: int) -> Any:
        if depth > MAX_DEPTH:
            raise SchemaError("the schema nests too deep (or recurses with no way out)")
        if schema is True or schema == {}:
            return self.string({}, salt)
        if schema is False or not isinstance(schema, dict):
            raise SchemaError("a schema that admits nothing")
        if "$ref" in schema:
            target = self.resolve(schema["$ref"])
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            return self.value(_merge(target, rest) if rest else target, depth + 1, salt)
        if "allOf" in schema:
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                merged = _merge(merged, self.resolve(part["$ref"]) if "$ref" in part else part)
            return self.value(merged, depth + 1, salt)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                base = {k: v for k, v in schema.items() if k != key}
                last: Optional[SchemaError] = None
                for option in _prefer_non_null(schema[key]):
                    try:
                        return self.value(_merge(base, option) if base else option, depth + 1, salt)
                    except SchemaError as exc:
                        last = exc
                raise last or SchemaError(f"empty {key}")
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            if not schema["enum"]:
                raise SchemaError("an empty enum")
            options = schema["enum"]
            return self.text if self.text in options else options[salt % len(options)]
        kind = self.type_of(schema)
        return (
            getattr(self, kind)(schema, salt, depth)
            if kind in ("object", "array")
            else getattr(self, kind)(schema, salt)
        )

    def type_of(self, schema: Dict[str, Any]) -> str:
        declared = schema.get("type")
        types = declared if isinstance(declared, list) else [declared] if declared else []
        if schema.get("nullable") and types:
            types = [*types, "null"]
        if not types:
            if "properties" in schema or "required" in schema or "additionalProperties" in schema:
                return "object"
            if "items" in schema or "prefixItems" in schema:
                return "array"
            return "string"
        for kind in _TYPE_ORDER:
            if kind in types and (kind != "null" or len(types) == 1):
                return kind
        raise SchemaError(f"unknown type {declared!r}")

    # Scalars.

    def null(self, schema: Dict[str, Any], salt: int) -> None:
        return None

    def boolean(self, schema: Dict[str, Any], salt: int) -> bool:
        return salt % 2 == 0

    def integer(self, schema: Dict[str, Any], salt: int) -> int:
        low, low_strict, high, high_strict = _bounds(schema)
        lowest = None if low is None else (math.floor(low) + 1 if low_strict else math.ceil(low))
        highest = None if high is None else (math.ceil(high) - 1 if high_strict else math.floor(high))
        step = schema.get("multipleOf", 1)
        if not isinstance(step, (int, float)) or isinstance(step, bool) or step <= 0:
            raise SchemaError("multipleOf must be a number above 0")
        start = len(self.text) + salt
        if lowest is not None:
            start = max(start, lowest)
        if highest is not None:
            start = min(start, highest)
        for candidate in _near(start, lowest, highest):
            if (candidate / step).is_integer():
                return candidate
        raise SchemaError("no integer satisfies the bounds and multipleOf")

    def number(self, schema: Dict[str, Any], salt: int) -> float:
        if "multipleOf" in schema:
            step = schema["multipleOf"]
            if not isinstance(step, (int, float)) or isinstance(step, bool) or step <= 0:
                raise SchemaError("multipleOf must be a number above 0")
            low, low_strict, high, high_strict = _bounds(schema)
            first = 0 if low is None else math.floor(low / step) + (1 if low_strict or low / step % 1 else 0)
            value = max(first, round((len(self.text) + salt) / step) if low is None else first) * step
            if high is not None and (value > high or (high_strict and value == high)):
                raise SchemaError("no number satisfies the bounds and multipleOf")
            return float(value)
        low, low_strict, high, high_strict = _bounds(schema)
        value = len(self.text) + salt + 0.5
        if low is not None and (value < low or (low_strict and value == low)):
            value = low + 1 if high is None else (low + high) / 2
        if high is not None and (value > high or (high_strict and value == high)):
            value = high - 1 if low is None else (low + high) / 2
        if (low is not None and value < low) or (high is not None and value > high):
            raise SchemaError("no number satisfies the bounds")
        if (low_strict and value == low) or (high_strict and value == high):
            raise SchemaError("no number satisfies the exclusive bounds")
        return float(value)

    def string(self, schema: Dict[str, Any], salt: int) -> str:
        fmt = schema.get("format")
        if fmt == "uuid":
            base = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.text}#{salt}"))
        elif fmt == "uri":
            base = f"https://example.com/{salt}" if salt else "https://example.com/"
        elif fmt in _FORMATS:
            base = _FORMATS[fmt]
            if salt and fmt == "email":
                base = f"echo{salt}@example.com"
        else:
            base = self.text if not salt else f"{self.text} {salt}"
        minimum = schema.get("minLength", 0)
        maximum = schema.get("maxLength")
        if maximum is not None and minimum > maximum:
            raise SchemaError("minLength is above maxLength")
        pattern = schema.get("pattern")
        candidates = [base] + ([] if fmt else [self.text, *_PATTERN_CANDIDATES])
        for candidate in candidates:
            fitted = _fit_length(candidate, minimum, maximum)
            if pattern is None or re.search(pattern, fitted):
                if fmt and fitted != base:
                    break  # a format value cannot be cut or padded
                return fitted
        raise SchemaError(f"no string satisfies {_describe(schema)}")

    # Containers.

    def object(self, schema: Dict[str, Any], salt: int, depth: int) -> Dict[str, Any]:
        properties = schema.get("properties", {})
        required = list(schema.get("required", []))
        result: Dict[str, Any] = {}
        for name, subschema in properties.items():
            if name in required:
                result[name] = self.value(subschema, depth + 1, salt)
            elif depth < MAX_DEPTH // 2:
                try:
                    result[name] = self.value(subschema, depth + 1, salt)
                except SchemaError:
                    pass  # optional: leave it out (recursive branches end here)
        extra = schema.get("additionalProperties", True)
        for name in required:
            if name not in result:
                if extra is False:
                    raise SchemaError(f"required property {name!r} is not allowed by additionalProperties")
                result[name] = self.value(extra if isinstance(extra, dict) else {}, depth + 1, salt)
        index = 0
        while len(result) < schema.get("minProperties", 0):
            if extra is False:
                raise SchemaError("minProperties cannot be met without additional properties")
            key = f"key{index}"
            if key not in result:
                result[key] = self.value(extra if isinstance(extra, dict) else {}, depth + 1, salt)
            index += 1
        if "maxProperties" in schema and len(result) > schema["maxProperties"]:
            raise SchemaError("maxProperties leaves no room for the properties")
        return result

    def array(self, schema: Dict[str, Any], salt: int, depth: int) -> List[Any]:
        prefix = schema.get("prefixItems", [])
        items = schema.get("items", True if not prefix else False)
        minimum = schema.get("minItems", 0)
        maximum = schema.get("maxItems")
        count = max(minimum, len(prefix), 1 if depth < MAX_DEPTH // 2 else 0)
        if maximum is not None:
            count = min(count, maximum)
        if maximum is not None and minimum > maximum:
            raise SchemaError("minItems is above maxItems")
        result: List[Any] = []
        for index in range(count):
            if index < len(prefix):
                result.append(self.value(prefix[index], depth + 1, salt + index))
            elif items is False:
                if index < minimum:
                    raise SchemaError("minItems needs more items than prefixItems allows")
                break
            else:
                result.append(self.value(items if isinstance(items, dict) else {}, depth + 1, salt + index))
        if schema.get("uniqueItems") and len({repr(v) for v in result}) != len(result):
            raise SchemaError("cannot make the items unique")
        if len(result) < minimum:
            raise SchemaError("minItems cannot be met")
        return result


def _prefer_non_null(options: List[Any]) -> List[Any]:
    is_null = [isinstance(o, dict) and o.get("type") == "null" for o in options]
    return [o for o, n in zip(options, is_null) if not n] + [o for o, n in zip(options, is_null) if n]


def _merge(first: Dict[str, Any], second: Dict[str, Any]) -> Dict[str, Any]:
    merged = dict(first)
    for key, value in second.items():
        if key == "properties":
            merged["properties"] = {**first.get("properties", {}), **value}
        elif key == "required":
            merged["required"] = list(dict.fromkeys([*first.get("required", []), *value]))
        elif (
            key in ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties") and key in first
        ):
            merged[key] = max(first[key], value)
        elif (
            key in ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties") and key in first
        ):
            merged[key] = min(first[key], value)
        else:
            merged[key] = value
    return merged


def _bounds(schema: Dict[str, Any]) -> tuple:
    """(low, low is exclusive, high, high is exclusive), from the four bound keywords."""
    low, low_strict = schema.get("minimum"), False
    high, high_strict = schema.get("maximum"), False
    exclusive_low, exclusive_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if _is_number(exclusive_low) and (low is None or exclusive_low >= low):
        low, low_strict = exclusive_low, True
    if _is_number(exclusive_high) and (high is None or exclusive_high <= high):
        high, high_strict = exclusive_high, True
    if low is not None and high is not None and (low > high or (low == high and (low_strict or high_strict))):
        raise SchemaError("minimum is above maximum")
    return low, low_strict, high, high_strict


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _near(start: int, low: Optional[int], high: Optional[int]) -> Any:
    """Integers from ``start`` outwards, within the bounds, for at most 10,000 steps."""
    for distance in range(10_000):
        for candidate in (start + distance, start - distance):
            if (low is None or candidate >= low) and (high is None or candidate <= high):
                yield candidate


def _fit_length(text: str, minimum: int, maximum: Optional[int]) -> str:
    if maximum is not None and len(text) > maximum:
        text = text[:maximum]
    if len(text) < minimum:
        text = text + "x" * (minimum - len(text))
    return text


def _describe(schema: Dict[str, Any]) -> str:
    parts = [
        f"{key}={schema[key]!r}" for key in ("pattern", "format", "minLength", "maxLength") if key in schema
    ]
    return ", ".join(parts) or "the schema"
