"""Stored chat completions: ``store: true`` on ``POST /v1/chat/completions`` keeps the completion,
and ``/v1/chat/completions`` lists them, ``/{id}`` retrieves, updates (its metadata) and deletes
one, ``/{id}/messages`` lists the messages it was asked with.

A stored completion is kept as a conversation of the server's state file (``mokku.control.objects``)
under an id no conversation route can reach (``NAMESPACE``): its body is the completion with its
``metadata``, its items are the request's messages. So it is shared by every worker and replica,
and bounded with the conversations (docs/limits.md).
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from mokku import errors
from mokku.api import items
from mokku.api.models import snapshot
from mokku.control import objects
from mokku.server.http import Request, Response, dumps, encoded_json_response, json_response

# Conversation ids hold no ``/`` (a route's segment cannot), so nothing else can reach these.
NAMESPACE = "chat/"
_WALK = 100  # stored completions read at a time while a list filters them
_PART_TYPES = ("text", "image_url")  # the content parts a listed message shows


def not_found(completion_id: str) -> errors.APIError:
    return errors.APIError(404, f"Chat completion with id '{completion_id}' not found.")


class StoredChats:
    """The endpoint family, over the server's stored objects."""

    def __init__(self, stored: objects.Objects) -> None:
        self.stored = stored

    def keep(
        self,
        completion: Dict[str, Any],
        messages: Sequence[Mapping[str, Any]],
        metadata: Optional[Dict[str, Any]],
    ) -> None:
        """Store a completion as answered, with the messages it was asked with."""
        completion_id = completion["id"]
        body = dumps({**completion, "metadata": metadata or {}})
        kept = [
            (f"{completion_id}-{index}", dumps(_listed(message, f"{completion_id}-{index}")))
            for index, message in enumerate(messages)
        ]
        with items.writing(self.stored, "messages"):
            self.stored.create_conversation(NAMESPACE + completion_id, body, kept)

    def list_completions(self, request: Request) -> Response:
        """Oldest first unless asked otherwise; ``model`` and ``metadata[key]`` filter."""
        query = items.ListQuery(request, default_order="asc")
        wanted = _filters(query.query)
        after = NAMESPACE + query.after if query.after is not None else None
        found: List[Dict[str, Any]] = []
        with items.writing(self.stored, "after"), query.paged():
            while len(found) <= query.limit:
                batch = self.stored.conversations_after(NAMESPACE, after, _WALK, query.newest_first)
                for _, body in batch:
                    completion = json.loads(body)
                    if _matches(completion, wanted):
                        found.append(completion)
                if len(batch) < _WALK:
                    break
                after = batch[-1][0]
        return json_response(items.list_body(found[: query.limit], len(found) > query.limit))

    def retrieve(self, request: Request, completion_id: str) -> Response:
        return encoded_json_response(self._find(completion_id))

    def update(self, request: Request, completion_id: str) -> Response:
        find, missing = partial(self._find, completion_id), partial(not_found, completion_id)
        key = NAMESPACE + completion_id
        return encoded_json_response(
            items.replace_metadata(request, self.stored, key, find, "metadata", missing)
        )

    def delete(self, request: Request, completion_id: str) -> Response:
        with items.writing(self.stored, "completion_id"):
            deleted = self.stored.delete_conversation(NAMESPACE + completion_id)
        if not deleted:
            raise not_found(completion_id)
        return json_response({"object": "chat.completion.deleted", "id": completion_id, "deleted": True})

    def messages(self, request: Request, completion_id: str) -> Response:
        query = items.ListQuery(request, default_order="asc")
        with items.writing(self.stored, "after"), query.paged():
            page = self.stored.page_items(
                NAMESPACE + completion_id, query.after, query.limit, query.newest_first
            )
        if page is None:
            raise not_found(completion_id)
        return json_response(items.list_body(items.decoded(page.items), page.has_more))

    def _find(self, completion_id: str) -> bytes:
        with items.writing(self.stored, "completion_id"):
            found = self.stored.conversation(NAMESPACE + completion_id)
        if found is None:
            raise not_found(completion_id)
        return found


def _listed(message: Mapping[str, Any], message_id: str) -> Dict[str, Any]:
    """A request message as ``/messages`` lists it: its text as ``content``, and the text and image
    parts it was sent as (or null) as ``content_parts``."""
    content = message.get("content")
    parts = None
    if isinstance(content, list):
        parts = [part for part in content if part.get("type") in _PART_TYPES]
        texts = [part["text"] for part in content if part.get("type") == "text"]
        content = "".join(texts) if texts else None
    listed = {
        "id": message_id,
        "role": message["role"],
        "content": content,
        "name": message.get("name"),
        "content_parts": parts,
    }
    for field in ("tool_calls", "function_call", "tool_call_id", "refusal", "audio"):
        if message.get(field) is not None:
            listed[field] = message[field]
    return listed


def _filters(query: Mapping[str, List[str]]) -> List[Tuple[str, Any, str]]:
    """``model`` and ``metadata[key]`` as (field, key, value): what a listed completion must hold."""
    wanted: List[Tuple[str, Any, str]] = []
    for name, values in query.items():
        if name == "model":  # an alias finds the completions its snapshot answered
            wanted.append(("model", None, snapshot(values[-1])))
        elif name.startswith("metadata[") and name.endswith("]"):
            wanted.append(("metadata", name[9:-1], values[-1]))
    return wanted


def _matches(completion: Mapping[str, Any], wanted: Sequence[Tuple[str, Any, str]]) -> bool:
    for field, key, value in wanted:
        held = completion.get(field) if key is None else (completion.get("metadata") or {}).get(key)
        if held != value:
            return False
    return True
