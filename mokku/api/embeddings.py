"""``POST /v1/embeddings``: deterministic unit vectors, one per input.

A vector depends only on (model, input): the SHAKE-256 stream of
``model + "\\0" + text`` is read as little-endian signed 16-bit integers, one
per dimension, and scaled to unit length. The same text gives the same vector
in every process and on every machine; different texts give unrelated
vectors (cosine near 0), and a text is most similar to itself. ``dimensions``
keeps the first components and re-normalizes, as the text-embedding-3 models
do. Token-id inputs embed their documented rendering (ids in decimal,
separated by spaces), as completions echo them.
"""

from __future__ import annotations

import base64
import hashlib
import math
import sys
from array import array
from typing import Any, List, Tuple

from mokku import errors, telemetry
from mokku.api import validate
from mokku.api.completions import is_token_id, render_token_ids, token_ids
from mokku.api.decide import Replies
from mokku.api.models import CHAT_MODELS, COMPLETION_MODELS
from mokku.api.tokens import count
from mokku.server import connection
from mokku.server.http import JSON_CONTENT_TYPE, Request, Response, Result, dumps
from mokku.simulation import limits

KNOWN_PARAMS = validate.known_params("input model encoding_format dimensions user")
# Google's, for its own routes and for its OpenAI compatibility (``/v1beta/openai/embeddings``).
GEMINI_DIMENSIONS = {"gemini-embedding-001": 3072, "text-embedding-004": 768, "embedding-001": 768}
MODEL_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
    **GEMINI_DIMENSIONS,
}
DEFAULT_DIMENSIONS = 1536
FIXED_DIMENSION_MODELS = frozenset(("text-embedding-ada-002",))
MAX_INPUTS = 2048
MAX_REQUEST_TOKENS = 300_000  # summed across the inputs, for every embedding model
ENCODINGS = ("float", "base64")
INPUT_TYPES = "a string, an array of strings, an array of integers, or an array of arrays of integers"
_LITTLE_ENDIAN = sys.byteorder == "little"
_FLOAT32 = "%.9g,"
_ONE_WRITE_BYTES = 256 * 1024


def vector(model: str, text: str, dimensions: int) -> array:
    """The unit-length float32 vector for ``text`` under ``model``, ``dimensions`` long."""
    key = f"{model}\0{text}".encode("utf-8", "surrogatepass")
    raw = array("h", hashlib.shake_256(key).digest(2 * dimensions))
    if not _LITTLE_ENDIAN:
        raw.byteswap()
    # hypot runs in C, twice as fast as an integer sum of squares.
    scale = 1.0 / (math.hypot(*raw) or 1.0)
    return array("f", map(scale.__mul__, raw))


def _encode(values: array, encoding: str) -> bytes:
    """The ``embedding`` value as JSON text.

    Floats are written with 9 significant digits, which name each float32 exactly (parse one and
    round it to float32 to get the value back, bit for bit), as the real API's short numbers do;
    ``json.dumps`` would spell out every float32 as a 17-digit double: 60% more bytes, 2.5x the time.
    One ``%`` over every value costs two thirds of one per value and a join.
    """
    if encoding == "float":
        return b"[" + ((_FLOAT32 * len(values))[:-1] % tuple(values)).encode("ascii") + b"]"
    if not _LITTLE_ENDIAN:
        values = array("f", values)
        values.byteswap()
    return b'"' + base64.b64encode(values.tobytes()) + b'"'


def create(request: Request, replies: Replies) -> Response:
    body, behaviour = replies.begin(request, "embeddings", KNOWN_PARAMS)
    model = request.dialect.answer_model(behaviour.model)  # an Azure deployment's: the model it serves
    if model in CHAT_MODELS or model in COMPLETION_MODELS:
        raise request.dialect.wrong_operation(errors.EMBEDDINGS, model)
    texts, prompt_tokens = read_inputs(validate.required(body, "input"))
    if prompt_tokens > MAX_REQUEST_TOKENS:
        raise errors.APIError(
            400,
            f"Requested {prompt_tokens} tokens, max {MAX_REQUEST_TOKENS} tokens per request",
            "max_tokens_per_request",
            None,
            "max_tokens_per_request",
        )
    replies.script(request, behaviour, "embeddings", texts[0])  # only its fault and latency apply
    forced = behaviour.is_("context_length")
    if forced or request.settings.context_window:
        limits.check_context(request, model, max(map(count, texts)), 0, forced, "prompt", prompt_only=True)
    encoding = validate.string(body.get("encoding_format"), "encoding_format") or "float"
    if encoding not in ENCODINGS:
        raise validate.invalid_value("encoding_format", encoding, ENCODINGS)
    validate.string(body.get("user"), "user")
    dimensions = read_dimensions(model, body.get("dimensions"))
    # A large body is written piece by piece, one piece per vector, so a 2048-input batch is never
    # copied into one string (tens of MB) on its way out; a small one goes out in one write.
    pieces = [b'{"object":"list","data":[']
    for index, text in enumerate(texts):
        head = b'%s{"object":"embedding","index":%d,"embedding":' % (b"," if index else b"", index)
        pieces.append(head + _encode(vector(model, text, dimensions), encoding) + b"}")
    connection.hold(behaviour.pace.whole_response(0), request.environ, "the answer waited")
    request.result = Result(None, None, {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens})
    telemetry.record_response(request.span, None, model, prompt_tokens)
    pieces.append(
        b'],"model":%s,"usage":{"prompt_tokens":%d,"total_tokens":%d}}'
        % (dumps(model), prompt_tokens, prompt_tokens)
    )
    size = sum(map(len, pieces))
    if size <= _ONE_WRITE_BYTES:
        pieces = [b"".join(pieces)]
    return Response(200, [("Content-Type", JSON_CONTENT_TYPE), ("Content-Length", str(size))], pieces)


def read_dimensions(model: str, value: Any) -> int:
    size = MODEL_DIMENSIONS.get(model.removeprefix("models/"), DEFAULT_DIMENSIONS)  # Gemini's names too
    if value is None:
        return size
    if model in FIXED_DIMENSION_MODELS:
        raise errors.invalid_request("This model does not support specifying dimensions.", "dimensions")
    return validate.integer(value, "dimensions", 1, size) or size


def read_inputs(value: Any) -> Tuple[List[str], int]:
    """The texts to embed (in order) and their prompt-token cost, from any of the four input forms."""
    if isinstance(value, str):
        _non_empty(value, "input")
        return [value], count(value)
    if not isinstance(value, list):
        raise validate.wrong_type("input", INPUT_TYPES, value)
    validate.array(value, "input", 1, MAX_INPUTS)
    if all(isinstance(item, str) for item in value):
        for index, item in enumerate(value):
            _non_empty(item, f"input[{index}]")
        return list(value), sum(map(count, value))
    if all(is_token_id(item) for item in value):
        return [render_token_ids(token_ids(value, "input"))], len(value)
    if all(isinstance(item, list) for item in value):
        lists = [token_ids(item, f"input[{i}]") for i, item in enumerate(value)]
        return [render_token_ids(ids) for ids in lists], sum(map(len, lists))
    raise validate.wrong_type("input", INPUT_TYPES, value)


def _non_empty(text: str, param: str) -> None:
    if not text:
        raise errors.invalid_request(
            f"Invalid '{param}': empty string. Expected a string with minimum length 1, "
            "but got an empty string instead.",
            param,
            "empty_string",
        )
