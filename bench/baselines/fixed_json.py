"""(a) The floor: a WSGI app that returns the same JSON bytes for every request.

The bench hands it the document to serve (``BENCH_FIXED_BODY``, a file), so that W4 compares
serving mokku's model list with serving the very same bytes from memory.
"""

import os

BODY = b'{"object":"list","data":[{"id":"gpt-4o","object":"model","created":1715367049,"owned_by":"system"}]}'
if os.environ.get("BENCH_FIXED_BODY"):
    with open(os.environ["BENCH_FIXED_BODY"], "rb") as file:
        BODY = file.read()


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))])
    return [BODY]
