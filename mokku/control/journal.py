"""The request journal: what each client sent and got, shared by every worker of one server.

Entries live in SQLite (standard library) in WAL mode, one connection per thread, one short
insert per request, written after the response is produced (for a stream, when it ends). The
file is ``MOKKU_STATE``, or by default a new one under the system temp directory named after the
server's process (gunicorn's arbiter, whose workers inherit the name), so the workers of one server
share it and two servers do not; a server removes its default file when it stops. Only the newest
``MOKKU_JOURNAL_SIZE`` entries are kept.
Authorization and API-key headers are masked before they are stored.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional

from mokku import config
from mokku.server.http import SECRET_HEADERS

_PRUNE_EVERY = 100


def default_path() -> str:
    return os.path.join(tempfile.gettempdir(), f"mokku-state-{os.getpid()}.sqlite3")


def claim_state(settings: config.Settings) -> Optional[str]:
    """Choose this server's state file before workers start, and load ``MOKKU_SCENARIOS`` into it;
    returns the file to remove at exit (None when the user chose it with MOKKU_STATE)."""
    owned = None
    if not settings.state_path and (settings.journal or settings.admin):
        owned = default_path()
        os.environ["MOKKU_STATE"] = owned
    if settings.scenarios_file:
        from mokku.control.scenarios import load_file

        try:
            load_file(settings.scenarios_file, settings.state_path or owned or default_path())
        except (OSError, ValueError) as exc:
            raise config.ConfigError(f"MOKKU_SCENARIOS: {exc}") from None
    return owned


def remove(path: Optional[str]) -> None:
    for suffix in ("", "-wal", "-shm", "-rules"):
        try:
            if path:
                os.unlink(path + suffix)
        except FileNotFoundError:
            pass


def mask(name: str, value: str) -> str:
    if name.lower() not in SECRET_HEADERS:
        return value
    scheme, _, key = value.partition(" ")
    shown = key if key else scheme
    masked = shown[:3] + "..." + shown[-4:] if len(shown) > 10 else "***"
    return f"{scheme} {masked}" if key else masked


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


def entry_for(environ: Dict[str, Any], status: int, started: float, request_body: Any) -> Dict[str, Any]:
    """A journal entry from what the request handling left in the environ."""
    headers = {
        key[5:].replace("_", "-").lower(): mask(key[5:].replace("_", "-"), value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    result = environ.get("mokku.result", {})
    entry: Dict[str, Any] = {
        "time": time.time(),
        "method": environ.get("REQUEST_METHOD", ""),
        "path": environ.get("PATH_INFO", ""),
        "route": environ.get("mokku.route"),
        "headers": headers,
        "body": request_body,
        "model": request_body.get("model") if isinstance(request_body, dict) else None,
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        "response_id": result.get("id"),
        "finish_reasons": result.get("finish_reasons"),
        "usage": result.get("usage"),
        "fault": environ.get("mokku.fault"),
        "scenario": environ.get("mokku.scenario"),
    }
    stream = environ.get("mokku.stream")
    if stream is not None:
        entry["stream"] = stream
    return entry
