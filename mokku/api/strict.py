"""Structured Outputs' strict mode: the rules a ``strict: true`` schema must keep, which the real API
checks before it answers (a schema that breaks them is its 400, not a reply).

The root is an object; every object names ``additionalProperties: false`` and lists every property
in ``required``. The schema is walked without recursion, once, so any depth costs linear work.
"""

from __future__ import annotations

import collections
from typing import Any, Deque, Optional, Tuple

from mokku import errors

# Where schemas nest: each value a schema, or a list or map of them.
_ONE = ("items", "additionalProperties", "not")
_MANY = ("anyOf", "oneOf", "allOf", "prefixItems")
_NAMED = ("properties", "$defs", "definitions")


def violation(schema: Any) -> Optional[str]:
    """The first rule ``schema`` breaks, worded as the API words it, or None."""
    if not isinstance(schema, dict) or not _is_object(schema) or "anyOf" in schema:
        kind = schema.get("type") if isinstance(schema, dict) else None
        return f"schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{kind}\"'."
    queue: Deque[Tuple[Tuple[str, ...], Any]] = collections.deque([((), schema)])
    while queue:  # breadth first: the shallowest problem is the one reported
        context, node = queue.popleft()
        if not isinstance(node, dict):
            continue
        if _is_object(node):
            problem = _object_problem(node)
            if problem:
                return f"In context={context!r}, {problem}"
        for key in _ONE:
            if isinstance(node.get(key), dict):
                queue.append(((*context, key), node[key]))
        for key in _MANY:
            if isinstance(node.get(key), list):
                queue.extend(((*context, key, str(i)), item) for i, item in enumerate(node[key]))
        for key in _NAMED:
            if isinstance(node.get(key), dict):
                queue.extend(((*context, key, name), item) for name, item in node[key].items())
    return None


def check(schema: Any, what: str, name: Any, param: str, code: Optional[str]) -> None:
    """400 when a strict ``schema`` breaks a rule: ``what`` is ``function`` or ``response_format``."""
    problem = violation(schema)
    if problem is not None:
        raise errors.invalid_request(f"Invalid schema for {what} '{name}': {problem}", param, code)


def _is_object(node: Any) -> bool:
    kind = node.get("type")
    return kind == "object" or (isinstance(kind, list) and "object" in kind) or "properties" in node


def _object_problem(node: Any) -> Optional[str]:
    if node.get("additionalProperties") is not False:
        return "'additionalProperties' is required to be supplied and to be false."
    properties = node.get("properties")
    names = list(properties) if isinstance(properties, dict) else []
    required = node.get("required")
    listed = required if isinstance(required, list) else []
    rule = "'required' is required to be supplied and to be an array including every key in properties."
    missing = [name for name in names if name not in listed]
    if missing:
        return f"{rule} Missing '{missing[0]}'."
    extra = [key for key in listed if key not in names]
    if extra:
        return f"{rule} Extra required key '{extra[0]}' supplied."
    return None
