"""The route table: every endpoint mokku serves, in one place."""

from __future__ import annotations

from functools import partial
from typing import List, Optional

from mokku.api import chat, completions, embeddings, openapi
from mokku.api.decide import Replies
from mokku.api.health import health
from mokku.api.models import Catalogue
from mokku.api.responses import Responses
from mokku.config import Settings
from mokku.control.admin import Admin
from mokku.control.journal import Journal
from mokku.control.scenarios import Scenarios
from mokku.server.routing import Route
from mokku.simulation.faults import Simulator


def build_routes(
    settings: Settings, journal: Optional[Journal] = None, scenarios: Optional[Scenarios] = None
) -> List[Route]:
    replies = Replies(settings, Simulator(settings), scenarios)
    catalogue = Catalogue(settings.extra_models)
    stored = Responses(replies)
    admin = (
        Admin(journal, scenarios, settings.admin_token, settings.admin_open, settings.host)
        if settings.admin
        else None
    )
    return [
        Route("GET", "/health", health),
        Route("GET", "/healthz", health),
        Route("GET", "/openapi.yml", openapi.openapi_yaml),
        Route("GET", "/openapi.json", openapi.openapi_json),
        Route("GET", "/v1/models", catalogue.list_models),
        Route("GET", "/v1/models/{model:path}", catalogue.retrieve_model),
        Route("POST", "/v1/chat/completions", partial(chat.create, replies=replies)),
        Route("POST", "/v1/completions", partial(completions.create, replies=replies)),
        Route("POST", "/v1/embeddings", partial(embeddings.create, replies=replies)),
        Route("POST", "/v1/responses", stored.create),
        Route("GET", "/v1/responses/{response_id}", stored.retrieve),
        Route("DELETE", "/v1/responses/{response_id}", stored.delete),
    ] + (
        [
            Route("GET", "/mokku/requests", admin.list_requests),
            Route("DELETE", "/mokku/requests", admin.clear_requests),
            Route("GET", "/mokku/verdict", admin.verdict),
            Route("POST", "/mokku/scenarios", admin.add_scenarios),
            Route("GET", "/mokku/scenarios", admin.list_scenarios),
            Route("DELETE", "/mokku/scenarios", admin.clear_scenarios),
        ]
        if admin
        else []
    )
