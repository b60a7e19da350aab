"""``POST /v1/moderations``: every input classified, in the real shape, as harmless.

An echo server has nothing to flag: ``flagged`` is false and every category's score is small and
fixed, so an app's moderation step lets its input through; a scripted reply (``flagged``: the
categories) flags a request's results instead, so the other path can be rehearsed. One result per
string (a list of strings is classified string by string), or one for a list of text and image
parts; each says which input types every category was scored on, as the omni models do: images
count only for the categories that take them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, FrozenSet, List, Tuple

from mokku.api import validate
from mokku.api.ids import random_id
from mokku.server import connection
from mokku.server.http import Request, Response, json_response

if TYPE_CHECKING:  # decide reads the scripted replies, which know the categories from here
    from mokku.api.decide import Replies

KNOWN_PARAMS = validate.known_params("input model")
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
FLAGGED_SCORE = 0.98
MAX_INPUTS = 2048
TEXT, IMAGE = "text", "image"
PART_TYPES = ("text", "image_url")


def create(request: Request, replies: Replies) -> Response:
    model = validate.string(request.json().get("model"), "model") or DEFAULT_MODEL
    body, behaviour = replies.begin(request, "moderations", KNOWN_PARAMS, model=model)
    inputs, text = read_inputs(validate.required(body, "input"))
    script = replies.script(request, behaviour, "moderations", text)
    flagged = frozenset(script.get("flagged") or ()) if script is not None else frozenset()
    made = {types: _result(types, flagged) for types in set(inputs)}  # 2,048 strings: one result made
    results = [made[types] for types in inputs]
    connection.hold(behaviour.pace.whole_response(0), request.environ, "the answer waited")
    return json_response({"id": random_id("modr-"), "model": model, "results": results})


def read_inputs(value: Any) -> Tuple[List[FrozenSet[str]], str]:
    """The input types of each result's input (a string, strings, or one list of parts), and the
    text scripted replies match (the texts, a line each)."""
    if isinstance(value, str):
        return [frozenset((TEXT,))], value
    if not isinstance(value, list):
        raise validate.wrong_type("input", "a string, an array of strings, or an array of input parts", value)
    items = validate.array(value, "input", 1, MAX_INPUTS) or []
    if all(isinstance(item, str) for item in items):
        return [frozenset((TEXT,))] * len(items), "\n".join(items)
    types, texts = set(), []
    for index, part in enumerate(items):
        where = f"input[{index}]"
        if not isinstance(part, dict):
            raise validate.wrong_type(where, "an input part object (text or image_url)", part)
        kind = validate.required_string(part, "type", f"{where}.type")
        if kind == "text":
            texts.append(validate.required_string(part, "text", f"{where}.text"))
            types.add(TEXT)
        elif kind == "image_url":
            image = validate.obj(
                validate.required(part, "image_url", f"{where}.image_url"), f"{where}.image_url"
            )
            validate.required_string(image or {}, "url", f"{where}.image_url.url")
            types.add(IMAGE)
        else:
            raise validate.invalid_value(f"{where}.type", kind, PART_TYPES)
    return [frozenset(types)], "\n".join(texts)


def _result(types: FrozenSet[str], flagged: FrozenSet[str]) -> Dict[str, Any]:
    applied = {
        category: [
            kind for kind in (TEXT, IMAGE) if kind in types and (kind == TEXT or category in WITH_IMAGES)
        ]
        for category in CATEGORIES
    }
    return {
        "flagged": bool(flagged),
        "categories": {category: category in flagged for category in CATEGORIES},
        "category_scores": {
            category: FLAGGED_SCORE if category in flagged else SCORE for category in CATEGORIES
        },
        "category_applied_input_types": applied,
    }
