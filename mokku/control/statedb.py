"""Connections to the state file, shared by the journal, the scripted replies and stored objects.

Files mokku creates are private: made with ``O_EXCL | O_NOFOLLOW`` at mode 0600 (SQLite gives its
``-wal`` and ``-shm`` files the mode of the database file). A thread's connection is reopened when
the file was deleted or replaced under it (a connection to a deleted file reads a ghost that no other
worker sees) and after any SQLite error, so a file that was broken and mended is used again. A file
that cannot be used raises ``unavailable``: a 503 naming it, never a 500.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from typing import Iterator, Optional, Tuple, Type
from urllib.parse import quote

from mokku import errors
from mokku.store.redis import ERRORS as redis_errors

# SQLite truncates the write-ahead log back to this size after a checkpoint (else it keeps its
# largest size for good).
WAL_LIMIT_BYTES = 8 * 1024 * 1024
BUSY_TIMEOUT_MS = 10_000

_SCHEMA = (
    # ``bytes`` comes before ``entry`` so that reading it never walks a large entry's overflow pages.
    "CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, "
    "path TEXT NOT NULL, model TEXT, bytes INTEGER NOT NULL DEFAULT 0, entry TEXT NOT NULL, body TEXT)",
    "CREATE TABLE IF NOT EXISTS scenarios (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "rule TEXT NOT NULL, times_left INTEGER, seen INTEGER NOT NULL DEFAULT 0)",
    # What the API stores for later requests (mokku.control.objects).
    "CREATE TABLE IF NOT EXISTS responses (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
    "id TEXT NOT NULL UNIQUE, created REAL NOT NULL, bytes INTEGER NOT NULL, body BLOB NOT NULL, "
    "items BLOB NOT NULL, job TEXT)",
    "CREATE TABLE IF NOT EXISTS conversations (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
    "id TEXT NOT NULL UNIQUE, bytes INTEGER NOT NULL, body BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS conversation_items (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
    "conversation INTEGER NOT NULL, id TEXT NOT NULL, bytes INTEGER NOT NULL, body BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS conversation_items_order ON conversation_items (conversation, seq)",
    "CREATE UNIQUE INDEX IF NOT EXISTS conversation_items_id ON conversation_items (conversation, id)",
    # Where deleted and evicted conversations (scope 0) and items (scope: their conversation's seq)
    # were, so that a list paged after one goes on from there (``objects.GONE_POSITIONS`` at most).
    "CREATE TABLE IF NOT EXISTS gone_positions (n INTEGER PRIMARY KEY AUTOINCREMENT, "
    "scope INTEGER NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS gone_positions_id ON gone_positions (scope, id)",
    "CREATE TABLE IF NOT EXISTS totals (kind TEXT PRIMARY KEY, count INTEGER NOT NULL, "
    "bytes INTEGER NOT NULL)",
    # Rate-limit token buckets (mokku.simulation.limits), one per client and kind.
    "CREATE TABLE IF NOT EXISTS buckets (who TEXT NOT NULL, kind TEXT NOT NULL, capacity INTEGER NOT NULL, "
    "level REAL NOT NULL, updated REAL NOT NULL, PRIMARY KEY (who, kind))",
    # How often each recorded request was recorded and replayed (mokku.record).
    "CREATE TABLE IF NOT EXISTS cassette_counters (key TEXT PRIMARY KEY, recorded INTEGER NOT NULL, "
    "replayed INTEGER NOT NULL)",
)

Identity = Tuple[int, int]


class Missing(sqlite3.OperationalError):
    """The state file does not exist (and this use does not create it)."""


def create_private(path: str) -> bool:
    """Create ``path`` as an empty file only this user reads, refusing a symlink or any existing file
    (someone else's file must never become ours); True when it was created here."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return False
    os.close(descriptor)
    return True


def identity(path: str) -> Optional[Identity]:
    """The file's device and inode, or None when there is no file at ``path``."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


def connect(path: str) -> sqlite3.Connection:
    """A connection to an existing state file, in WAL mode, with every table present."""
    db = sqlite3.connect(
        f"file:{quote(path)}?mode=rw",
        uri=True,
        timeout=BUSY_TIMEOUT_MS / 1000,
        isolation_level=None,
        check_same_thread=False,
    )
    try:
        with _SETUP:
            _set_up(db)
    except BaseException:
        db.close()
        raise
    return db


# A new file's first connections would race to switch it to WAL and to make its tables, and that
# switch answers "database is locked" at once rather than wait: one thread of a process at a time.
# (Servers make the file, in WAL, before their workers start: see ``create_private``.)
_SETUP = threading.Lock()


def _set_up(db: sqlite3.Connection) -> None:
    db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA synchronous=NORMAL")
    # Some builds zero every freed page: emptying a large journal then writes all of it again
    # into the write-ahead log. FAST overwrites only what costs no extra I/O.
    db.execute("PRAGMA secure_delete=FAST")
    db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
    db.execute("PRAGMA journal_mode=WAL")
    for statement in _SCHEMA:
        db.execute(statement)
    columns = {row[1] for row in db.execute("PRAGMA table_info(requests)")}
    if "bytes" not in columns:  # a state file from an earlier version
        db.execute("ALTER TABLE requests ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0")
    if "body" not in columns:
        db.execute("ALTER TABLE requests ADD COLUMN body TEXT")


class Connections:
    """One connection per thread to the state file at ``path``; ``create``: make the file (private)
    when it is missing, else raise ``Missing``."""

    def __init__(self, path: str, create: bool) -> None:
        self.path = path
        self.create = create
        self._local = threading.local()

    def get(self, create: Optional[bool] = None) -> Tuple[sqlite3.Connection, Identity]:
        """This thread's connection to the file now at ``path``, and that file's identity; ``create``
        overrides the default for this use."""
        local = self._local
        current = identity(self.path)
        db = getattr(local, "db", None)
        if db is not None and current is not None and current == local.identity:
            return db, current
        self.drop()
        if current is None:
            if not (self.create if create is None else create):
                raise Missing(f"{self.path} does not exist")
            create_private(self.path)
        db = connect(self.path)
        current = identity(self.path)
        if current is None:  # deleted again at once: use it this time, reopen next time
            current = (-1, -1)
        local.db, local.identity = db, current
        return db, current

    def drop(self) -> None:
        """Close this thread's connection (the next use opens a new one)."""
        db = getattr(self._local, "db", None)
        self._local.db = None
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()

    def identity(self) -> Optional[Identity]:
        """The identity of the file this thread's connection is open on (None: no connection)."""
        return getattr(self._local, "identity", None) if getattr(self._local, "db", None) else None

    @contextlib.contextmanager
    def using(self, create: Optional[bool] = None) -> Iterator[sqlite3.Connection]:
        """The connection for one use; after an error it is closed, so the next use reopens."""
        db, _ = self.get(create)
        try:
            yield db
        except sqlite3.Error:
            self.drop()
            raise


STATE_ERRORS: Tuple[Type[BaseException], ...] = (sqlite3.Error, OSError, *redis_errors)


@contextlib.contextmanager
def answered(name: str) -> Iterator[None]:
    """A store that cannot be used, met inside: the request answers 503 naming it, never 500."""
    try:
        yield
    except STATE_ERRORS as exc:
        raise unavailable(name, exc) from None


def unavailable(name: str, exc: BaseException) -> errors.APIError:
    """503: the store ``name`` names ("the state file ...", "Redis at ...") cannot be used; says
    which and why."""
    reason = str(exc) or type(exc).__name__
    return errors.APIError(
        503,
        f"{name[0].upper()}{name[1:]} cannot be used ({reason}); scripted replies, the journal and "
        "stored responses and conversations are unavailable until it can.",
        "server_error",
        code="state_unavailable",
    )
