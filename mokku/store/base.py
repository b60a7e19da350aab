"""The storage interface: what mokku keeps that every worker and every replica must share.

Two implementations: the embedded SQLite state file (``mokku.store.sqlite``, the default: every
worker of one server) and Redis (``mokku.store.redis``, ``MOKKU_STATE=redis://...``: every replica).
Each part raises ``STATE_ERRORS`` (both backends' failures) when it cannot be used; callers answer a
503 naming the store (``describe``), never a 500.
"""

from __future__ import annotations

import json
import marshal
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Protocol, Sequence, Tuple, Union

MAX_BUCKETS = 10_000  # rate-limit buckets kept, in either store; past it, the older half goes
SETTLE_TIMEOUT_S = 5.0  # the longest a journal read waits for every writer to write what it holds

# A journal row: time, path, model, size in bytes, the entry (``Stored``), and its body as JSON text
# when that is kept apart (as it came; then the entry's ``body`` is null).
Stored = Union[bytes, str]
Row = Tuple[float, str, Optional[str], int, Stored, Optional[str]]

# An entry is stored in marshal's format behind this byte (JSON never starts with it): writing it
# costs a third of encoding JSON, on every request; reading it back is for tests that ask. Only
# mokku writes the store (a private state file, the user's Redis), so only its own data is loaded.
# Entries marshal cannot take, and those stored by earlier versions, are JSON text.
MARSHALLED = b"\x00"
MARSHAL_VERSION = 4  # the format of every Python 3 since 3.4


def entry_of(stored: Stored, body: Optional[str], entry_id: int) -> Dict[str, Any]:
    """A journal entry read back: its fields, its body put back, its id."""
    if isinstance(stored, bytes) and stored[:1] == MARSHALLED:
        entry = marshal.loads(memoryview(stored)[1:])
    else:
        entry = json.loads(stored)
    if body is not None:
        entry["body"] = json.loads(body)
    entry["id"] = entry_id
    return entry


class Page(NamedTuple):
    """Some journal entries, oldest first, and whether more match past them."""

    entries: List[Dict[str, Any]]
    has_more: bool


class JournalStore(Protocol):
    name: str  # for messages: "the state file ...", "Redis at ..."

    def append(self, rows: Sequence[Row]) -> None: ...

    def page(
        self,
        path: Optional[str],
        model: Optional[str],
        since: Optional[float],
        limit: int,
        after: Optional[int],
        before: Optional[int],
        max_bytes: Optional[int],
    ) -> Page: ...

    def scan(self) -> Iterator[Dict[str, Any]]: ...

    def count(self) -> int:
        """Entries held (those written so far)."""

    def clear(self) -> None: ...

    def tally(self, flush: Callable[[float], bool]) -> Any:
        """This process's ``mokku.store.writer.Tally`` (or None); ``flush`` waits until this process
        wrote what it was handed, for a reader elsewhere that asks."""

    def settled(self) -> bool:
        """Wait until every process wrote what it was handed before this call."""


class TooMany(Exception):
    """Adding the rules would pass the bound; ``held`` is how many are held."""

    def __init__(self, held: int) -> None:
        super().__init__(held)
        self.held = held


class RulesStore(Protocol):
    """Scripted-reply rules: JSON text, ``times`` left (None: no limit), calls seen."""

    name: str

    def may_hold(self, kind: int) -> bool:
        """False only when no rule of this kind (a bit) can exist: a call then asks nothing."""

    def add(self, rules: Sequence[Tuple[str, Optional[int], int]], limit: int) -> List[int]:
        """Add (text, times, kind) rules, all or none; ``TooMany`` past ``limit``."""

    def listed(self) -> List[Tuple[int, str, Optional[int], int]]: ...

    def clear(self) -> None: ...

    def live(self) -> Tuple[Any, List[int]]:
        """A scope for caching rule texts, and the ids of the rules not used up, in order."""

    def texts(self, ids: Sequence[int]) -> Dict[int, str]: ...

    def hit(self, rule_id: int, nth: Optional[int]) -> bool:
        """Count one matching call, atomically; True when the rule answers it."""


# A rate-limit decision: what was asked (kind, capacity, amount) per limit; the answer is the first
# limit that refused with the seconds until it would not (or None), and each bucket's level and
# seconds until full: after taking, or as they stand when refused.
Want = Tuple[str, int, float]
Refused = Tuple[str, int, float, float]
Left = Tuple[str, int, float, float]


def refilled(level: float, updated: float, capacity: int, now: float, window: float) -> float:
    """A token bucket's level at ``now``: ``capacity`` per ``window`` seconds, refilled continuously."""
    return min(float(capacity), level + max(0.0, now - updated) * capacity / window)


def decide(
    levels: Sequence[float], wants: Sequence[Want], window: float
) -> Tuple[Optional[Refused], List[Left]]:
    """Take every want from its bucket, or none: the first that is short refuses."""
    for level, (kind, capacity, amount) in zip(levels, wants):
        if level < amount:
            return (kind, capacity, amount, (amount - level) * window / capacity), standing(
                wants, levels, window
            )
    return None, standing(wants, [level - amount for level, (_, _, amount) in zip(levels, wants)], window)


def standing(wants: Sequence[Want], levels: Sequence[float], window: float) -> List[Left]:
    """Each bucket at its level, with the seconds until it is full."""
    return [
        (kind, capacity, level, (capacity - level) * window / capacity)
        for level, (kind, capacity, _) in zip(levels, wants)
    ]


class BucketStore(Protocol):
    """Rate-limit token buckets, one per (client, kind), taken from atomically."""

    name: str

    def take(
        self, who: str, wants: Sequence[Want], now: float, window: float
    ) -> Tuple[Optional[Refused], List[Left]]: ...

    def count(self) -> int: ...


class CounterStore(Protocol):
    """Sequence counters (how often a recorded request was recorded and replayed), per scope."""

    def next(self, scope: str, key: str, kind: str) -> int:
        """The next number for ``key`` of ``kind`` in ``scope``, from 1, atomically."""

    def reset(self, scope: str) -> None: ...
