"""``GET /v1/models`` and ``/v1/models/{id}`` as Anthropic answers them (``ModelInfo``), for a request
that carries ``anthropic-version``: current Claude models, then mokku's own and configured ones."""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Tuple
from urllib.parse import parse_qs

from mokku import errors
from mokku.api.models import OWN_MODELS
from mokku.server.http import Request, Response, dumps, encoded_json_response, json_response
from mokku.simulation.limits import known_window

# (id, display name, created_at)
CLAUDE_MODELS: Tuple[Tuple[str, str, str], ...] = (
    ("claude-opus-4-5-20251101", "Claude Opus 4.5", "2025-11-24T00:00:00Z"),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-15T00:00:00Z"),
    ("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
    ("claude-opus-4-1-20250805", "Claude Opus 4.1", "2025-08-05T00:00:00Z"),
    ("claude-opus-4-20250514", "Claude Opus 4", "2025-05-22T00:00:00Z"),
    ("claude-sonnet-4-20250514", "Claude Sonnet 4", "2025-05-22T00:00:00Z"),
    ("claude-3-5-haiku-20241022", "Claude Haiku 3.5", "2024-10-22T00:00:00Z"),
)
CLAUDE_MODEL_IDS = tuple(model_id for model_id, _, _ in CLAUDE_MODELS)
OWN_CREATED = "2025-01-01T00:00:00Z"
MAX_LIMIT = 1000


LINES = ("opus", "sonnet", "haiku")


def model_info(model_id: str, display_name: str, created_at: str) -> Dict[str, object]:
    """``capabilities`` is null: what mokku accepts does not depend on the model."""
    max_input_tokens, max_tokens = known_window(model_id)
    return {
        "type": "model",
        "id": model_id,
        "display_name": display_name,
        "created_at": created_at,
        "lifecycle": "active",
        "deprecated_at": None,
        "retires_at": None,
        "line": next((line for line in LINES if model_id.startswith(f"claude-{line}-")), None),
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


class Models:
    """The model list, paged as Anthropic pages it (``limit``, ``after_id``, ``before_id``)."""

    def __init__(self, extra_ids: Iterable[str] = ()) -> None:
        entries = [model_info(*entry) for entry in CLAUDE_MODELS]
        entries += [model_info(model, model, OWN_CREATED) for model in OWN_MODELS]
        known = {entry["id"] for entry in entries}
        entries += [model_info(model, model, OWN_CREATED) for model in extra_ids if model not in known]
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
