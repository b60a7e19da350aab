"""The request journal: what each client sent and got, shared by every worker of one server.

An entry is made after the response is produced (for a stream, when it ends) and handed to this
process's writer thread, which writes what has gathered in one batch to the store
(``mokku.store``): the server's state file, or Redis. Reads wait until every worker has written
what it was handed before the read began, so a test sees every request it got an answer to.
Headers that carry credentials (``mokku.credentials.is_secret``) are masked before they are stored.

Everything it holds is bounded (docs/limits.md): a body is stored whole only up to
``MOKKU_JOURNAL_BODY_BYTES`` of JSON, else as a marker (``truncated``, its size, its SHA-256 and
the start of its text), so the verdict still tells two large bodies apart; the journal keeps the
newest ``MOKKU_JOURNAL_SIZE`` entries and at most ``MOKKU_JOURNAL_BYTES``; a page of
``GET /mokku/requests`` holds at most ``MAX_PAGE`` entries and about ``PAGE_BYTES``. A store that
cannot be written costs the entries, never a request: a warning says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import marshal
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

from mokku.credentials import is_secret, mask_secret, redact_query
from mokku.server.http import Request
from mokku.store.base import MARSHAL_VERSION, MARSHALLED, SETTLE_TIMEOUT_S, JournalStore, Page, Row, Stored
from mokku.store.sqlite import SqliteJournal
from mokku.store.writer import Writer

log = logging.getLogger("mokku")

DEFAULT_BYTES = 64 * 1024 * 1024
DEFAULT_BODY_BYTES = 64 * 1024
# What an entry may hold besides its body (headers, usage, ...) before its headers are cut too.
ENTRY_EXTRA_BYTES = 64 * 1024
PREFIX_BYTES = 1024  # the start of a cut body kept in its marker
_MARKER_BYTES = 8 * 1024  # larger than any marker (its prefix escaped at worst)
MAX_PAGE = 1000  # entries in one page of GET /mokku/requests
PAGE_BYTES = 8 * 1024 * 1024  # a page stops before it passes this (it holds at least one entry)

# An entry's body as received (bytes), when it is kept whole: written as it is, not encoded again.
RAW_BODY = "_raw_body"

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_ASCII_ENCODER = json.JSONEncoder(separators=(",", ":"))


class Journal:
    """The shared journal: entries handed to a writer thread (``mokku.store.writer``), read back
    with every entry handed over before the read began, from every worker."""

    def __init__(
        self,
        path: str,
        size: int,
        max_bytes: int = DEFAULT_BYTES,
        body_bytes: int = DEFAULT_BODY_BYTES,
        store: Optional[JournalStore] = None,
    ) -> None:
        self.path = path
        self.size = size
        self.body_bytes = body_bytes
        self.store: JournalStore = store or SqliteJournal(path, size, max_bytes)
        self._writer = Writer(self._write, "request journal", self.store.tally)

    def record(self, entry: Dict[str, Any], expected: bool = False) -> None:
        """Hand the entry over; it is encoded and written off the request path. ``expected``: the
        entry ``expect`` announced (readers already wait for it)."""
        self._writer.put(entry, expected)

    def expect(self) -> None:
        """A stream's entry is on its way: its last event is about to go out, and its client may read
        the journal as soon as that arrives, before the server closes the stream and the entry is
        written. Reads from now on wait for it, until ``fulfil``."""
        self._writer.expect()

    def fulfil(self) -> None:
        """The expected entry will not come (it could not be made): readers stop waiting for it."""
        self._writer.wrote_one()

    def _write(self, entries: List[Dict[str, Any]]) -> None:
        rows: List[Row] = []
        limit = self.body_bytes + ENTRY_EXTRA_BYTES
        for entry in entries:
            raw = entry.pop(RAW_BODY, None)
            body = None
            if raw is not None:
                try:  # the body as it came (it parsed as JSON): kept as it is, never encoded again
                    body = raw.decode("utf-8")
                    entry["body"] = None  # the writer's own now
                except UnicodeDecodeError:
                    pass
            stored, size = encode(entry, limit)
            model = entry.get("model")
            rows.append(
                (
                    entry["time"],
                    _text(entry["path"]),
                    _text(model) if isinstance(model, str) else None,
                    size + len(raw) if body is not None else size,
                    stored,
                    body,
                )
            )
        self.store.append(rows)

    def flush(self) -> None:
        """Write what this process has queued: a stopping server's last entries, before its state goes."""
        self._writer.flush(SETTLE_TIMEOUT_S)

    def settle(self) -> None:
        """Wait until every worker wrote the entries it was handed (this one's first)."""
        self._writer.flush(SETTLE_TIMEOUT_S)
        self.store.settled()

    def page(
        self,
        path: Optional[str] = None,
        model: Optional[str] = None,
        since: Optional[float] = None,
        limit: int = 100,
        after: Optional[int] = None,
        before: Optional[int] = None,
        max_bytes: Optional[int] = None,
    ) -> Page:
        """Matching entries, oldest first: the newest ``limit`` (before ``before`` when given), or with
        ``after`` the oldest ``limit`` after it; ``max_bytes`` ends the page early (never empty).
        Raises the store's error (``STATE_ERRORS``)."""
        self.settle()
        return self.store.page(path, model, since, limit, after, before, max_bytes)

    def entries(
        self,
        path: Optional[str] = None,
        model: Optional[str] = None,
        since: Optional[float] = None,
        limit: int = 100,
    ) -> List[Dict[str, Any]]:
        """The newest entries matching the filters (at most ``limit``), oldest first."""
        return self.page(path, model, since, min(limit, self.size)).entries

    def scan(self) -> Iterator[Dict[str, Any]]:
        """Every entry, oldest first, read a few at a time: a reader holds one entry in memory, not
        the journal."""
        self.settle()
        return self.store.scan()

    def count(self) -> int:
        """Entries held, with every entry handed over before the call written."""
        self.settle()
        return self.store.count()

    def clear(self) -> None:
        """Empty the journal, the entries of requests answered before this call included."""
        self.settle()
        self.store.clear()


def encode(entry: Dict[str, Any], limit: int) -> Tuple[Stored, int]:
    """The entry as the store keeps it (``mokku.store.base.Stored``) and its size in bytes, at most
    about ``limit``: past it the body, then the headers, are replaced by a marker."""
    stored, size = _stored(entry)
    if size > limit and isinstance(entry.get("body"), (dict, list)):
        body, body_size = _dump(entry["body"])
        if body_size > _MARKER_BYTES:  # else it is a marker already, or too small to matter
            entry = dict(entry, body=summarised(body.encode("utf-8")))
            stored, size = _stored(entry)
    if size > limit and entry.get("headers"):
        entry = dict(entry, headers={"truncated": True, "bytes": _dump(entry["headers"])[1]})
        stored, size = _stored(entry)
    return stored, size


def _stored(value: Any) -> Tuple[Stored, int]:
    try:
        data = MARSHALLED + marshal.dumps(value, MARSHAL_VERSION)
    except ValueError:  # a type marshal does not take (a subclass of one it does): JSON, as before
        return _dump(value)
    return data, len(data)


def _dump(value: Any) -> Tuple[str, int]:
    """JSON text and its size in UTF-8 bytes. Lone surrogates (valid in JSON, not in UTF-8) are kept
    as ``\\u`` escapes."""
    text = _ENCODER.encode(value)
    try:
        return text, len(text.encode("utf-8"))
    except UnicodeEncodeError:
        text = _ASCII_ENCODER.encode(value)
        return text, len(text)


def _text(value: str) -> str:
    """A column value SQLite can store (UTF-8): lone surrogates become escapes."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def summarised(raw: bytes, why: str = "truncated") -> Dict[str, Any]:
    """What the journal keeps of a body too large to store (or, ``why`` ``unparsed``, of one that is
    not a JSON object): its size, its digest (two such bodies stay told apart, as retries are
    recognised by their body) and the start of its text."""
    return {
        why: True,
        "bytes": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "prefix": raw[:PREFIX_BYTES].decode("utf-8", "replace"),
    }


# An environ key ("HTTP_X_API_KEY") -> its header's name and whether it carries a credential: the
# same few headers come with every request. Bounded: past it, names are worked out each time.
_HEADER_NAMES: Dict[str, Tuple[str, bool]] = {}
_HEADER_NAMES_KEPT = 512


def _header_name(key: str) -> Tuple[str, bool]:
    known = _HEADER_NAMES.get(key)
    if known is None:
        name = key[5:].replace("_", "-").lower()
        known = name, is_secret(name)
        if len(_HEADER_NAMES) < _HEADER_NAMES_KEPT:
            _HEADER_NAMES[key] = known
    return known


def entry_for(request: Request, status: int, started: float) -> Dict[str, Any]:
    """A journal entry from the request and what it met on its way."""
    headers = {}
    for key, value in request.environ.items():
        if key[:5] == "HTTP_":
            name, secret = _header_name(key)
            headers[name] = mask_secret(value) if secret else value
    body = request.parsed
    stored: Any = body
    raw = None
    if body is not None:
        raw = request.body()  # read already: the body was parsed
        if len(raw) > request.settings.journal_body_bytes:
            stored, raw = summarised(raw), None  # cut from the bytes received, never encoded whole
        elif json.detect_encoding(raw) != "utf-8":  # a BOM, UTF-16 or UTF-32: kept as parsed
            raw = None
    elif request.received:  # read, and refused: not JSON, not an object
        stored = summarised(request.received, "unparsed")
    result = request.result
    query = request.environ.get("QUERY_STRING")
    entry: Dict[str, Any] = {
        "time": time.time(),
        "method": request.method,
        "path": request.environ.get("PATH_INFO", ""),
        "query": redact_query(query) if query else None,  # credentials in it masked
        "route": request.route,
        "headers": headers,
        "body": stored,
        "model": body.get("model") if body is not None else None,
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        "response_id": result.id if result else None,
        "finish_reasons": result.finish_reasons if result else None,
        "usage": result.usage if result else None,
        "fault": request.fault,
        "scenario": request.scenario,
    }
    if request.stream_outcome is not None:
        entry["stream"] = {"outcome": request.stream_outcome, "events": request.stream_events}
    if raw is not None:
        entry[RAW_BODY] = raw
    return entry
