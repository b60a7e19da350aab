"""The route table: every endpoint mokku serves, in one place."""

from __future__ import annotations

from functools import partial
from typing import Callable, List, Optional

from mokku import errors
from mokku.anthropic.dialect import ANTHROPIC
from mokku.anthropic.messages import Messages
from mokku.anthropic.models import Models
from mokku.api import chat, completions, embeddings, moderations, openapi
from mokku.api.conversations import Conversations
from mokku.api.decide import Replies
from mokku.api.health import health
from mokku.api.models import Catalogue
from mokku.api.responses import Responses
from mokku.api.stored_chats import StoredChats
from mokku.azure.dialect import AZURE
from mokku.azure.routes import azure_routes
from mokku.config import Settings
from mokku.control.admin import Admin
from mokku.control.journal import Journal
from mokku.control.objects import Objects
from mokku.control.scenarios import Scenarios
from mokku.control.state import default_path
from mokku.gemini.dialect import GEMINI
from mokku.gemini.generate import GenerateContent
from mokku.gemini.models import Models as GeminiModels
from mokku.server.dialect import OPENAI, Dialect
from mokku.server.http import Request, Response
from mokku.server.routing import Handler, Route
from mokku.simulation.faults import Simulator
from mokku.simulation.load import Slots
from mokku.simulation.prefix import PrefixCache

# Routes more than one dialect serves: the request's headers choose (see ``dialect_of``).
SHARED_ROUTES = frozenset(("/v1/models", "/v1/models/{model}"))


def dialect_of(request: Request) -> Dialect:
    """Whose API a request speaks when no route says (the shared model list, an unknown path):
    Anthropic's when it sends ``anthropic-version``, Azure's under ``/openai/``, OpenAI's under Gemini's
    ``/v1beta/openai/``, Gemini's with a Google key or under ``/v1beta/``, else OpenAI's."""
    if request.header("anthropic-version"):
        return ANTHROPIC
    if request.path.startswith("/openai/"):
        return AZURE
    if request.path.startswith("/v1beta/openai/"):
        return OPENAI
    if (
        request.header("x-goog-api-key")
        or request.path.startswith("/v1beta/")
        or "key=" in request.environ.get("QUERY_STRING", "")
    ):
        return GEMINI
    return OPENAI


def by_dialect(**handlers: Handler) -> Handler:
    """One route's handler per dialect (the model list): the request's dialect picks."""
    openai = handlers["openai"]

    def handle(request: Request, **params: str) -> Response:
        return handlers.get(request.dialect.name, openai)(request, **params)

    return handle


def _no_deletes(request: Request, **params: str) -> Response:
    """Anthropic's and Gemini's model lists delete nothing: what their APIs answer a method they lack."""
    raise errors.method_not_allowed(request.method, request.path, ("GET", "HEAD"))


def gemini_routes(gemini: GenerateContent, models: GeminiModels) -> List[Route]:
    """Gemini's methods under both API versions its SDK calls; its model list under ``/v1beta``
    (under ``/v1`` the model list is shared, and a Gemini key picks Gemini's)."""
    routes = []
    for version in ("v1beta", "v1"):
        for method, handler in (
            ("generateContent", gemini.generate),
            ("streamGenerateContent", gemini.stream),
            ("countTokens", gemini.count_tokens),
            ("embedContent", gemini.embed),
            ("batchEmbedContents", gemini.batch_embed),
        ):
            routes.append(Route("POST", f"/{version}/models/{{model:any}}:{method}", handler, GEMINI))
    routes.append(Route("GET", "/v1beta/models", models.list_models, GEMINI))
    routes.append(Route("GET", "/v1beta/models/{model}", models.retrieve_model, GEMINI))
    return routes


# Gemini's OpenAI compatibility (base URL ``.../v1beta/openai/``): OpenAI's routes, in OpenAI's dialect.
GEMINI_OPENAI = ("/v1/chat/completions", "/v1/embeddings")


def gemini_openai_routes(api: List[Route]) -> List[Route]:
    return [
        Route(route.method, "/v1beta/openai" + route.template[len("/v1") :], route.handler, OPENAI)
        for route in api
        if route.name in GEMINI_OPENAI and route.method == "POST"
    ]


def build_routes(
    settings: Settings,
    journal: Optional[Journal] = None,
    scenarios: Optional[Scenarios] = None,
    stored: Optional[Objects] = None,
    ready: Optional[Callable[[Request], Response]] = None,
    scrape: Optional[Callable[[Request], Response]] = None,
    slots: Optional[Slots] = None,
    cache: Optional[PrefixCache] = None,
) -> List[Route]:
    """``slots`` and ``cache``: the server's load simulation (``simulation.load``, ``.prefix``)."""
    stored = stored or Objects(settings.state_path or default_path())
    replies = Replies(settings, Simulator(settings), scenarios, slots, cache)
    catalogue = Catalogue(settings.extra_models)
    claude = Models(settings.extra_models)
    google = GeminiModels(settings.extra_models)
    gemini = GenerateContent(replies)
    messages = Messages(replies)
    responses = Responses(replies, stored)
    conversations = Conversations(stored)
    chats = StoredChats(stored)
    admin = (
        Admin(journal, scenarios, settings.admin_token, settings.admin_open, settings.host)
        if settings.admin
        else None
    )
    api = [
        Route("GET", "/health", health),
        Route("GET", "/healthz", health),
        Route("GET", "/readyz", ready or health),
        *([Route("GET", "/metrics", scrape)] if scrape is not None else []),
        Route("GET", "/openapi.yml", openapi.openapi_yaml),
        Route("GET", "/openapi.json", openapi.openapi_json),
        *gemini_routes(gemini, google),  # before OpenAI's /v1/models/{model}: ``:generateContent`` is theirs
        Route(
            "GET",
            "/v1/models",
            by_dialect(openai=catalogue.list_models, anthropic=claude.list_models, gemini=google.list_models),
        ),
        Route(
            "GET",
            "/v1/models/{model:path}",
            by_dialect(
                openai=catalogue.retrieve_model, anthropic=claude.retrieve_model, gemini=google.retrieve_model
            ),
        ),
        Route(
            "DELETE",
            "/v1/models/{model:path}",
            by_dialect(openai=catalogue.delete_model, anthropic=_no_deletes, gemini=_no_deletes),
        ),
        Route("POST", "/v1/chat/completions", partial(chat.create, replies=replies, kept=chats)),
        Route("GET", "/v1/chat/completions", chats.list_completions),
        Route("GET", "/v1/chat/completions/{completion_id}", chats.retrieve),
        Route("POST", "/v1/chat/completions/{completion_id}", chats.update),
        Route("DELETE", "/v1/chat/completions/{completion_id}", chats.delete),
        Route("GET", "/v1/chat/completions/{completion_id}/messages", chats.messages),
        Route("POST", "/v1/completions", partial(completions.create, replies=replies)),
        Route("POST", "/v1/embeddings", partial(embeddings.create, replies=replies)),
        Route("POST", "/v1/moderations", partial(moderations.create, replies=replies)),
        Route("POST", "/v1/responses", responses.create),
        Route("POST", "/v1/responses/input_tokens", responses.input_tokens),
        Route("POST", "/v1/responses/compact", responses.compact),
        Route("GET", "/v1/responses/{response_id}", responses.retrieve),
        Route("DELETE", "/v1/responses/{response_id}", responses.delete),
        Route("POST", "/v1/responses/{response_id}/cancel", responses.cancel),
        Route("GET", "/v1/responses/{response_id}/input_items", responses.input_items),
        Route("POST", "/v1/messages", messages.create, ANTHROPIC),
        Route("POST", "/v1/messages/count_tokens", messages.count_tokens, ANTHROPIC),
        Route("POST", "/v1/conversations", conversations.create),
        Route("GET", "/v1/conversations/{conversation_id}", conversations.retrieve),
        Route("POST", "/v1/conversations/{conversation_id}", conversations.update),
        Route("DELETE", "/v1/conversations/{conversation_id}", conversations.delete),
        Route("GET", "/v1/conversations/{conversation_id}/items", conversations.list_items),
        Route("POST", "/v1/conversations/{conversation_id}/items", conversations.add_items),
        Route("GET", "/v1/conversations/{conversation_id}/items/{item_id}", conversations.item),
        Route("DELETE", "/v1/conversations/{conversation_id}/items/{item_id}", conversations.delete_item),
    ]
    for route in api:  # OpenAI's routes speak OpenAI's dialect whatever the headers; only shared ones choose
        if route.dialect is None and route.name not in SHARED_ROUTES:
            route.dialect = OPENAI
    own = (  # mokku's own routes answer in one envelope, whatever a client's headers say
        [
            Route("GET", "/mokku/requests", admin.list_requests, OPENAI),
            Route("DELETE", "/mokku/requests", admin.clear_requests, OPENAI),
            Route("GET", "/mokku/verdict", admin.verdict, OPENAI),
            Route("POST", "/mokku/scenarios", admin.add_scenarios, OPENAI),
            Route("GET", "/mokku/scenarios", admin.list_scenarios, OPENAI),
            Route("DELETE", "/mokku/scenarios", admin.clear_scenarios, OPENAI),
        ]
        if admin
        else []
    )
    return api + azure_routes(api) + gemini_openai_routes(api) + own
