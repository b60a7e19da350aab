"""``GET /v1/models`` and ``GET /v1/models/{model}``: a built-in catalogue.

The catalogue lists current OpenAI model ids, mokku's own models (the echo
model ``mokku-echo-1``, then the simulation models), and any ids added by
``MOKKU_MODELS`` / ``MOKKU_MODELS_FILE``. It only feeds these two
endpoints: the generation endpoints accept any model id, since mocks are used
with arbitrary names. Bodies are encoded once, when the app is built.
"""

from __future__ import annotations

import re
import time
from typing import Dict, Iterable, List, Optional, Tuple

from mokku import errors
from mokku.server.http import Request, Response, dumps, encoded_json_response, json_response
from mokku.simulation.faults import SIMULATION_MODELS

# The models the real API serves today: (id, created, shutdown date or None), in the order the list
# returns them. ``created`` is the real list's value; for the three models released after the last
# list seen (gpt-6.2-astra, gpt-6.2-sol, gpt-6.1-terra) it is their release day. Shut-down models
# (gpt-4, gpt-3.5-turbo, o1, o3-mini, o4-mini, gpt-4.1-nano, gpt-4-turbo: 2026-10-23) are gone from
# it, as from the real list; the generation endpoints still take their ids.
OPENAI_MODELS: Tuple[Tuple[str, int, Optional[str]], ...] = (
    ("gpt-6.2-astra", 1794873600, None),
    ("gpt-6.2-sol", 1794873600, None),
    ("gpt-6.1-terra", 1792972800, None),
    ("gpt-6.1-sol", 1790552874, None),
    ("gpt-6-astra", 1787853604, None),
    ("gpt-6-sol", 1789405937, None),
    ("gpt-6-luna", 1789406102, None),
    ("gpt-5.6-sol", 1782228018, None),
    ("gpt-5.6-terra", 1782228459, None),
    ("gpt-5.6-luna", 1782228658, None),
    ("chat-latest", 1777704602, None),
    ("gpt-5.5", 1776824847, None),
    ("gpt-5.5-pro", 1776894349, None),
    ("gpt-5.4", 1772691852, None),
    ("gpt-5.4-pro", 1772659601, None),
    ("gpt-5.4-mini", 1773451123, None),
    ("gpt-5.4-nano", 1773450870, "2027-04-01"),
    ("gpt-5.3-codex", 1770537915, None),
    ("gpt-5.2-codex", 1766164985, None),
    ("gpt-5.2", 1765313051, None),
    ("gpt-5.2-pro", 1765343983, None),
    ("gpt-5.1-codex-max", 1763671532, None),
    ("gpt-5.1", 1762800673, "2027-04-01"),
    ("gpt-5-pro", 1759469822, None),
    ("gpt-5", 1754425777, "2026-12-11"),
    ("gpt-5-mini", 1754425928, "2026-12-11"),
    ("gpt-5-nano", 1754426384, "2026-12-11"),
    ("o3", 1744225308, "2026-12-11"),
    ("gpt-4.1", 1744316542, "2027-01-14"),
    ("gpt-4.1-mini", 1744318173, "2027-01-14"),
    ("gpt-4o", 1715367049, "2027-01-14"),
    ("gpt-4o-mini", 1721172741, "2027-01-14"),
    ("gpt-3.5-turbo-instruct", 1692901427, None),
    ("text-embedding-3-small", 1705948997, None),
    ("text-embedding-3-large", 1705953180, None),
    ("text-embedding-ada-002", 1671217299, None),
)
# Who owns a model, where the real list says other than "system".
_OWNERS = {"text-embedding-ada-002": "openai-internal"}

# The dated snapshot each alias serves today, and its ``created`` (the real list's where known, else
# the alias's): an answer names it, as the real API's does (``gpt-4o`` is answered by
# ``gpt-4o-2024-08-06``), and the list has it right after its alias. Other ids are named as asked.
_SNAPSHOTS: Dict[str, Tuple[str, Optional[int]]] = {
    "gpt-5.5": ("gpt-5.5-2026-04-23", 1776839241),
    "gpt-5.5-pro": ("gpt-5.5-pro-2026-04-23", 1776894470),
    "gpt-5.4": ("gpt-5.4-2026-03-05", 1772654062),
    "gpt-5.4-pro": ("gpt-5.4-pro-2026-03-05", 1772659657),
    "gpt-5.4-mini": ("gpt-5.4-mini-2026-03-17", 1773451076),
    "gpt-5.4-nano": ("gpt-5.4-nano-2026-03-17", 1773450837),
    "gpt-5.2": ("gpt-5.2-2025-12-11", None),
    "gpt-5.2-pro": ("gpt-5.2-pro-2025-12-11", None),
    "gpt-5.1": ("gpt-5.1-2025-11-13", None),
    "gpt-5-pro": ("gpt-5-pro-2025-10-06", None),
    "gpt-5": ("gpt-5-2025-08-07", None),
    "gpt-5-mini": ("gpt-5-mini-2025-08-07", None),
    "gpt-5-nano": ("gpt-5-nano-2025-08-07", None),
    "o3": ("o3-2025-04-16", None),
    "gpt-4.1": ("gpt-4.1-2025-04-14", None),
    "gpt-4.1-mini": ("gpt-4.1-mini-2025-04-14", None),
    "gpt-4o": ("gpt-4o-2024-08-06", None),
    "gpt-4o-mini": ("gpt-4o-mini-2024-07-18", None),
    # shut down, so not listed, but still answered under their snapshot's name
    "gpt-4.1-nano": ("gpt-4.1-nano-2025-04-14", None),
    "o4-mini": ("o4-mini-2025-04-16", None),
    "o3-mini": ("o3-mini-2025-01-31", None),
    "o1": ("o1-2024-12-17", None),
    "gpt-4-turbo": ("gpt-4-turbo-2024-04-09", None),
    "gpt-4": ("gpt-4-0613", None),
    "gpt-3.5-turbo": ("gpt-3.5-turbo-0125", None),
}
SNAPSHOTS: Dict[str, str] = {alias: dated for alias, (dated, _) in _SNAPSHOTS.items()}

# The models the real API serves on the Responses API alone (its SDK's ``ResponsesModel`` less its
# ``ChatModel``): the pro, codex, deep-research and computer-use models.
RESPONSES_ONLY = re.compile(
    r"(o1-pro|o3-pro|o3-deep-research|o4-mini-deep-research|computer-use-preview"
    r"|gpt-5(\.\d+)?-pro|gpt-5(\.\d+)?-codex(-max|-mini)?)(-\d{4}-\d{2}-\d{2})?$"
)

# The models legacy completions serve, and the chat models of the catalogue (with their snapshots,
# shut-down ones too): each endpoint refuses the other's by name, as the real API does. Any other id,
# a mock's own name, is taken by both. Azure spells GPT-3.5 its own way (``gpt-35-turbo``): its
# deployments of those are known too.
COMPLETION_MODELS = frozenset(
    {"gpt-3.5-turbo-instruct", "davinci-002", "babbage-002", "gpt-35-turbo-instruct"}
)
EMBEDDING_MODELS = frozenset(model for model, _, _ in OPENAI_MODELS if model.startswith("text-embedding"))
CHAT_MODELS = frozenset(
    {
        *(model for model, _, _ in OPENAI_MODELS if not model.startswith("text-embedding")),
        *SNAPSHOTS,
        *SNAPSHOTS.values(),
        "gpt-35-turbo",
        "gpt-35-turbo-16k",
    }
    - COMPLETION_MODELS
)


def snapshot(model: str) -> str:
    """The model an answer names for the one asked: an alias's snapshot, else the id as asked."""
    return SNAPSHOTS.get(model, model)


# mokku's own models: the plain echo under a name of mokku's, then the fault simulations.
ECHO_MODEL = "mokku-echo-1"
OWN_MODELS: Tuple[str, ...] = (ECHO_MODEL, *SIMULATION_MODELS)
OWN_CREATED = 1735689600
OWN_OWNER = "mokku"


def model_object(
    model_id: str, created: int, owned_by: str, shutdown_date: Optional[str] = None
) -> Dict[str, object]:
    return {
        "id": model_id,
        "object": "model",
        "created": created,
        "owned_by": owned_by,
        "shutdown_date": shutdown_date,
    }


def openai_entries() -> List[Dict[str, object]]:
    """The real models, each alias followed by the snapshot it serves."""
    entries = []
    for model_id, created, shutdown_date in OPENAI_MODELS:
        owner = _OWNERS.get(model_id, "system")
        entries.append(model_object(model_id, created, owner, shutdown_date))
        if model_id in _SNAPSHOTS:
            dated, dated_created = _SNAPSHOTS[model_id]
            entries.append(model_object(dated, dated_created or created, owner, shutdown_date))
    return entries


def build_catalogue(extra_ids: Iterable[str]) -> List[Dict[str, object]]:
    """Built-in models, then mokku's own, then configured ones; ids are unique."""
    entries = openai_entries()
    entries += [model_object(m, OWN_CREATED, OWN_OWNER) for m in OWN_MODELS]
    known = {entry["id"] for entry in entries}
    configured_at = int(time.time())
    entries += [model_object(m, configured_at, "user") for m in extra_ids if m not in known]
    return entries


# A fine-tune's id: ``ft:`` then its base model, organisation, suffix (may be empty) and job's id.
_FINE_TUNE = re.compile(r"ft:[\w.\-]{1,64}:[\w\-]{0,64}:[\w\-]{0,64}:[\w\-]{1,64}")


class Catalogue:
    """Serves the model list and single models from bodies encoded at start-up."""

    def __init__(self, extra_ids: Iterable[str] = ()) -> None:
        entries = build_catalogue(extra_ids)
        self._list_body = dumps({"object": "list", "data": entries})
        self._model_bodies = {entry["id"]: dumps(entry) for entry in entries}
        self._configured = frozenset(entry["id"] for entry in entries if entry["owned_by"] == "user")

    def list_models(self, request: Request) -> Response:
        return encoded_json_response(self._list_body)

    def retrieve_model(self, request: Request, model: str) -> Response:
        body = self._model_bodies.get(model)
        if body is None:
            raise errors.model_not_found(model)
        return encoded_json_response(body)

    def delete_model(self, request: Request, model: str) -> Response:
        """A fine-tune (``ft:`` ids) or a configured model is deleted, as its owner may; any other
        model is not the caller's, and the real API answers that it does not exist. The list stays
        as configured."""
        if not (_FINE_TUNE.fullmatch(model) or model in self._configured):
            raise errors.APIError(404, "That model does not exist", "invalid_request_error", "model")
        return json_response({"id": model, "object": "model", "deleted": True})
