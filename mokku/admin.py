"""The admin surface, outside ``/v1``: ``/mokku/requests`` (the journal).

Admin requests are never journaled or traced. ``MOKKU_ADMIN=0`` removes the surface;
``MOKKU_ADMIN_TOKEN`` makes it ask for ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
from typing import Any, Optional
from urllib.parse import parse_qs

from . import errors, validate
from .http import Request, Response, json_response
from .journal import Journal

PREFIX = "/mokku/"


class Admin:
    def __init__(self, journal: Optional[Journal], token: str) -> None:
        self.journal = journal
        self._token = token.encode()

    def _check(self, request: Request) -> Journal:
        if self._token:
            sent = request.header("Authorization").partition(" ")[2].strip().encode()
            if not hmac.compare_digest(sent, self._token):
                raise errors.APIError(
                    401, "The admin endpoints need Authorization: Bearer <MOKKU_ADMIN_TOKEN>."
                )
        if self.journal is None:
            raise errors.APIError(404, "The request journal is off (MOKKU_JOURNAL=0).", code="journal_off")
        return self.journal

    def list_requests(self, request: Request) -> Response:
        journal = self._check(request)
        query = parse_qs(request.environ.get("QUERY_STRING", ""))

        def one(name: str) -> Optional[str]:
            values = query.get(name)
            return values[-1] if values else None

        since = _number(one("since"), "since")
        limit = _number(one("limit"), "limit")
        if limit is not None and (limit < 1 or not float(limit).is_integer()):
            raise errors.invalid_request("'limit' must be a whole number from 1.", "limit")
        entries = journal.entries(one("path"), one("model"), since, int(limit) if limit else 100)
        return json_response({"object": "list", "data": entries})

    def clear_requests(self, request: Request) -> Response:
        self._check(request).clear()
        return json_response({"object": "list", "deleted": True})


def _number(raw: Optional[str], name: str) -> Any:
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        raise validate.wrong_type(name, "a number", raw) from None
