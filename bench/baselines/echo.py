"""(b) A minimal chat echo: parse the JSON body, build the chat response, encode it.

Minimal in cost, not only in code: its id comes from ``random.getrandbits`` (no system call, unlike
``uuid4``, which reads ``os.urandom``), its JSON from an encoder made once with compact separators
(fewer bytes than ``json.dumps``'s defaults), and nothing is done per request that could be done
once. Its answer has the fields it always had; the real API's further fields that mokku sends
(usage details, refusal, annotations, service tier) are mokku's own cost.
"""

import json
import random
import time

_ENCODER = json.JSONEncoder(separators=(",", ":"))
_HEADERS_START = [("Content-Type", "application/json")]


def app(environ, start_response):
    if environ["REQUEST_METHOD"] == "GET":  # the readiness probe
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    request = json.loads(environ["wsgi.input"].read(length))
    text = request["messages"][-1]["content"]
    body = _ENCODER.encode(
        {
            "id": f"chatcmpl-{random.getrandbits(128):032x}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request["model"],
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    ).encode()
    start_response("200 OK", [*_HEADERS_START, ("Content-Length", str(len(body)))])
    return [body]
