"""The request journal: what each client sent and got, shared by every worker of one server.

Entries live in SQLite (standard library) in WAL mode, one connection per thread, one short
insert per request, written after the response is produced (for a stream, when it ends). The
file is the server's state file (see ``mokku.control.state``). Only the newest
``MOKKU_JOURNAL_SIZE`` entries are kept.
Authorization and API-key headers are masked before they are stored.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from typing import Any, Dict, List, Optional

from mokku.credentials import mask_header
from mokku.server.http import Request

_PRUNE_EVERY = 100


class Journal:
    """Append-and-read access to the shared journal file."""

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        self.size = size
        self._local = threading.local()
        db = self._db()
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS requests ("
            "id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, path TEXT NOT NULL, "
            "model TEXT, entry TEXT NOT NULL)"
        )

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=10000")
            self._local.db = db
        return db

    def record(self, entry: Dict[str, Any]) -> None:
        db = self._db()
        row = db.execute(
            "INSERT INTO requests (time, path, model, entry) VALUES (?, ?, ?, ?)",
            (entry["time"], entry["path"], entry.get("model"), json.dumps(entry, ensure_ascii=False)),
        )
        if row.lastrowid and row.lastrowid % _PRUNE_EVERY == 0:
            db.execute("DELETE FROM requests WHERE id <= ?", (row.lastrowid - self.size,))

    def entries(
        self,
        path: Optional[str] = None,
        model: Optional[str] = None,
        since: Optional[float] = None,
        limit: int = 100,
    ) -> List[Dict[str, Any]]:
        """The newest entries matching the filters (at most ``limit``), oldest first."""
        clauses, values = [], []
        for clause, value in (("path = ?", path), ("model = ?", model), ("time >= ?", since)):
            if value is not None:
                clauses.append(clause)
                values.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._db().execute(
            f"SELECT id, entry FROM requests {where} ORDER BY id DESC LIMIT ?",
            (*values, min(limit, self.size)),
        )
        return [dict(json.loads(entry), id=row_id) for row_id, entry in reversed(rows.fetchall())]

    def clear(self) -> None:
        self._db().execute("DELETE FROM requests")


def entry_for(request: Request, status: int, started: float) -> Dict[str, Any]:
    """A journal entry from the request and what it met on its way."""
    headers = {
        key[5:].replace("_", "-").lower(): mask_header(key[5:].replace("_", "-"), value)
        for key, value in request.environ.items()
        if key.startswith("HTTP_")
    }
    body = request.parsed
    result = request.result
    entry: Dict[str, Any] = {
        "time": time.time(),
        "method": request.method,
        "path": request.environ.get("PATH_INFO", ""),
        "route": request.route,
        "headers": headers,
        "body": body,
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
