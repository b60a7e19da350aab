"""The route table: every endpoint mokku serves, in one place."""

from __future__ import annotations

from typing import List

from . import chat, completions, embeddings, openapi
from .config import Settings
from .health import health
from .models import Catalogue
from .responses import Responses
from .routing import Route


def build_routes(settings: Settings) -> List[Route]:
    catalogue = Catalogue(settings.extra_models)
    stored = Responses()
    return [
        Route("GET", "/health", health),
        Route("GET", "/healthz", health),
        Route("GET", "/openapi.yml", openapi.openapi_yaml),
        Route("GET", "/openapi.json", openapi.openapi_json),
        Route("GET", "/v1/models", catalogue.list_models),
        Route("GET", "/v1/models/{model:path}", catalogue.retrieve_model),
        Route("POST", "/v1/chat/completions", chat.create),
        Route("POST", "/v1/completions", completions.create),
        Route("POST", "/v1/embeddings", embeddings.create),
        Route("POST", "/v1/responses", stored.create),
        Route("GET", "/v1/responses/{response_id}", stored.retrieve),
        Route("DELETE", "/v1/responses/{response_id}", stored.delete),
    ]
