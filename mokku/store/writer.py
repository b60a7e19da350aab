"""Writes off the request path: a request hands its journal entry to this process's writer thread and
goes on; the thread writes whatever has gathered in one batch (one transaction, one round trip).

Readers that must see every entry handed over before they began (read-your-writes) ask
``settled``: the embedded store compares each process's handed-over and written counts in shared
memory (``Tally``), Redis asks every process over pub/sub. The thread starts on first use in each
process (a gunicorn worker forked from a loaded arbiter starts its own). Past ``MAX_PENDING``
unwritten entries (the store is slow or gone) new ones are dropped with a warning: memory stays
bounded and no request waits.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from typing import Any, Callable, List, Optional, Protocol

log = logging.getLogger("mokku")

MAX_PENDING = 20_000  # entries handed over but not written, per process
MAX_BATCH = 512  # entries in one write
GATHER_S = 0.01  # after the first entry, how long the thread lets more gather (a reader cuts it short)
_WARN_EVERY_S = 30.0


class Tally(Protocol):
    """Where a process says how many entries it was handed and how many it wrote."""

    def handed(self, count: int) -> None: ...

    def wrote(self, count: int) -> None: ...


class Writer:
    """One writer thread per process; ``write`` takes a batch and raises on failure."""

    def __init__(
        self,
        write: Callable[[List[Any]], None],
        what: str,
        tally: Optional[Callable[[Callable[[float], bool]], Optional[Tally]]] = None,
    ) -> None:
        self._write, self._what, self._make_tally = write, what, tally
        self._pid = -1
        self._lock = threading.Lock()
        self._warned = -_WARN_EVERY_S

    def _start(self) -> None:
        """A queue, counts and thread of this process's own (after a fork, the parent's are not ours)."""
        with self._lock:
            if self._pid == os.getpid():
                return
            self._queue: queue.SimpleQueue = queue.SimpleQueue()
            self.handed = self.written = 0
            self._done = threading.Condition()
            self._hurry = threading.Event()
            self._tally = self._make_tally(self.flush) if self._make_tally else None
            thread = threading.Thread(target=self._run, name=f"mokku-{self._what}-writer", daemon=True)
            thread.start()
            self._pid = os.getpid()

    def put(self, item: Any, expected: bool = False) -> None:
        """Queue ``item``; ``expected``: counted as handed over already, by ``expect``."""
        if self._pid != os.getpid():
            self._start()
        if self.handed - self.written >= MAX_PENDING:
            self._warn("%d entries wait to be written", MAX_PENDING)
            if expected:
                self.wrote_one()  # dropped: readers waiting for it stop
            return
        with self._lock:
            self._queue.put(item)
            if not expected:
                self._count_handed()

    def expect(self) -> None:
        """One more entry to come (``put`` with ``expected``, or ``wrote_one`` when it will not):
        readers from now on wait for it as for one handed over."""
        if self._pid != os.getpid():
            self._start()
        with self._lock:
            self._count_handed()

    def _count_handed(self) -> None:
        """Under ``_lock``."""
        self.handed += 1
        if self._tally is not None:
            self._tally.handed(self.handed)

    def wrote_one(self) -> None:
        """An expected entry will not come."""
        self._count_written(1)

    def _run(self) -> None:
        source = self._queue
        while True:
            batch = [source.get()]
            # One write per gathering, not per request: each write wakes this thread and takes the
            # GIL and the store's lock from the request threads.
            if self._hurry.wait(GATHER_S):
                self._hurry.clear()
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(source.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write(batch)
            except Exception as exc:  # the entries are lost; the requests were answered long ago
                self._warn("%s", exc)
            self._count_written(len(batch))

    def _count_written(self, count: int) -> None:
        with self._done:
            self.written += count
            if self._tally is not None:
                self._tally.wrote(self.written)
            self._done.notify_all()

    def flush(self, timeout: float) -> bool:
        """Wait until everything this process was handed so far is written (or ``timeout`` passes)."""
        if self._pid != os.getpid():
            return True
        wanted = self.handed
        if self.written < wanted:
            self._hurry.set()
        deadline = time.monotonic() + timeout
        with self._done:
            while self.written < wanted:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._done.wait(left)
        return True

    def _warn(self, reason: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._warned >= _WARN_EVERY_S:
            self._warned = now
            log.warning(
                f"the {self._what} cannot be written ({reason}): entries are skipped until it can", *args
            )
