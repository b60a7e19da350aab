"""Browsers, as the real APIs answer them: a preflight (``OPTIONS``) on any route is allowed without
credentials, and an answer to a request that carries an ``Origin`` lets any origin read it and its
headers (the dialect says when: Anthropic's only for a request that opts in, as its API does).
Nothing is added for clients that are not browsers."""

from __future__ import annotations

from typing import List

from mokku.server.http import Headers, Request, Response

ALLOW_ANY_ORIGIN = ("Access-Control-Allow-Origin", "*")
ANY_ORIGIN: Headers = [ALLOW_ANY_ORIGIN, ("Access-Control-Expose-Headers", "*")]
MAX_AGE = "86400"  # how long a browser may keep a preflight's answer, in seconds


def preflight(request: Request, methods: List[str]) -> Response:
    """``204``: any origin may send ``methods`` to this path, with whatever headers it asks for."""
    headers = [
        ALLOW_ANY_ORIGIN,
        ("Access-Control-Allow-Methods", ", ".join(methods)),
        ("Access-Control-Max-Age", MAX_AGE),
    ]
    asked = request.header("Access-Control-Request-Headers")
    if asked:
        headers.append(("Access-Control-Allow-Headers", asked))
    return Response(204, headers, [])
