"""The admin surface, outside ``/v1``: ``/mokku/requests`` (the journal), ``/mokku/scenarios``
(scripted replies) and ``/mokku/verdict``.

Admin requests are never journaled or traced. ``MOKKU_ADMIN=0`` removes the surface;
``MOKKU_ADMIN_TOKEN`` makes it ask for ``Authorization: Bearer <token>``. Whoever reaches the
surface can read every prompt and script every reply, so on an address other machines reach (not
loopback) it stays off without a token, unless ``MOKKU_ADMIN=open`` says to open it anyway; a
warning at start-up says which. A state file that cannot be used answers a 503 naming it.
"""

from __future__ import annotations

import hmac
import ipaddress
import math
from typing import Any, Dict, Iterable, Optional
from urllib.parse import parse_qs

from mokku import config, errors
from mokku.api import validate
from mokku.control import statedb
from mokku.control.journal import MAX_PAGE, PAGE_BYTES, Journal
from mokku.control.scenarios import MAX_RULES, Scenarios, check_rule, known_keys
from mokku.control.verdict import judge
from mokku.credentials import bearer_key
from mokku.server.http import Request, Response, json_response


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or name) is reachable from this machine only."""
    name = host.strip().strip("[]").split("%", 1)[0]
    if name.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False  # another name: it may resolve to anything
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def locked_message(host: str) -> str:
    return (
        f"The admin endpoints are off: this server listens on {host}, where anyone who reaches it "
        "could read the journal and script every reply. Set MOKKU_ADMIN_TOKEN to require "
        "Authorization: Bearer <token>, or MOKKU_ADMIN=open to serve them without one."
    )


def exposure_warning(settings: config.Settings, hosts: Iterable[str]) -> Optional[str]:
    """The start-up warning for an admin surface on an address other machines reach, if any."""
    exposed = [host for host in hosts if not is_loopback(host)]
    if not settings.admin or settings.admin_token or not exposed:
        return None
    if settings.admin_open:
        return (
            f"MOKKU_ADMIN=open: the admin endpoints (/mokku/*) answer anyone who reaches {exposed[0]}, "
            "with no token: they can read every prompt and script every reply"
        )
    return locked_message(exposed[0]) + " They answer 403 until then."


class Admin:
    def __init__(
        self,
        journal: Optional[Journal],
        scenarios: Optional[Scenarios],
        token: str,
        open_: bool = False,
        host: str = config.DEFAULT_HOST,
    ) -> None:
        self.journal = journal
        self.scenarios = scenarios
        self._token = token.encode()
        self._open = open_
        self._host = host

    def _authorize(self, request: Request) -> None:
        if self._token:
            sent = bearer_key(request.header("Authorization")).encode()
            if not hmac.compare_digest(sent, self._token):
                raise errors.APIError(
                    401, "The admin endpoints need Authorization: Bearer <MOKKU_ADMIN_TOKEN>."
                )
            return
        if self._open:
            return
        # The address the request came in on (gunicorn and the stdlib server give the listening
        # socket's), else the configured one.
        listening = str(request.environ.get("SERVER_NAME", ""))
        host = listening if _is_address(listening) else self._host
        if not is_loopback(host):
            raise errors.APIError(403, locked_message(host), code="admin_disabled")

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
            known_keys(body, "", ("rules",))
            raw = validate.array(validate.required(body, "rules"), "rules", 1, MAX_RULES) or []
            rules = [check_rule(rule, f"rules[{index}]") for index, rule in enumerate(raw)]
        else:
            rules = [check_rule(body)]
        return json_response({"object": "list", "data": scripts.add_all(rules)})

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
        """A page of the journal: the newest ``limit`` entries (at most ``MAX_PAGE``, and about
        ``PAGE_BYTES``), oldest first; ``before=<id>`` pages back, ``after=<id>`` forward."""
        journal = self._check(request)
        query = parse_qs(request.environ.get("QUERY_STRING", ""))

        def one(name: str) -> Optional[str]:
            values = query.get(name)
            return values[-1] if values else None

        since = _number(one("since"), "since")
        limit = _whole(one("limit"), "limit")
        after, before = _whole(one("after"), "after", 0), _whole(one("before"), "before", 0)
        with statedb.answered(journal.store.name):
            page = journal.page(
                one("path"),
                one("model"),
                since,
                min(limit or 100, MAX_PAGE, journal.size),
                after,
                before,
                PAGE_BYTES,
            )
        body: Dict[str, Any] = {
            "object": "list",
            "data": page.entries,
            "first_id": page.entries[0]["id"] if page.entries else None,
            "last_id": page.entries[-1]["id"] if page.entries else None,
            "has_more": page.has_more,
        }
        return json_response(body)

    def verdict(self, request: Request) -> Response:
        journal = self._check(request)
        with statedb.answered(journal.store.name):
            return json_response(judge(journal.scan()))

    def clear_requests(self, request: Request) -> Response:
        journal = self._check(request)
        with statedb.answered(journal.store.name):
            journal.clear()
        return json_response({"object": "list", "deleted": True})


def _number(raw: Optional[str], name: str) -> Any:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise validate.wrong_type(name, "a number", raw) from None
    if not math.isfinite(value):  # nan compares false with everything: each store read it its own way
        raise validate.wrong_type(name, "a finite number", raw)
    return value


def _whole(raw: Optional[str], name: str, minimum: int = 1) -> Optional[int]:
    value = _number(raw, name)
    if value is None:
        return None
    if value != value or value < minimum or not float(value).is_integer() or value > 2**62:
        raise errors.invalid_request(f"'{name}' must be a whole number from {minimum}.", name)
    return int(value)
