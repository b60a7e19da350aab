"""``GET /v1beta/models`` and ``/v1beta/models/{model}`` (and under ``/v1`` with a Gemini key), as
Gemini answers them, paged with ``pageSize`` and ``pageToken``."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Tuple
from urllib.parse import parse_qs

from mokku import errors
from mokku.api.models import OWN_MODELS
from mokku.server.http import Request, Response, dumps, encoded_json_response, json_response

GENERATE = ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"]
EMBED = ["embedContent", "countTextTokens", "countTokens"]
# (id, display name, input limit, output limit, thinking): the models Gemini serves today, deprecated
# ones (gemini-3.7-flash, gemini-3.5-flash, the 2.5 models) included until they shut down; gemini-2.0
# shut down on 2026-06-01.
GEMINI_MODELS: Tuple[Tuple[str, str, int, int, bool], ...] = (
    ("gemini-3.8-flash", "Gemini 3.8 Flash", 1_048_576, 65_536, True),
    ("gemini-3.7-flash", "Gemini 3.7 Flash", 1_048_576, 65_536, True),
    ("gemini-3.6-flash", "Gemini 3.6 Flash", 1_048_576, 65_536, True),
    ("gemini-3.5-flash", "Gemini 3.5 Flash", 1_048_576, 65_536, True),
    ("gemini-3.5-flash-lite", "Gemini 3.5 Flash-Lite", 1_048_576, 65_536, True),
    ("gemini-3.1-flash-lite", "Gemini 3.1 Flash-Lite", 1_048_576, 65_536, True),
    ("gemini-3.1-pro-preview", "Gemini 3.1 Pro Preview", 1_048_576, 65_536, True),
    ("gemini-3-flash-preview", "Gemini 3 Flash Preview", 1_048_576, 65_536, True),
    ("gemini-2.5-pro", "Gemini 2.5 Pro", 1_048_576, 65_536, True),
    ("gemini-2.5-flash", "Gemini 2.5 Flash", 1_048_576, 65_536, True),
    ("gemini-2.5-flash-lite", "Gemini 2.5 Flash-Lite", 1_048_576, 65_536, True),
)
THINKING_ONLY = frozenset({"gemini-2.5-pro"})  # models that always think: a budget of 0 is refused
# Think unless told not to: every thinking model but 2.5 Flash-Lite, which thinks only when asked.
THINKING = frozenset(
    model for model, _, _, _, thinking in GEMINI_MODELS if thinking and model != "gemini-2.5-flash-lite"
)
EMBEDDING_MODELS = (
    ("gemini-embedding-001", "Gemini Embedding 001", 2_048),
    ("text-embedding-004", "Text Embedding 004", 2_048),
)
# The methods each of Gemini's own models serves (a batch of embeddings is served like one).
SERVES: Dict[str, frozenset] = {
    **{entry[0]: frozenset([*GENERATE, "streamGenerateContent"]) for entry in GEMINI_MODELS},
    **{entry[0]: frozenset([*EMBED, "batchEmbedContents"]) for entry in EMBEDDING_MODELS},
}
PAGE = 50
MAX_PAGE = 1000


def not_found(model: str, version: str, method: str = "generateContent") -> errors.APIError:
    return errors.APIError(
        404,
        f"models/{model} is not found for API version {version}, or is not supported for {method}. Call "
        "ListModels to see the list of available models and their supported methods.",
        "not_found_error",
    )


def check_serves(model: str, method: str, version: str) -> None:
    """404 for a method one of Gemini's own models does not serve (``embedContent`` on a generation
    model, ``generateContent`` on an embedding one); any other model id is taken as it comes."""
    base = model.partition("@")[0]  # a fault's suffix is not part of the id
    served = SERVES.get(base)
    if served is not None and method not in served:
        raise not_found(base, version, method)


def _model(
    model_id: str, display: str, limit_in: int, limit_out: int, thinking: bool, methods: List[str]
) -> Dict[str, Any]:
    entry: Dict[str, Any] = {
        "name": f"models/{model_id}",
        "version": "001",
        "displayName": display,
        "description": f"{display}, as mokku serves it.",
        "inputTokenLimit": limit_in,
        "outputTokenLimit": limit_out,
        "supportedGenerationMethods": methods,
    }
    if methods is GENERATE:
        entry.update(temperature=1, topP=0.95, topK=64, maxTemperature=2, thinking=thinking)
    return entry


class Models:
    def __init__(self, extra_ids: Iterable[str] = ()) -> None:
        entries = [_model(*entry, GENERATE) for entry in GEMINI_MODELS]
        entries += [_model(m, name, limit, 1, False, EMBED) for m, name, limit in EMBEDDING_MODELS]
        known = {entry["name"] for entry in entries}
        entries += [
            _model(m, m, 1_048_576, 65_536, False, GENERATE)
            for m in (*OWN_MODELS, *extra_ids)
            if f"models/{m}" not in known
        ]
        self._entries = entries
        self._bodies = {entry["name"][len("models/") :]: dumps(entry) for entry in entries}

    def list_models(self, request: Request) -> Response:
        query = {k: v[-1] for k, v in parse_qs(request.environ.get("QUERY_STRING", "")).items()}
        size = PAGE
        if "pageSize" in query:
            try:
                size = int(query["pageSize"])
            except ValueError:
                raise errors.invalid_request(
                    f"Invalid value at 'page_size' (TYPE_INT32), \"{query['pageSize']}\"", "pageSize"
                ) from None
            size = min(max(size, 1), MAX_PAGE) if size else PAGE  # 0 is proto3's unset: the default
        start = 0
        token = query.get("pageToken")
        if token:
            if len(token) > 9 or not (token.isascii() and token.isdigit()) or int(token) > len(self._entries):
                raise errors.invalid_request("Invalid page token.", "pageToken")
            start = int(token)
        page = self._entries[start : start + size]
        body: Dict[str, Any] = {"models": page}
        if start + size < len(self._entries):
            body["nextPageToken"] = str(start + size)
        return json_response(body)

    def retrieve_model(self, request: Request, model: str) -> Response:
        name = model[len("models/") :] if model.startswith("models/") else model
        body = self._bodies.get(name)
        if body is None:
            raise not_found(name, request.path.split("/")[1])
        return encoded_json_response(body)
