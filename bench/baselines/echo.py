"""(b) A minimal chat echo: parse the JSON body, build the chat response, json.dumps it."""

import json
import time
import uuid


def app(environ, start_response):
    if environ["REQUEST_METHOD"] == "GET":  # the readiness probe
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    request = json.loads(environ["wsgi.input"].read(length))
    text = request["messages"][-1]["content"]
    body = json.dumps(
        {
            "id": "chatcmpl-" + uuid.uuid4().hex,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request["model"],
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
