"""The request journal: what each client sent and got, shared by every worker of one server.

Entries live in SQLite (standard library) in WAL mode, one connection per thread, one short
insert per request, written after the response is produced (for a stream, when it ends). The
file is the server's state file (see ``mokku.control.state``).
Headers that carry credentials (``mokku.credentials.is_secret``) are masked before they are stored.

Everything it holds is bounded (docs/limits.md): a body is stored whole only up to
``MOKKU_JOURNAL_BODY_BYTES`` of JSON, else as a marker (``truncated``, its size, its SHA-256 and
the start of its text), so the verdict still tells two large bodies apart; the journal keeps the
newest ``MOKKU_JOURNAL_SIZE`` entries and at most ``MOKKU_JOURNAL_BYTES``; a page of
``GET /mokku/requests`` holds at most ``MAX_PAGE`` entries and about ``PAGE_BYTES``. A state file
that cannot be written costs the entry, never the request: a warning says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Tuple

from mokku.control import statedb
from mokku.credentials import mask_header
from mokku.server.http import Request

log = logging.getLogger("mokku")

DEFAULT_BYTES = 64 * 1024 * 1024
DEFAULT_BODY_BYTES = 64 * 1024
# What an entry may hold besides its body (headers, usage, ...) before its headers are cut too.
ENTRY_EXTRA_BYTES = 64 * 1024
PREFIX_BYTES = 1024  # the start of a cut body kept in its marker
_MARKER_BYTES = 8 * 1024  # larger than any marker (its prefix escaped at worst)
MAX_PAGE = 1000  # entries in one page of GET /mokku/requests
PAGE_BYTES = 8 * 1024 * 1024  # a page stops before it passes this (it holds at least one entry)
_PRUNE_EVERY = 100  # entries between checks of the count bound
_SCAN_CHUNK = 256
_WARN_EVERY_S = 30.0

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_ASCII_ENCODER = json.JSONEncoder(separators=(",", ":"))


class Page(NamedTuple):
    """Some journal entries, oldest first, and whether more match past them."""

    entries: List[Dict[str, Any]]
    has_more: bool


class Journal:
    """Append-and-read access to the shared journal file."""

    def __init__(
        self,
        path: str,
        size: int,
        max_bytes: int = DEFAULT_BYTES,
        body_bytes: int = DEFAULT_BODY_BYTES,
    ) -> None:
        self.path = path
        self.size = size
        self.max_bytes = max_bytes
        self.body_bytes = body_bytes
        # Nothing touches the file here: a worker boots whatever state the file is in.
        self._connections = statedb.Connections(path, create=True)
        self._lock = threading.Lock()
        self._written = 0  # bytes this process wrote since it last checked the byte bound
        self._warned = -_WARN_EVERY_S

    def record(self, entry: Dict[str, Any]) -> bool:
        """Store one entry; False when the state file cannot take it (a warning, at most one every
        30 s, says so): the request it describes was answered already."""
        text, size = encode(entry, self.body_bytes + ENTRY_EXTRA_BYTES)
        model = entry.get("model")
        try:
            with self._connections.using() as db:
                row = db.execute(
                    "INSERT INTO requests (time, path, model, bytes, entry) VALUES (?, ?, ?, ?, ?)",
                    (
                        entry["time"],
                        _text(entry["path"]),
                        _text(model) if isinstance(model, str) else None,
                        size,
                        text,
                    ),
                )
                self._prune(db, row.lastrowid or 0, size)
        except statedb.STATE_ERRORS as exc:
            self._warn(exc)
            return False
        return True

    def _prune(self, db: Any, row_id: int, size: int) -> None:
        """Keep the newest ``size`` entries (checked every 100 entries) and at most ``max_bytes``
        (checked after each tenth of it that this process wrote: summing the sizes reads the whole
        table, so not at every entry; pruned down to nine tenths)."""
        if row_id % _PRUNE_EVERY == 0:
            db.execute("DELETE FROM requests WHERE id <= ?", (row_id - self.size,))
        with self._lock:
            self._written += size
            if self._written < self.max_bytes // 10:
                return
            self._written = 0
        total = db.execute("SELECT COALESCE(SUM(bytes), 0) FROM requests").fetchone()[0]
        if total > self.max_bytes:
            db.execute(
                "DELETE FROM requests WHERE id <= (SELECT id FROM (SELECT id, SUM(bytes) OVER "
                "(ORDER BY id DESC) AS newer FROM requests) WHERE newer > ? ORDER BY id DESC LIMIT 1)",
                (self.max_bytes * 9 // 10,),
            )

    def _warn(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._warned >= _WARN_EVERY_S:
            self._warned = now
            log.warning(
                "the request journal %s cannot be written (%s): entries are skipped until it can",
                self.path,
                exc,
            )

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
        Raises the state file's error (``statedb.STATE_ERRORS``)."""
        clauses, values = [], []
        for clause, value in (
            ("path = ?", path),
            ("model = ?", model),
            ("time >= ?", since),
            ("id > ?", after),
            ("id < ?", before),
        ):
            if value is not None:
                clauses.append(clause)
                values.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        forward = after is not None
        found: List[Dict[str, Any]] = []
        has_more = False
        total = 0
        with self._connections.using() as db:
            cursor = db.execute(
                f"SELECT id, bytes, entry FROM requests {where} ORDER BY id {'ASC' if forward else 'DESC'} LIMIT ?",
                (*values, limit + 1),
            )
            try:
                for row_id, size, text in cursor:  # one row at a time: stop as soon as the page is full
                    if len(found) == limit or (max_bytes is not None and found and total + size > max_bytes):
                        has_more = True
                        break
                    total += size
                    found.append(dict(json.loads(text), id=row_id))
            finally:
                cursor.close()  # an unfinished statement would hold its snapshot (and the log) open
        if not forward:
            found.reverse()
        return Page(found, has_more)

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
        last = 0
        while True:
            count = 0
            with self._connections.using() as db:
                cursor = db.execute(
                    "SELECT id, entry FROM requests WHERE id > ? ORDER BY id LIMIT ?", (last, _SCAN_CHUNK)
                )
                try:
                    for row_id, text in cursor:
                        count += 1
                        last = row_id
                        yield dict(json.loads(text), id=row_id)
                finally:
                    cursor.close()
            if count < _SCAN_CHUNK:
                return

    def clear(self) -> None:
        """Empty the journal, and give the space its write-ahead log took back to the disk."""
        with self._connections.using() as db:
            db.execute("DELETE FROM requests")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def encode(entry: Dict[str, Any], limit: int) -> Tuple[str, int]:
    """The entry as JSON text and its size in UTF-8 bytes, at most about ``limit``: past it the body,
    then the headers, are replaced by a marker. Lone surrogates (valid in JSON, not in UTF-8) are
    kept as ``\\u`` escapes."""
    text, size = _dump(entry)
    if size > limit and isinstance(entry.get("body"), (dict, list)):
        body, body_size = _dump(entry["body"])
        if body_size > _MARKER_BYTES:  # else it is a marker already, or too small to matter
            entry = dict(entry, body=truncated(body.encode("utf-8")))
            text, size = _dump(entry)
    if size > limit and entry.get("headers"):
        entry = dict(entry, headers={"truncated": True, "bytes": _dump(entry["headers"])[1]})
        text, size = _dump(entry)
    return text, size


def _dump(value: Any) -> Tuple[str, int]:
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


def truncated(raw: bytes) -> Dict[str, Any]:
    """What the journal keeps of a body too large to store: its size, its digest (two large bodies
    stay told apart, as retries are recognised by their body) and the start of its text."""
    return {
        "truncated": True,
        "bytes": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "prefix": raw[:PREFIX_BYTES].decode("utf-8", "replace"),
    }


def entry_for(request: Request, status: int, started: float) -> Dict[str, Any]:
    """A journal entry from the request and what it met on its way."""
    names = {key: key[5:].replace("_", "-").lower() for key in request.environ if key.startswith("HTTP_")}
    headers = {name: mask_header(name, request.environ[key]) for key, name in names.items()}
    body = request.parsed
    stored: Any = body
    if body is not None:
        raw = request.body()  # read already: the body was parsed
        if len(raw) > request.settings.journal_body_bytes:
            stored = truncated(raw)  # cut from the bytes received, without encoding the whole body again
    result = request.result
    entry: Dict[str, Any] = {
        "time": time.time(),
        "method": request.method,
        "path": request.environ.get("PATH_INFO", ""),
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
    return entry
