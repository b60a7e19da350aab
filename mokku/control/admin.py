"""The admin surface, outside ``/v1``: ``/mokku/requests`` (the journal).

Admin requests are never journaled or traced. ``MOKKU_ADMIN=0`` removes the surface;
``MOKKU_ADMIN_TOKEN`` makes it ask for ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
from typing import Any, Optional
from urllib.parse import parse_qs

from mokku import errors
from mokku.api import validate
from mokku.control.journal import Journal
from mokku.control.scenarios import Scenarios, check_rule
from mokku.control.verdict import judge
from mokku.credentials import bearer_key
from mokku.server.http import Request, Response, json_response


class Admin:
    def __init__(self, journal: Optional[Journal], scenarios: Optional[Scenarios], token: str) -> None:
        self.journal = journal
        self.scenarios = scenarios
        self._token = token.encode()

    def _authorize(self, request: Request) -> None:
        if self._token:
            sent = bearer_key(request.header("Authorization")).encode()
            if not hmac.compare_digest(sent, self._token):
                raise errors.APIError(
                    401, "The admin endpoints need Authorization: Bearer <MOKKU_ADMIN_TOKEN>."
                )

    def _scripts(self, request: Request) -> Scenarios:
        self._authorize(request)
        if self.scenarios is None:
            raise errors.APIError(
                404, "Scripted replies are not available in this app.", code="scenarios_off"
            )
        return self.scenarios

    def add_scenarios(self, request: Request) -> Response:
        """One rule, or ``{"rules": [...]}``; all are checked before any is added."""
        scripts = self._scripts(request)
        body = request.json()
        if "rules" in body:
            raw = validate.array(body["rules"], "rules", 1) or []
            rules = [check_rule(rule, f"rules[{index}]") for index, rule in enumerate(raw)]
        else:
            rules = [check_rule(body)]
        return json_response({"object": "list", "data": [scripts.add(rule) for rule in rules]})

    def list_scenarios(self, request: Request) -> Response:
        return json_response({"object": "list", "data": self._scripts(request).rules()})

    def clear_scenarios(self, request: Request) -> Response:
        self._scripts(request).clear()
        return json_response({"object": "list", "deleted": True})

    def _check(self, request: Request) -> Journal:
        self._authorize(request)
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

    def verdict(self, request: Request) -> Response:
        journal = self._check(request)
        return json_response(judge(journal.entries(limit=journal.size)))

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
