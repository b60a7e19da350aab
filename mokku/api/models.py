"""``GET /v1/models`` and ``GET /v1/models/{model}``: a built-in catalogue.

The catalogue lists current OpenAI model ids, mokku's own models (the echo
model ``mokku-echo-1``, then the simulation models), and any ids added by
``MOKKU_MODELS`` / ``MOKKU_MODELS_FILE``. It only feeds these two
endpoints: the generation endpoints accept any model id, since mocks are used
with arbitrary names. Bodies are encoded once, when the app is built.
"""

from __future__ import annotations

import time
from typing import Dict, Iterable, List, Tuple

from mokku import errors
from mokku.server.http import Request, Response, dumps, encoded_json_response
from mokku.simulation.faults import SIMULATION_MODELS

# (id, created, owned_by), in the order the list returns them.
OPENAI_MODELS: Tuple[Tuple[str, int, str], ...] = (
    ("gpt-5.5", 1776902400, "system"),
    ("gpt-5.4", 1772668800, "system"),
    ("gpt-5.4-mini", 1773705600, "system"),
    ("gpt-5.4-nano", 1773705600, "system"),
    ("gpt-5.2", 1765411200, "system"),
    ("gpt-5.1", 1763020800, "system"),
    ("gpt-5", 1754524800, "system"),
    ("gpt-5-mini", 1754524800, "system"),
    ("gpt-5-nano", 1754524800, "system"),
    ("gpt-4.1", 1744316542, "system"),
    ("gpt-4.1-mini", 1744318173, "system"),
    ("gpt-4.1-nano", 1744321707, "system"),
    ("o4-mini", 1744225351, "system"),
    ("o3", 1744225308, "system"),
    ("o3-mini", 1737146383, "system"),
    ("o1", 1734375816, "system"),
    ("gpt-4o", 1715367049, "system"),
    ("gpt-4o-mini", 1721172741, "system"),
    ("gpt-4-turbo", 1712361441, "system"),
    ("gpt-4", 1687882411, "openai"),
    ("gpt-3.5-turbo", 1677610602, "openai"),
    ("gpt-3.5-turbo-instruct", 1692901427, "system"),
    ("davinci-002", 1692634301, "system"),
    ("babbage-002", 1692634615, "system"),
    ("text-embedding-3-small", 1705948997, "system"),
    ("text-embedding-3-large", 1705953180, "system"),
    ("text-embedding-ada-002", 1671217299, "openai-internal"),
)

# The dated snapshot each alias serves today: an answer names it, as the real API's does
# (``gpt-4o`` is answered by ``gpt-4o-2024-08-06``); other ids are named as asked.
SNAPSHOTS: Dict[str, str] = {
    "gpt-5.2": "gpt-5.2-2025-12-11",
    "gpt-5.1": "gpt-5.1-2025-11-13",
    "gpt-5": "gpt-5-2025-08-07",
    "gpt-5-mini": "gpt-5-mini-2025-08-07",
    "gpt-5-nano": "gpt-5-nano-2025-08-07",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "o4-mini": "o4-mini-2025-04-16",
    "o3": "o3-2025-04-16",
    "o3-mini": "o3-mini-2025-01-31",
    "o1": "o1-2024-12-17",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4-turbo": "gpt-4-turbo-2024-04-09",
    "gpt-4": "gpt-4-0613",
    "gpt-3.5-turbo": "gpt-3.5-turbo-0125",
}


def snapshot(model: str) -> str:
    """The model an answer names for the one asked: an alias's snapshot, else the id as asked."""
    return SNAPSHOTS.get(model, model)


# mokku's own models: the plain echo under a name of mokku's, then the fault simulations.
ECHO_MODEL = "mokku-echo-1"
OWN_MODELS: Tuple[str, ...] = (ECHO_MODEL, *SIMULATION_MODELS)
OWN_CREATED = 1735689600
OWN_OWNER = "mokku"


def model_object(model_id: str, created: int, owned_by: str) -> Dict[str, object]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": owned_by}


def build_catalogue(extra_ids: Iterable[str]) -> List[Dict[str, object]]:
    """Built-in models, then mokku's own, then configured ones; ids are unique."""
    entries = [model_object(*entry) for entry in OPENAI_MODELS]
    entries += [model_object(m, OWN_CREATED, OWN_OWNER) for m in OWN_MODELS]
    known = {entry["id"] for entry in entries}
    configured_at = int(time.time())
    entries += [model_object(m, configured_at, "user") for m in extra_ids if m not in known]
    return entries


class Catalogue:
    """Serves the model list and single models from bodies encoded at start-up."""

    def __init__(self, extra_ids: Iterable[str] = ()) -> None:
        entries = build_catalogue(extra_ids)
        self._list_body = dumps({"object": "list", "data": entries})
        self._model_bodies = {entry["id"]: dumps(entry) for entry in entries}

    def list_models(self, request: Request) -> Response:
        return encoded_json_response(self._list_body)

    def retrieve_model(self, request: Request, model: str) -> Response:
        body = self._model_bodies.get(model)
        if body is None:
            raise errors.model_not_found(model)
        return encoded_json_response(body)
