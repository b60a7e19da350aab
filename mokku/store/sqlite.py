"""The embedded store: the server's SQLite state file (``mokku.control.statedb``), shared by every
worker of one server. The default; past one machine, ``mokku.store.redis``."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import mmap
import os
import sqlite3
import stat
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from mokku.control import statedb
from mokku.store import tally
from mokku.store.base import (
    MAX_BUCKETS,
    SETTLE_TIMEOUT_S,
    Left,
    Page,
    Refused,
    Row,
    TooMany,
    Want,
    decide,
    entry_of,
    refilled,
)

log = logging.getLogger("mokku")

_INSERT = "INSERT INTO requests (time, path, model, bytes, entry, body) VALUES "
_ROW_VALUES = "(?, ?, ?, ?, ?, ?)"
_PRUNE_EVERY = 100  # entries between checks of the count bound
# The newest ``size`` entries (ids are consecutive): what reads see, while up to ``_PRUNE_EVERY``
# older ones wait for the next prune.
_KEPT = "id > (SELECT COALESCE(MAX(id), 0) FROM requests) - ?"
_SCAN_CHUNK = 256


class SqliteJournal:
    """The journal's rows in the ``requests`` table."""

    def __init__(self, path: str, size: int, max_bytes: int) -> None:
        self.path, self.size, self.max_bytes = path, size, max_bytes
        self.name = f"the state file {path}"
        # Nothing touches the file here: a worker boots whatever state the file is in.
        self._connections = statedb.Connections(path, create=True)
        self._lock = threading.Lock()
        self._written = 0  # bytes this process wrote since it last checked the byte bound
        self._tallies: Optional[tally.Tallies] = None

    def tally(self, flush: Callable[[float], bool]) -> Optional[tally.Slot]:
        """This process's slot among the state file's writers (None: reads cannot wait for it)."""
        try:
            self._tallies = self._tallies or tally.Tallies(self.path)
            return self._tallies.claim()
        except OSError:
            return None

    def settled(self) -> bool:
        """Every worker has written what it was handed before this call."""
        try:
            self._tallies = self._tallies or tally.Tallies(self.path)
        except OSError:
            return False
        return self._tallies.settled(SETTLE_TIMEOUT_S)

    def append(self, rows: Sequence[Row]) -> None:
        with self._connections.using() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                # One statement for the batch: each statement run lets go of the GIL and takes it
                # back, a switch the request threads pay for.
                db.execute(
                    _INSERT + ",".join(_ROW_VALUES for _ in rows), [value for row in rows for value in row]
                )
                last = db.execute("SELECT last_insert_rowid()").fetchone()[0]
                self._prune(db, last, len(rows), sum(row[3] for row in rows))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _prune(self, db: Any, last: int, count: int, size: int) -> None:
        """Keep the newest ``size`` entries (checked every 100 entries; reads see no more meanwhile)
        and at most ``max_bytes`` (checked after each tenth of it that this process wrote: summing
        the sizes reads the whole table, so not at every batch; pruned down to nine tenths)."""
        if last // _PRUNE_EVERY != (last - count) // _PRUNE_EVERY:  # passed a hundred
            db.execute("DELETE FROM requests WHERE id <= ?", (last - self.size,))
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

    def page(
        self,
        path: Optional[str],
        model: Optional[str],
        since: Optional[float],
        limit: int,
        after: Optional[int],
        before: Optional[int],
        max_bytes: Optional[int],
    ) -> Page:
        clauses: List[str] = [_KEPT]
        values: List[Any] = [self.size]
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
        where = f"WHERE {' AND '.join(clauses)}"
        forward = after is not None
        found: List[Dict[str, Any]] = []
        has_more = False
        total = 0
        with self._connections.using() as db:
            cursor = db.execute(
                f"SELECT id, bytes, entry, body FROM requests {where} ORDER BY id {'ASC' if forward else 'DESC'} LIMIT ?",
                (*values, limit + 1),
            )
            try:
                # One row at a time: stop as soon as the page is full.
                for row_id, size, stored, body in cursor:
                    if len(found) == limit or (max_bytes is not None and found and total + size > max_bytes):
                        has_more = True
                        break
                    total += size
                    found.append(entry_of(stored, body, row_id))
            finally:
                cursor.close()  # an unfinished statement would hold its snapshot (and the log) open
        if not forward:
            found.reverse()
        return Page(found, has_more)

    def scan(self) -> Iterator[Dict[str, Any]]:
        last = 0
        while True:
            count = 0
            with self._connections.using() as db:
                cursor = db.execute(
                    f"SELECT id, entry, body FROM requests WHERE id > ? AND {_KEPT} ORDER BY id LIMIT ?",
                    (last, self.size, _SCAN_CHUNK),
                )
                try:
                    for row_id, stored, body in cursor:
                        count += 1
                        last = row_id
                        yield entry_of(stored, body, row_id)
                finally:
                    cursor.close()
            if count < _SCAN_CHUNK:
                return

    def count(self) -> int:
        with self._connections.using() as db:
            return int(db.execute(f"SELECT COUNT(*) FROM requests WHERE {_KEPT}", (self.size,)).fetchone()[0])

    def clear(self) -> None:
        """Empty the journal, and give the space its write-ahead log took back to the disk."""
        with self._connections.using() as db:
            db.execute("DELETE FROM requests")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


FLAG_SUFFIX = "-rules"
_ALL_KINDS = 0xFF


class SqliteRules:
    """Scripted-reply rules in the ``scenarios`` table. The file is created by the first rule.

    Which kinds of rule exist is also kept in one byte of shared memory (``shared``: a small file
    beside the state file, mapped by every process that uses it; else this process's own), so
    that a request finds "no rules" without touching the file system: a ``stat`` per request
    cost about 5% of the chat throughput. The flag only changes under the file's write lock. The
    flag file is never followed through a symlink; when it cannot be used, this process reads the
    state file at every call instead.
    """

    def __init__(self, path: str, shared: bool = True) -> None:
        self.path = path
        self.name = f"the state file {path}"
        # Nothing here may fail: a worker boots whatever state the file is in.
        self._connections = statedb.Connections(path, create=False)
        self._any = mmap.mmap(-1, 1)
        self._known = True  # the flag tells which rules exist (else: ask the file each time)
        if not shared:
            return
        try:
            self._any, created = _shared_flag(path + FLAG_SUFFIX)
        except OSError as exc:
            log.warning(
                "scripted replies: cannot use %s (%s); every call reads the state file instead",
                path + FLAG_SUFFIX,
                exc,
            )
            self._any[0], self._known = _ALL_KINDS, False
            return
        if created:  # a new flag: say what the file holds (a file that cannot be read: ask it each time)
            self._any[0] = self._stored_any()

    def _stored_any(self) -> int:
        try:
            with self._connections.using() as db:
                return _ALL_KINDS if db.execute("SELECT 1 FROM scenarios LIMIT 1").fetchone() else 0
        except statedb.Missing:
            return 0
        except statedb.STATE_ERRORS:
            return _ALL_KINDS

    def _set_flag(self, value: int) -> None:
        if self._known:
            self._any[0] = value

    def may_hold(self, kind: int) -> bool:
        return bool(self._any[0] & kind)

    @contextlib.contextmanager
    def _writing(self, create: bool = False) -> Iterator[sqlite3.Connection]:
        """One short transaction holding the file's write lock: decisions stay exact across workers,
        and the shared flag only changes under the lock. Never held while a rule is matched."""
        with self._connections.using(create) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def add(self, rules: Sequence[Tuple[str, Optional[int], int]], limit: int) -> List[int]:
        with self._writing(create=True) as db:
            held = db.execute("SELECT COUNT(*) FROM scenarios").fetchone()[0]
            if held + len(rules) > limit:
                raise TooMany(held)
            ids = [
                db.execute("INSERT INTO scenarios (rule, times_left) VALUES (?, ?)", (text, times)).lastrowid
                or 0
                for text, times, _ in rules
            ]
            for _, _, kind in rules:
                self._set_flag(self._any[0] | kind)
        return ids

    def listed(self) -> List[Tuple[int, str, Optional[int], int]]:
        try:
            with self._connections.using() as db:
                return db.execute("SELECT id, rule, times_left, seen FROM scenarios ORDER BY id").fetchall()
        except statedb.Missing:
            return []

    def clear(self) -> None:
        try:
            with self._writing() as db:
                db.execute("DELETE FROM scenarios")
                self._set_flag(0)
        except statedb.Missing:
            self._set_flag(0)

    def live(self) -> Tuple[Any, List[int]]:
        """The file's identity (rules are cached per file) and the ids of rules not used up, in order."""
        try:
            with self._connections.using() as db:
                scope = self._connections.identity() or (-1, -1)
                rows = db.execute(
                    "SELECT id FROM scenarios WHERE times_left IS NULL OR times_left > 0 ORDER BY id"
                ).fetchall()
        except statedb.Missing:
            if not self._known:
                return None, []
            raise  # rules were added, and the file is gone
        return scope, [rule_id for (rule_id,) in rows]

    def texts(self, ids: Sequence[int]) -> Dict[int, str]:
        found = {}
        with self._connections.using() as db:
            for rule_id in ids:
                row = db.execute("SELECT rule FROM scenarios WHERE id = ?", (rule_id,)).fetchone()
                if row is not None:  # else removed meanwhile
                    found[rule_id] = row[0]
        return found

    def hit(self, rule_id: int, nth: Optional[int]) -> bool:
        """Count a call that matched the rule; True when the rule answers it. Under the write lock:
        the rule may have been used up by another worker since it was read."""
        with self._writing() as db:
            row = db.execute("SELECT times_left, seen FROM scenarios WHERE id = ?", (rule_id,)).fetchone()
            if row is None or (row[0] is not None and row[0] <= 0):
                return False
            if nth is not None and row[1] + 1 != nth:
                db.execute("UPDATE scenarios SET seen = seen + 1 WHERE id = ?", (rule_id,))
                return False
            db.execute(
                "UPDATE scenarios SET seen = seen + 1, times_left = times_left - 1 WHERE id = ?", (rule_id,)
            )
            return True


def _shared_flag(path: str) -> Tuple[mmap.mmap, bool]:
    """One byte of memory shared through the file at ``path`` (several processes, one state file),
    and whether this call made the file. A symlink or anything but a regular file is refused."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path} is not a regular file")
        created = info.st_size < 1
        if created:  # written, not sparse: a page the disk has no room for kills its user (SIGBUS)
            os.pwrite(descriptor, b"\0", 0)
        return mmap.mmap(descriptor, 1), created
    finally:
        os.close(descriptor)


class SqliteBuckets:
    """Rate-limit buckets in the ``buckets`` table: every worker of the server takes from the same
    bucket, under the file's write lock. Bounded: past ``MAX_BUCKETS``, full buckets are dropped,
    then the older half, so clients sending ever new keys cannot grow the table without end."""

    def __init__(self, path: str, limit: int = MAX_BUCKETS) -> None:
        self.name = f"the state file {path}"
        self.limit = limit
        self._connections = statedb.Connections(path, create=True)

    def take(
        self, who: str, wants: Sequence[Want], now: float, window: float
    ) -> Tuple[Optional[Refused], List[Left]]:
        with self._connections.using() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                levels, new, stamps = [], False, {}
                for kind, capacity, _ in wants:
                    row = db.execute(
                        "SELECT level, updated FROM buckets WHERE who = ? AND kind = ?", (who, kind)
                    ).fetchone()
                    new = new or row is None
                    level, updated = row if row is not None else (float(capacity), now)
                    levels.append(refilled(level, updated, capacity, now, window))
                    # A request that read the clock before another took the lock must not move the
                    # bucket back in time: the refill since would be counted twice.
                    stamps[kind] = max(now, updated)
                refused, left = decide(levels, wants, window)
                if new and db.execute("SELECT COUNT(*) FROM buckets").fetchone()[0] >= self.limit:
                    self._prune(db, now, window)
                # Refused, each bucket is written at its level now all the same: it is in use, and
                # so not among the older half dropped when the table is full.
                for kind, capacity, level, _ in left:
                    db.execute(
                        "INSERT OR REPLACE INTO buckets (who, kind, capacity, level, updated) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (who, kind, capacity, level, stamps[kind]),
                    )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        return refused, left

    def _prune(self, db: Any, now: float, window: float) -> None:
        """Drop the buckets that have refilled; if that is not enough, the older half."""
        db.execute(
            "DELETE FROM buckets WHERE updated + (capacity - level) * ? / capacity <= ?", (window, now)
        )
        if db.execute("SELECT COUNT(*) FROM buckets").fetchone()[0] >= self.limit:
            db.execute(
                "DELETE FROM buckets WHERE rowid IN (SELECT rowid FROM buckets ORDER BY updated LIMIT ?)",
                (self.limit - self.limit // 2 + 1,),
            )

    def count(self) -> int:
        with self._connections.using() as db:
            return int(db.execute("SELECT COUNT(*) FROM buckets").fetchone()[0])


class SqliteCounters:
    """Sequence counters in the ``cassette_counters`` table, one row per scope and key."""

    def __init__(self, path: str) -> None:
        self._connections = statedb.Connections(path, create=True)

    def next(self, scope: str, key: str, kind: str) -> int:
        column = "recorded" if kind == "recorded" else "replayed"
        name = f"{_scope(scope)}:{key}"
        with self._connections.using() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "INSERT OR IGNORE INTO cassette_counters (key, recorded, replayed) VALUES (?, 0, 0)",
                    (name,),
                )
                db.execute(f"UPDATE cassette_counters SET {column} = {column} + 1 WHERE key = ?", (name,))
                (number,) = db.execute(
                    f"SELECT {column} FROM cassette_counters WHERE key = ?", (name,)
                ).fetchone()
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return int(number)

    def reset(self, scope: str) -> None:
        prefix = _scope(scope) + ":"
        with self._connections.using() as db:
            db.execute("DELETE FROM cassette_counters WHERE substr(key, 1, ?) = ?", (len(prefix), prefix))


def _scope(scope: str) -> str:
    """A scope as a fixed-length hex prefix of its counters' keys (no character SQLite's text
    functions stop at, none ``substr`` miscounts)."""
    return hashlib.sha256(scope.encode("utf-8", "surrogatepass")).hexdigest()[:32]
