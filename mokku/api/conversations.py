"""The Conversations API: ``/v1/conversations`` and its items.

A conversation is a stored list of items (``items``); ``responses.create`` with ``conversation``
reads them as the earlier turns and appends its input and output. Kept in the server's state file
(``mokku.control.objects``), bounded, oldest conversation out first.
"""

from __future__ import annotations

from functools import partial
from typing import Any, List

from mokku import errors
from mokku.api import items, render, validate
from mokku.api.ids import random_id
from mokku.api.responses import conversation_not_found
from mokku.control import objects
from mokku.server.http import Request, Response, dumps, encoded_json_response, json_response

MAX_ADDED = 20  # items one call adds


def item_not_found(item_id: str) -> errors.APIError:
    return errors.APIError(404, f"Item with id '{item_id}' not found.", "invalid_request_error")


class Conversations:
    """The endpoint family, over the server's stored objects."""

    def __init__(self, stored: objects.Objects) -> None:
        self.stored = stored

    def create(self, request: Request) -> Response:
        body = request.json()
        metadata = items.metadata(body)
        added = _items(body.get("items"), required=False)
        conversation_id = random_id("conv_", 48)
        conversation = {
            "id": conversation_id,
            "object": "conversation",
            "created_at": render.now(),
            "metadata": metadata or {},
        }
        encoded = dumps(conversation)
        with items.writing(self.stored, "items"):
            self.stored.create_conversation(conversation_id, encoded, items.encoded(added))
        return encoded_json_response(encoded)

    def retrieve(self, request: Request, conversation_id: str) -> Response:
        return encoded_json_response(self._find(conversation_id))

    def update(self, request: Request, conversation_id: str) -> Response:
        find, missing = partial(self._find, conversation_id), partial(conversation_not_found, conversation_id)
        replaced = items.replace_metadata(request, self.stored, conversation_id, find, "items", missing)
        return encoded_json_response(replaced)

    def delete(self, request: Request, conversation_id: str) -> Response:
        with items.writing(self.stored, "items"):
            deleted = self.stored.delete_conversation(conversation_id)
        if not deleted:
            raise conversation_not_found(conversation_id)
        return json_response({"id": conversation_id, "object": "conversation.deleted", "deleted": True})

    def list_items(self, request: Request, conversation_id: str) -> Response:
        query = items.ListQuery(request)
        items.check_included(request)
        with items.writing(self.stored, "items"), query.paged():
            page = self.stored.page_items(conversation_id, query.after, query.limit, query.newest_first)
        if page is None:
            raise conversation_not_found(conversation_id)
        return json_response(items.list_body(items.decoded(page.items), page.has_more))

    def add_items(self, request: Request, conversation_id: str) -> Response:
        body = request.json()
        items.check_included(request)
        added = items.listed(_items(validate.required(body, "items"), required=True))
        with items.writing(self.stored, "items"):
            if not self.stored.add_items(conversation_id, items.encoded(added)):
                raise conversation_not_found(conversation_id)
        return json_response(items.list_body(added, False))

    def item(self, request: Request, conversation_id: str, item_id: str) -> Response:
        items.check_included(request)
        with items.writing(self.stored, "items"):
            found = self.stored.item(conversation_id, item_id)
        if found is None:
            self._find(conversation_id)
            raise item_not_found(item_id)
        return encoded_json_response(found)

    def delete_item(self, request: Request, conversation_id: str, item_id: str) -> Response:
        """Remove one item; answers the conversation, as the real API does."""
        with items.writing(self.stored, "items"):
            deleted = self.stored.delete_item(conversation_id, item_id)
        conversation = self._find(conversation_id)
        if not deleted:
            raise item_not_found(item_id)
        return encoded_json_response(conversation)

    def _find(self, conversation_id: str) -> bytes:
        with items.writing(self.stored, "items"):
            found = self.stored.conversation(conversation_id)
        if found is None:
            raise conversation_not_found(conversation_id)
        return found


def _items(value: Any, required: bool) -> List[items.Item]:
    """Up to 20 input items (``items``), as stored."""
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise validate.wrong_type("items", "an array of input items", value)
    if not value and not required:
        return []
    if len(value) > MAX_ADDED:
        raise errors.invalid_request(
            f"Invalid 'items': array too long. Expected an array with maximum length {MAX_ADDED}, "
            f"but got an array with length {len(value)} instead.",
            "items",
            "array_above_max_length",
        )
    return items.read(value, "items")
