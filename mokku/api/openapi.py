"""``GET /openapi.yml`` and ``GET /openapi.json``: the document describing what mokku serves.

Both files ship in the package and are served as they are, each read once at first use.
``openapi.yml`` is the source; ``openapi.json`` is generated from it (``python .ci/openapi_json.py``)
and a test keeps the two the same.
"""

from __future__ import annotations

import functools
from importlib import resources

from mokku.server.http import Request, Response, encoded_json_response


@functools.cache
def document_bytes(name: str) -> bytes:
    """``openapi.yml`` or ``openapi.json`` from the package."""
    return resources.files("mokku").joinpath(name).read_bytes()


def openapi_yaml(request: Request) -> Response:
    body = document_bytes("openapi.yml")
    return Response(200, [("Content-Type", "application/yaml"), ("Content-Length", str(len(body)))], [body])


def openapi_json(request: Request) -> Response:
    return encoded_json_response(document_bytes("openapi.json"))
