"""(c) A minimal SSE echo: one data event per word, then [DONE].

Minimal in cost, not only in code: its JSON from an encoder made once with compact separators, and,
since every event is ready at once, all of them in one write (one chunk, one system call) rather
than one per event, as mokku sends an unpaced stream. Its events carry only the delta; the real
API's further fields and the role and finish events that mokku sends are mokku's own cost.
"""

import json

_ENCODER = json.JSONEncoder(separators=(",", ":"))
_HEADERS = [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")]


def app(environ, start_response):
    if environ["REQUEST_METHOD"] == "GET":  # the readiness probe
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    request = json.loads(environ["wsgi.input"].read(length))
    words = request["messages"][-1]["content"].split(" ")
    start_response("200 OK", list(_HEADERS))
    events = [
        "data: "
        + _ENCODER.encode(
            {"choices": [{"index": 0, "delta": {"content": word if index == 0 else " " + word}}]}
        )
        for index, word in enumerate(words)
    ]
    events.append("data: [DONE]\n\n")
    return ["\n\n".join(events).encode()]
