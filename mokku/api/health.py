"""``GET /health``: a constant answer for load balancers and container health checks (the process
is up). ``GET /readyz``: whether the shared store answers too (a replica on Redis is not ready
while Redis is gone: its scripted replies and rate limits would answer 503)."""

from __future__ import annotations

from typing import Callable

from mokku import __version__
from mokku.control import statedb
from mokku.server.http import Request, Response, dumps, encoded_json_response

_BODY = dumps({"status": "ok", "version": __version__})


def health(request: Request) -> Response:
    return encoded_json_response(_BODY)


def readiness(check: Callable[[], None], store: str) -> Callable[[Request], Response]:
    """``GET /readyz`` over ``check``, which raises when the store cannot be used."""

    def ready(request: Request) -> Response:
        with statedb.answered(store):
            check()
        return encoded_json_response(_BODY)

    return ready
