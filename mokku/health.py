"""``GET /health``: a constant answer for load balancers and container health checks."""

from __future__ import annotations

from . import __version__
from .http import Request, Response, dumps, encoded_json_response

_BODY = dumps({"status": "ok", "version": __version__})


def health(request: Request) -> Response:
    return encoded_json_response(_BODY)
