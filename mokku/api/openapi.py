"""``GET /openapi.yml`` and ``GET /openapi.json``: the document describing what mokku serves.

The YAML is read from the package once, at first use; the JSON form is
converted from it once too (by ``miniyaml``, so no YAML dependency).
"""

from __future__ import annotations

import functools
from importlib import resources

from mokku import miniyaml
from mokku.server.http import Request, Response, dumps, encoded_json_response


@functools.cache
def document_text() -> bytes:
    return resources.files("mokku").joinpath("openapi.yml").read_bytes()


@functools.cache
def _json_body() -> bytes:
    return dumps(miniyaml.load(document_text().decode("utf-8")))


def openapi_yaml(request: Request) -> Response:
    body = document_text()
    return Response(200, [("Content-Type", "application/yaml"), ("Content-Length", str(len(body)))], [body])


def openapi_json(request: Request) -> Response:
    return encoded_json_response(_json_body())
