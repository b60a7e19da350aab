"""``POST /v1/moderations``: every input classified, in the real shape, as harmless.

An echo server has nothing to flag: ``flagged`` is false and every category's score is small and
fixed, so an app's moderation step lets its input through. One result per string (a list of
strings is classified string by string), or one for a list of text and image parts; each says which
input types every category was scored on, as the omni models do: images count only for the
categories that take them.
"""

from __future__ import annotations

from typing import Any, Dict, FrozenSet, List

from mokku.api import validate
from mokku.api.decide import Replies
from mokku.api.ids import random_id
from mokku.server import connection
from mokku.server.http import Request, Response, json_response

KNOWN_PARAMS = frozenset(("input", "model"))
DEFAULT_MODEL = "omni-moderation-latest"
CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
WITH_IMAGES = frozenset(
    ("self-harm", "self-harm/instructions", "self-harm/intent", "sexual", "violence", "violence/graphic")
)
SCORE = 1e-06  # what a real model gives harmless text, about
MAX_INPUTS = 2048
TEXT, IMAGE = "text", "image"
PART_TYPES = ("text", "image_url")


def create(request: Request, replies: Replies) -> Response:
    model = validate.string(request.json().get("model"), "model") or DEFAULT_MODEL
    body, behaviour = replies.begin(request, "moderations", KNOWN_PARAMS, model=model)
    results = [_result(types) for types in read_inputs(validate.required(body, "input"))]
    connection.hold(behaviour.pace.whole_response(0), request.environ, "the answer waited")
    return json_response({"id": random_id("modr-"), "model": model, "results": results})


def read_inputs(value: Any) -> List[FrozenSet[str]]:
    """The input types of each result's input: a string, strings, or one list of parts."""
    if isinstance(value, str):
        return [frozenset((TEXT,))]
    if not isinstance(value, list):
        raise validate.wrong_type("input", "a string, an array of strings, or an array of input parts", value)
    items = validate.array(value, "input", 1, MAX_INPUTS) or []
    if all(isinstance(item, str) for item in items):
        return [frozenset((TEXT,))] * len(items)
    types = set()
    for index, part in enumerate(items):
        where = f"input[{index}]"
        if not isinstance(part, dict):
            raise validate.wrong_type(where, "an input part object (text or image_url)", part)
        kind = validate.required_string(part, "type", f"{where}.type")
        if kind == "text":
            validate.required_string(part, "text", f"{where}.text")
            types.add(TEXT)
        elif kind == "image_url":
            image = validate.obj(
                validate.required(part, "image_url", f"{where}.image_url"), f"{where}.image_url"
            )
            validate.required_string(image or {}, "url", f"{where}.image_url.url")
            types.add(IMAGE)
        else:
            raise validate.invalid_value(f"{where}.type", kind, PART_TYPES)
    return [frozenset(types)]


def _result(types: FrozenSet[str]) -> Dict[str, Any]:
    applied = {
        category: [
            kind for kind in (TEXT, IMAGE) if kind in types and (kind == TEXT or category in WITH_IMAGES)
        ]
        for category in CATEGORIES
    }
    return {
        "flagged": False,
        "categories": dict.fromkeys(CATEGORIES, False),
        "category_scores": dict.fromkeys(CATEGORIES, SCORE),
        "category_applied_input_types": applied,
    }
