"""(d) A minimal embeddings mock: parse the JSON body, one deterministic unit vector, json.dumps it."""

import hashlib
import json
import math
from array import array


def app(environ, start_response):
    if environ["REQUEST_METHOD"] == "GET":  # the readiness probe
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    request = json.loads(environ["wsgi.input"].read(length))
    raw = array("h", hashlib.shake_256(request["input"].encode()).digest(2 * 1536))
    norm = math.sqrt(sum(value * value for value in raw)) or 1.0
    body = json.dumps(
        {
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [value / norm for value in raw]}],
            "model": request["model"],
            "usage": {"prompt_tokens": 1, "total_tokens": 1},
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
