"""Azure OpenAI's routes, made from OpenAI's: each deployment route stands for a model, and every
``/v1`` route is also served under ``/openai/v1`` (Azure's v1 API).

- ``/openai/deployments/{deployment}/chat/completions`` (``completions``, ``embeddings``): the
  deployment names the model; ``api-version`` is required (missing: 404, unknown: 400);
- ``/openai/models`` and ``/openai/models/{model}``, with ``api-version`` too;
- ``/openai/responses`` (and a response's routes), with a preview ``api-version`` from
  2025-03-01-preview, where Azure's dated API first served the Responses API;
- ``/openai/v1/...``: every OpenAI route, ``api-version`` left out (or ``v1``, ``preview``).
"""

from __future__ import annotations

from typing import FrozenSet, List

from mokku.azure.dialect import AZURE, api_version, gateway_error
from mokku.server.dialect import OPENAI
from mokku.server.http import Request, Response
from mokku.server.routing import Handler, Route

# Generally available and preview versions of the dated API (after 2025-04-01-preview: the v1 API).
API_VERSIONS = frozenset(
    (
        "2022-12-01 2023-05-15 2024-02-01 2024-06-01 2024-10-21 2023-06-01-preview 2023-07-01-preview "
        "2023-08-01-preview 2023-09-01-preview 2023-10-01-preview 2023-12-01-preview 2024-02-15-preview "
        "2024-03-01-preview 2024-04-01-preview 2024-05-01-preview 2024-07-01-preview 2024-08-01-preview "
        "2024-09-01-preview 2024-10-01-preview 2024-12-01-preview 2025-01-01-preview 2025-02-01-preview "
        "2025-03-01-preview 2025-04-01-preview"
    ).split()
)
V1_VERSIONS = ("v1", "preview", "latest")
DEPLOYMENT_OPERATIONS = {
    "/v1/chat/completions": "chat/completions",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
}
DATED = ("/v1/models", "/v1/models/{model}")
DATED_RESPONSES = (
    "/v1/responses",
    "/v1/responses/{response_id}",
    "/v1/responses/{response_id}/cancel",
    "/v1/responses/{response_id}/input_items",
)
RESPONSES_VERSIONS = frozenset(("2025-03-01-preview", "2025-04-01-preview"))


def check_dated(request: Request, versions: FrozenSet[str] = API_VERSIONS) -> None:
    """A dated route's ``api-version``: required and one the route serves, as Azure's gateway answers."""
    version = api_version(request)
    if version is None:
        raise gateway_error(404, "404", "Resource not found")
    if version not in versions:
        raise gateway_error(400, "BadRequest", "API version not supported")


def dated(handler: Handler, versions: FrozenSet[str] = API_VERSIONS) -> Handler:
    def handle(request: Request, **params: str) -> Response:
        check_dated(request, versions)
        return handler(request, **params)

    return handle


def deployment(handler: Handler) -> Handler:
    """The deployment in the path is the model, whatever the body says."""

    def handle(request: Request, deployment: str) -> Response:
        check_dated(request)
        request.json()["model"] = deployment
        return handler(request)

    return handle


def v1(handler: Handler) -> Handler:
    def handle(request: Request, **params: str) -> Response:
        version = api_version(request)
        if version is not None and version not in V1_VERSIONS:
            raise gateway_error(
                400, "BadRequest", "api-version query parameter is not allowed when using /v1 path"
            )
        return handler(request, **params)

    return handle


def azure_routes(routes: List[Route]) -> List[Route]:
    """Azure's twins of OpenAI's ``/v1`` routes."""
    out = []
    for route in routes:
        if not route.name.startswith("/v1/") or route.dialect not in (None, OPENAI):
            continue
        out.append(Route(route.method, "/openai" + route.template, v1(route.handler), AZURE))
        operation = DEPLOYMENT_OPERATIONS.get(route.name)
        if operation is not None and route.method == "POST":  # a deployment only creates
            template = f"/openai/deployments/{{deployment}}/{operation}"
            out.append(Route(route.method, template, deployment(route.handler), AZURE))
        dated_path = "/openai" + route.template[len("/v1") :]
        if route.name in DATED:
            out.append(Route(route.method, dated_path, dated(route.handler), AZURE))
        elif route.name in DATED_RESPONSES:
            out.append(Route(route.method, dated_path, dated(route.handler, RESPONSES_VERSIONS), AZURE))
    return out
