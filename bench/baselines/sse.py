"""(c) A minimal SSE echo: one data event per word, then [DONE]."""

import json


def app(environ, start_response):
    if environ["REQUEST_METHOD"] == "GET":  # the readiness probe
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    request = json.loads(environ["wsgi.input"].read(length))
    words = request["messages"][-1]["content"].split(" ")
    start_response("200 OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])

    def events():
        for index, word in enumerate(words):
            delta = {"content": word if index == 0 else " " + word}
            yield b"data: " + json.dumps({"choices": [{"index": 0, "delta": delta}]}).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"

    return events()
