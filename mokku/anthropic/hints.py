"""Schema constraints the Anthropic SDKs write into descriptions, put back where they belong.

Claude's structured outputs refuse keywords like ``minLength`` or ``maximum``, so the SDKs move
them out of the schema they send and into the ``description`` of the schema they constrain, then
check the answer against the whole schema all the same. A real model reads the description and
keeps to it; mokku puts the keywords back before writing a document, so that the answer passes the
SDK's own check. The two forms:

- the Anthropic SDKs (Python and TypeScript), a last paragraph ``{minLength: 5, maximum: 20}``;
- the AI SDK, a last line ``min length: 5; maximum: 20.``
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, Optional

# The keywords they move that the document writer keeps to, each with the values it takes.
_NUMBER = (int, float)
_COUNT = (int,)
KEYWORDS: Dict[str, tuple] = {
    "minimum": _NUMBER,
    "maximum": _NUMBER,
    "exclusiveMinimum": _NUMBER,
    "exclusiveMaximum": _NUMBER,
    "multipleOf": _NUMBER,
    "minLength": _COUNT,
    "maxLength": _COUNT,
    "pattern": (str,),
    "minItems": _COUNT,
    "maxItems": _COUNT,
    "uniqueItems": (bool,),
    "minProperties": _COUNT,
    "maxProperties": _COUNT,
}
# The AI SDK's names: ``minLength`` is "min length".
_SPOKEN = {re.sub("[A-Z]", lambda m: " " + m.group().lower(), key): key for key in KEYWORDS}
# Any keyword may be moved (``format: "starts_with"`` beside a pattern, ``not: {...}``): each one
# ends the value before it, and only those above are put back.
_BRACED = re.compile(r"\{([A-Za-z$][\w$]*: .*)\}", re.S)
_BRACED_PAIR = re.compile(r"(?:^|, )([A-Za-z$][\w$]*): ")
_LISTED = re.compile(r"([a-z][a-z ]*: .*)\.", re.S)
_LISTED_PAIR = re.compile(r"(?:^|; )([a-z][a-z ]*): ")
# Values and schemas not to look into: data, not schemas.
_DATA = ("enum", "const", "default", "examples")


def restored(schema: Any) -> Any:
    """``schema`` with the keywords its descriptions hold put back (where it does not have them)."""
    if isinstance(schema, list):
        return [restored(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: value if key in _DATA else restored(value) for key, value in schema.items()}
    description = schema.get("description")
    if isinstance(description, str):
        for key, value in _hinted(description).items():
            out.setdefault(key, value)
    return out


def _hinted(description: str) -> Dict[str, Any]:
    last = description.rsplit("\n", 1)[-1]
    braced = _BRACED.fullmatch(last)
    if braced is not None:
        return _pairs(braced.group(1), _BRACED_PAIR, {key: key for key in KEYWORDS})
    listed = _LISTED.fullmatch(last)
    if listed is not None:
        return _pairs(listed.group(1), _LISTED_PAIR, _SPOKEN)
    return {}


def _pairs(text: str, separator: re.Pattern[str], names: Dict[str, str]) -> Dict[str, Any]:
    parts = separator.split(text)  # "", name, value, name, value...
    found = {}
    for name, raw in zip(parts[1::2], parts[2::2]):
        key = names.get(name)
        if key is None:
            continue
        value = _value(raw, key)
        if not isinstance(value, KEYWORDS[key]) or isinstance(value, bool) != (key == "uniqueItems"):
            continue  # not a value the keyword takes: a description that only looks like a hint
        if KEYWORDS[key] is _COUNT and value < 0:
            continue
        found[key] = value
    return found


def _value(raw: str, key: str) -> Optional[Any]:
    """A value as JSON (TypeScript writes it so), as Python writes it, or the text (a pattern)."""
    if key == "pattern":
        try:
            pattern = json.loads(raw)
        except ValueError:
            return raw
        return pattern if isinstance(pattern, str) else raw
    if raw in ("True", "False"):
        return raw == "True"
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if isinstance(value, float) and value.is_integer() and KEYWORDS[key] is _COUNT:
        return int(value)
    return value
