"""``GET /v1/models`` and ``/v1/models/{id}`` as Anthropic answers them (``ModelInfo``), for a request
that carries ``anthropic-version``: current Claude models, then mokku's own and configured ones."""

from __future__ import annotations

from typing import Dict, Iterable, List, NamedTuple, Optional, Tuple
from urllib.parse import parse_qs

from mokku import errors
from mokku.anthropic import claude
from mokku.api.models import OWN_MODELS
from mokku.server.http import Request, Response, dumps, encoded_json_response, json_response
from mokku.simulation.limits import known_window


class Listed(NamedTuple):
    """A model of the list: ``created_at`` is its release day; a model with ``retires_at`` is
    deprecated (callable until then, closed to new adopters)."""

    id: str
    display_name: str
    created_at: str
    retires_at: Optional[str] = None


# The models the real API serves, newest first (the retired ones, Opus 4 and 4.1, Sonnet 4 and Haiku
# 3.5, are gone from its list; /v1/messages still answers any id). Access-gated models (Mythos) are
# left out.
CLAUDE_MODELS: Tuple[Listed, ...] = (
    Listed("claude-fable-5-2", "Claude Fable 5.2", "2026-11-09T00:00:00Z"),
    Listed("claude-haiku-5-5", "Claude Haiku 5.5", "2026-10-07T00:00:00Z"),
    # Unconfirmed day: reports say September 28 or 29; the earlier is taken.
    Listed("claude-sonnet-5-5", "Claude Sonnet 5.5", "2026-09-28T00:00:00Z"),
    Listed("claude-opus-5-5", "Claude Opus 5.5", "2026-09-22T00:00:00Z"),
    # Unconfirmed day: one report gives September 1 (the day Mythos 5.1 launched); taken.
    Listed("claude-fable-5-1", "Claude Fable 5.1", "2026-09-01T00:00:00Z"),
    Listed("claude-opus-5", "Claude Opus 5", "2026-07-24T00:00:00Z"),
    Listed("claude-sonnet-5", "Claude Sonnet 5", "2026-06-30T00:00:00Z"),
    Listed("claude-fable-5", "Claude Fable 5", "2026-06-09T00:00:00Z"),
    Listed("claude-opus-4-8", "Claude Opus 4.8", "2026-05-28T00:00:00Z"),
    Listed("claude-opus-4-7", "Claude Opus 4.7", "2026-04-16T00:00:00Z"),
    Listed("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17T00:00:00Z"),
    Listed("claude-opus-4-6", "Claude Opus 4.6", "2026-02-05T00:00:00Z"),
    Listed("claude-opus-4-5-20251101", "Claude Opus 4.5", "2025-11-24T00:00:00Z", "2027-01-22T00:00:00Z"),
    Listed("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-15T00:00:00Z"),
    Listed("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z", "2026-11-30T00:00:00Z"),
)
CLAUDE_MODEL_IDS = tuple(model.id for model in CLAUDE_MODELS)
OWN_CREATED = "2025-01-01T00:00:00Z"
MAX_LIMIT = 1000


def model_info(model: Listed) -> Dict[str, object]:
    """``capabilities`` is null: mokku does not tell what each model supports. ``deprecated_at`` is
    null too: the day a deprecation was announced is not known."""
    max_input_tokens, max_tokens = known_window(model.id)
    family = claude.parse(model.id)
    return {
        "type": "model",
        "id": model.id,
        "display_name": model.display_name,
        "created_at": model.created_at,
        "lifecycle": "active" if model.retires_at is None else "deprecated",
        "deprecated_at": None,
        "retires_at": model.retires_at,
        "line": family.family if family is not None else None,
        "capabilities": None,
        "max_input_tokens": max_input_tokens,
        "max_tokens": max_tokens,
    }


def aliases(model_ids: Iterable[str]) -> Dict[str, str]:
    """``claude-sonnet-4-5`` for ``claude-sonnet-4-5-20250929``: an id without its date, as the API
    resolves it."""
    return {
        model_id[:-9]: model_id
        for model_id in model_ids
        if len(model_id) > 9 and model_id[-9] == "-" and model_id[-8:].isdigit()
    }


# The dated model each alias of the list stands for: the model an answer names.
CLAUDE_ALIASES = aliases(CLAUDE_MODEL_IDS)


class Models:
    """The model list, paged as Anthropic pages it (``limit``, ``after_id``, ``before_id``)."""

    def __init__(self, extra_ids: Iterable[str] = ()) -> None:
        entries = [model_info(model) for model in CLAUDE_MODELS]
        entries += [model_info(Listed(model, model, OWN_CREATED)) for model in OWN_MODELS]
        known = {entry["id"] for entry in entries}
        entries += [
            model_info(Listed(model, model, OWN_CREATED)) for model in extra_ids if model not in known
        ]
        self._entries = entries
        self._ids = [str(entry["id"]) for entry in entries]
        self._bodies = {str(entry["id"]): dumps(entry) for entry in entries}
        self._aliases = aliases(self._ids)

    def list_models(self, request: Request) -> Response:
        query = _query(request)
        limit, total = _limit(query.get("limit")), len(self._ids)
        before, after = query.get("before_id"), query.get("after_id")
        if before in self._bodies:
            end = self._ids.index(str(before))
            start = max(0, end - limit)
            has_more = start > 0
        else:
            start = self._ids.index(str(after)) + 1 if after in self._bodies else 0
            end = min(total, start + limit)
            has_more = end < total
        page: List[Dict[str, object]] = self._entries[start:end]
        return json_response(
            {
                "data": page,
                "has_more": has_more,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
            }
        )

    def retrieve_model(self, request: Request, model: str) -> Response:
        body = self._bodies.get(self._aliases.get(model, model))
        if body is None:
            raise errors.APIError(404, f"model: {model}", "not_found_error")
        return encoded_json_response(body)


def _query(request: Request) -> Dict[str, str]:
    return {name: values[-1] for name, values in parse_qs(request.environ.get("QUERY_STRING", "")).items()}


def _limit(raw: Optional[str]) -> int:
    if raw is None:
        return 20
    try:
        value = int(raw)
    except ValueError:
        raise errors.invalid_request("limit: Input should be a valid integer", "limit") from None
    if not 1 <= value <= MAX_LIMIT:
        raise errors.invalid_request(
            f"limit: Input should be {'greater than or equal to 1' if value < 1 else f'less than or equal to {MAX_LIMIT}'}",
            "limit",
        )
    return value
