"""What the API keeps for later requests: stored responses, conversations and their items.

They live in the server's state file (see ``mokku.control.state``), so every worker of one server
answers the same: a response created through one worker is retrieved, continued or cancelled
through any other. Objects are kept encoded, as they are answered. Everything is bounded
(docs/limits.md): responses in count, bytes and age; conversations in count and bytes (a
conversation's items count in its bytes), one conversation in bytes. Past a count or byte bound the
oldest go first; a write that alone would pass a bound is refused (``TooLarge``).

Each write is one transaction, so concurrent workers never lose or duplicate an object or an item.
A state file that cannot be used raises one of ``statedb.STATE_ERRORS``.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from mokku.control import statedb

_EVICT_BATCH = 64


class Bounds(NamedTuple):
    """What the store keeps at most."""

    responses: int = 10_000
    response_bytes: int = 64 * 1024 * 1024
    response_seconds: float = 24 * 3600
    conversations: int = 10_000
    conversation_bytes: int = 64 * 1024 * 1024  # every conversation with its items
    one_conversation_bytes: int = 16 * 1024 * 1024
    # Where deleted and evicted conversations and items were, kept for list cursors naming them.
    gone_positions: int = 10_000

    def response_size(self, body: bytes, items: bytes, job: Optional[str]) -> int:
        """What a response counts in bytes; ``TooLarge`` when it alone would pass the store's bound."""
        size = len(body) + len(items) + len(job or "")
        if size > self.response_bytes:
            raise TooLarge(f"the response is larger than the store ({self.response_bytes} bytes)")
        return size

    def conversation_size(self, body: bytes, items: Sequence[Tuple[str, bytes]]) -> int:
        """What a new conversation counts in bytes; ``TooLarge`` past one conversation's bound."""
        size = len(body) + sum(len(item) for _, item in items)
        if size > self.one_conversation_bytes:
            raise self.conversation_full()
        return size

    def conversation_full(self) -> TooLarge:
        return TooLarge(f"a conversation holds at most {self.one_conversation_bytes} bytes")


DEFAULT_BOUNDS = Bounds()


class TooLarge(Exception):
    """One write alone would pass a bound; the message says which."""


class UnknownCursor(Exception):
    """A list's ``after`` names no object it holds or held (as far as ``Bounds.gone_positions`` reach)."""


class Duplicate(Exception):
    """An item with this id is in the conversation already (or twice in what is added)."""

    def __init__(self, item_id: str) -> None:
        super().__init__(item_id)
        self.item_id = item_id


class StoredResponse(NamedTuple):
    """A stored response: the object as finished, the input items it saw (the earlier turns'
    included), and for a background response its job (JSON: when it runs, its stream's tokens)."""

    body: bytes
    items: bytes
    created: float
    job: Optional[str]


class Page(NamedTuple):
    """Some items in the order asked for, and whether more follow them."""

    items: List[bytes]
    has_more: bool


class Objects:
    """The stored objects of one server, in its state file."""

    def __init__(
        self, path: str, bounds: Bounds = DEFAULT_BOUNDS, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self.name = f"the state file {path}"  # what a 503 names
        self.bounds = bounds
        self.clock = clock  # wall-clock seconds: every worker ages the same objects
        self._connections = statedb.Connections(path, create=True)

    @contextlib.contextmanager
    def _db(self) -> Iterator[Any]:
        """One write transaction: ``BEGIN IMMEDIATE`` makes writers take turns, so none is lost."""
        with self._connections.using() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                with contextlib.suppress(*statedb.STATE_ERRORS):
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # Responses

    def keep_response(self, response_id: str, body: bytes, items: bytes, job: Optional[str] = None) -> None:
        """Store a response (replacing one with its id); the oldest go past the bounds."""
        bounds = self.bounds
        size = bounds.response_size(body, items, job)
        now = self.clock()
        with self._db() as db:
            _remove_response(db, response_id)
            db.execute(
                "INSERT INTO responses (id, created, bytes, body, items, job) VALUES (?, ?, ?, ?, ?, ?)",
                (response_id, now, size, body, items, job),
            )
            _count(db, "responses", 1, size)
            _evict_responses(db, bounds, now - bounds.response_seconds)

    def response(self, response_id: str) -> Optional[StoredResponse]:
        """The stored response, or None (never stored, deleted, evicted or past its age)."""
        with self._connections.using() as db:
            row = db.execute(
                "SELECT body, items, created, job FROM responses WHERE id = ?", (response_id,)
            ).fetchone()
        if row is None or row[2] < self.clock() - self.bounds.response_seconds:
            return None
        return StoredResponse(bytes(row[0]), bytes(row[1]), row[2], row[3])

    def replace_response(self, response_id: str, body: bytes, job: Optional[str]) -> bool:
        """A stored response's new body and job (a cancelled one, say); False when it is gone."""
        with self._db() as db:
            row = db.execute(
                "SELECT bytes, length(body), length(job) FROM responses WHERE id = ?", (response_id,)
            ).fetchone()
            if row is None:
                return False
            change = len(body) + len(job or "") - row[1] - (row[2] or 0)
            db.execute(
                "UPDATE responses SET body = ?, job = ?, bytes = bytes + ? WHERE id = ?",
                (body, job, change, response_id),
            )
            _count(db, "responses", 0, change)
        return True

    def delete_response(self, response_id: str) -> bool:
        with self._db() as db:
            return _remove_response(db, response_id)

    # Conversations

    def create_conversation(
        self, conversation_id: str, body: bytes, items: Sequence[Tuple[str, bytes]]
    ) -> None:
        """A new conversation with its first items; the oldest conversations go past the bounds."""
        bounds = self.bounds
        size = bounds.conversation_size(body, items)
        with self._db() as db:
            cursor = db.execute(
                "INSERT INTO conversations (id, bytes, body) VALUES (?, ?, ?)", (conversation_id, size, body)
            )
            _insert_items(db, cursor.lastrowid, items)
            _count(db, "conversations", 1, size)
            _evict_conversations(db, bounds, cursor.lastrowid)

    def conversation(self, conversation_id: str) -> Optional[bytes]:
        with self._connections.using() as db:
            row = db.execute("SELECT body FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        return bytes(row[0]) if row else None

    def replace_conversation(self, conversation_id: str, body: bytes) -> bool:
        with self._db() as db:
            row = db.execute(
                "SELECT length(body) FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone()
            if row is None:
                return False
            change = len(body) - row[0]
            db.execute(
                "UPDATE conversations SET body = ?, bytes = bytes + ? WHERE id = ?",
                (body, change, conversation_id),
            )
            _count(db, "conversations", 0, change)
        return True

    def delete_conversation(self, conversation_id: str) -> bool:
        with self._db() as db:
            row = db.execute(
                "SELECT seq, bytes FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone()
            if row is None:
                return False
            _remove_conversations(db, self.bounds, [row])
        return True

    def add_items(self, conversation_id: str, items: Sequence[Tuple[str, bytes]]) -> bool:
        """Append items (id, encoded) to a conversation, in order; False when it does not exist."""
        size = sum(len(item) for _, item in items)
        with self._db() as db:
            row = db.execute(
                "SELECT seq, bytes FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone()
            if row is None:
                return False
            if row[1] + size > self.bounds.one_conversation_bytes:
                raise self.bounds.conversation_full()
            _insert_items(db, row[0], items)
            db.execute("UPDATE conversations SET bytes = bytes + ? WHERE seq = ?", (size, row[0]))
            _count(db, "conversations", 0, size)
            _evict_conversations(db, self.bounds, row[0])
        return True

    def items(self, conversation_id: str) -> Optional[List[bytes]]:
        """Every item of a conversation, oldest first (bounded by its bytes); None when it does not exist."""
        with self._connections.using() as db:
            row = db.execute("SELECT seq FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
            if row is None:
                return None
            rows = db.execute(
                "SELECT body FROM conversation_items WHERE conversation = ? ORDER BY seq", (row[0],)
            ).fetchall()
        return [bytes(body) for (body,) in rows]

    def conversations_after(
        self, prefix: str, after: Optional[str], limit: int, newest_first: bool
    ) -> List[Tuple[str, bytes]]:
        """At most ``limit`` conversations whose ids start with ``prefix`` (id and body), after the
        one with id ``after`` in the order asked (or after where it was, when it is gone)."""
        order, compare = ("DESC", "<") if newest_first else ("ASC", ">")
        # The ids starting with ``prefix``: from the prefix up to the prefix with its last character raised.
        where = "id >= ? AND id < ?"
        values: List[Any] = [prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)]
        with self._connections.using() as db:
            if after is not None:
                live = db.execute("SELECT seq FROM conversations WHERE id = ?", (after,)).fetchone()
                where += f" AND seq {compare} ?"
                values.append(_position(db, live, 0, after))
            rows = db.execute(
                f"SELECT id, body FROM conversations WHERE {where} ORDER BY seq {order} LIMIT ?",
                (*values, limit),
            ).fetchall()
        return [(row[0], bytes(row[1])) for row in rows]

    def page_items(
        self, conversation_id: str, after: Optional[str], limit: int, newest_first: bool
    ) -> Optional[Page]:
        """At most ``limit`` items after the item ``after`` (or where it was) in the order asked;
        None when the conversation does not exist."""
        order, compare = ("DESC", "<") if newest_first else ("ASC", ">")
        with self._connections.using() as db:
            row = db.execute("SELECT seq FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
            if row is None:
                return None
            where, values = "conversation = ?", [row[0]]
            if after is not None:
                live = db.execute(
                    "SELECT seq FROM conversation_items WHERE conversation = ? AND id = ?", (row[0], after)
                ).fetchone()
                where += f" AND seq {compare} ?"
                values.append(_position(db, live, row[0], after))
            rows = db.execute(
                f"SELECT body FROM conversation_items WHERE {where} ORDER BY seq {order} LIMIT ?",
                (*values, limit + 1),
            ).fetchall()
        return Page([bytes(body) for (body,) in rows[:limit]], len(rows) > limit)

    def item(self, conversation_id: str, item_id: str) -> Optional[bytes]:
        with self._connections.using() as db:
            row = db.execute(
                "SELECT i.body FROM conversation_items i JOIN conversations c ON i.conversation = c.seq "
                "WHERE c.id = ? AND i.id = ?",
                (conversation_id, item_id),
            ).fetchone()
        return bytes(row[0]) if row else None

    def delete_item(self, conversation_id: str, item_id: str) -> bool:
        with self._db() as db:
            row = db.execute(
                "SELECT i.seq, i.bytes, c.seq FROM conversation_items i JOIN conversations c "
                "ON i.conversation = c.seq WHERE c.id = ? AND i.id = ?",
                (conversation_id, item_id),
            ).fetchone()
            if row is None:
                return False
            db.execute("DELETE FROM conversation_items WHERE seq = ?", (row[0],))
            db.execute(
                "INSERT INTO gone_positions (scope, id, seq) VALUES (?, ?, ?)", (row[2], item_id, row[0])
            )
            _forget_oldest_positions(db, self.bounds)
            db.execute("UPDATE conversations SET bytes = bytes - ? WHERE seq = ?", (row[1], row[2]))
            _count(db, "conversations", 0, -row[1])
        return True


def _count(db: Any, kind: str, count: int, size: int) -> None:
    db.execute(
        "INSERT INTO totals (kind, count, bytes) VALUES (?, ?, ?) ON CONFLICT(kind) DO UPDATE "
        "SET count = count + excluded.count, bytes = bytes + excluded.bytes",
        (kind, count, size),
    )


def _totals(db: Any, kind: str) -> Tuple[int, int]:
    row = db.execute("SELECT count, bytes FROM totals WHERE kind = ?", (kind,)).fetchone()
    return (row[0], row[1]) if row else (0, 0)


def _remove_response(db: Any, response_id: str) -> bool:
    row = db.execute("SELECT bytes FROM responses WHERE id = ?", (response_id,)).fetchone()
    if row is None:
        return False
    db.execute("DELETE FROM responses WHERE id = ?", (response_id,))
    _count(db, "responses", -1, -row[0])
    return True


def _evict_responses(db: Any, bounds: Bounds, expired_before: float) -> None:
    """The oldest responses out while the store is past a bound or they are past their age."""
    count, size = _totals(db, "responses")
    while True:
        oldest = db.execute(
            "SELECT seq, created, bytes FROM responses ORDER BY seq LIMIT ?", (_EVICT_BATCH,)
        ).fetchall()
        gone = []
        for seq, created, row_bytes in oldest:
            if count <= bounds.responses and size <= bounds.response_bytes and created >= expired_before:
                break
            gone.append(seq)
            count, size = count - 1, size - row_bytes
        if gone:
            db.execute(f"DELETE FROM responses WHERE seq IN ({','.join('?' * len(gone))})", gone)
            db.execute("UPDATE totals SET count = ?, bytes = ? WHERE kind = 'responses'", (count, size))
        if len(gone) < _EVICT_BATCH:
            return


def _insert_items(db: Any, conversation: int, items: Sequence[Tuple[str, bytes]]) -> None:
    """Append items; raises ``Duplicate`` for an id the conversation has (or that comes twice)."""
    ids = [item_id for item_id, _ in items]
    seen = set()
    for item_id in ids:
        if item_id in seen:
            raise Duplicate(item_id)
        seen.add(item_id)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        found = db.execute(
            f"SELECT id FROM conversation_items WHERE conversation = ? AND id IN ({','.join('?' * len(chunk))})",
            (conversation, *chunk),
        ).fetchone()
        if found:
            raise Duplicate(found[0])
    db.executemany(
        "INSERT INTO conversation_items (conversation, id, bytes, body) VALUES (?, ?, ?, ?)",
        [(conversation, item_id, len(body), body) for item_id, body in items],
    )


def _remove_conversations(db: Any, bounds: Bounds, rows: Sequence[Tuple[int, int]]) -> None:
    for seq, size in rows:
        db.execute("DELETE FROM conversation_items WHERE conversation = ?", (seq,))
        db.execute("DELETE FROM gone_positions WHERE scope = ?", (seq,))
        db.execute(
            "INSERT INTO gone_positions (scope, id, seq) SELECT 0, id, seq FROM conversations WHERE seq = ?",
            (seq,),
        )
        db.execute("DELETE FROM conversations WHERE seq = ?", (seq,))
        _count(db, "conversations", -1, -size)
    _forget_oldest_positions(db, bounds)


def _forget_oldest_positions(db: Any, bounds: Bounds) -> None:
    db.execute(
        "DELETE FROM gone_positions WHERE n <= (SELECT max(n) FROM gone_positions) - ?",
        (bounds.gone_positions,),
    )


def _position(db: Any, live: Optional[Tuple[int]], scope: int, after: str) -> int:
    """Where a cursor stands: its object's seq (``live``, when it is there) or where it was."""
    if live is not None:
        return live[0]
    gone = db.execute(
        "SELECT seq FROM gone_positions WHERE scope = ? AND id = ? ORDER BY n DESC LIMIT 1", (scope, after)
    ).fetchone()
    if gone is None:
        raise UnknownCursor(after)
    return int(gone[0])


def _evict_conversations(db: Any, bounds: Bounds, keep: int) -> None:
    """The oldest conversations out (never ``keep``, the one being written) while past a bound."""
    count, size = _totals(db, "conversations")
    while count > bounds.conversations or size > bounds.conversation_bytes:
        rows = db.execute(
            "SELECT seq, bytes FROM conversations WHERE seq != ? ORDER BY seq LIMIT ?", (keep, _EVICT_BATCH)
        ).fetchall()
        if not rows:
            return
        gone = []
        for seq, row_bytes in rows:
            if count <= bounds.conversations and size <= bounds.conversation_bytes:
                break
            gone.append((seq, row_bytes))
            count, size = count - 1, size - row_bytes
        _remove_conversations(db, bounds, gone)
