"""``GET /health``: a constant answer for load balancers and container health checks."""

from __future__ import annotations

from mokku import __version__
from mokku.server.http import Request, Response, dumps, encoded_json_response

_BODY = dumps({"status": "ok", "version": __version__})


def health(request: Request) -> Response:
    return encoded_json_response(_BODY)
