"""A loaded server, when asked (all off by default): what a real model server does under load.

- ``MOKKU_MAX_RUNNING``: at most this many generations run at once on the server, counted across
  all its workers; the rest wait, at most ``MOKKU_MAX_WAITING`` of them, in the order the slots
  free up as they look (every ``POLL_S``). A request that finds the queue full is refused: 429 as a
  rate limit (or 503 overloaded, ``MOKKU_QUEUE_FULL=503``), in its dialect's envelope. Its wait
  counts in its time to first token, and a client that hangs up while waiting leaves the queue.
- Latency grows with load as llm-d-inference-sim's "time factor under load": with ``r`` requests
  running (this one included) the time to first token and each token's delay are multiplied by
  ``1 + (MOKKU_LOAD_FACTOR - 1) * (r - 1) / (MOKKU_MAX_RUNNING - 1)``: 1 alone, the factor when full.
  ``MOKKU_PREFILL_MS`` adds that much per prompt token to the time to first token (prefill), times
  the same factor. ``X-Mokku-Running: N`` makes one request see ``N`` running.

The counts live in shared memory made before gunicorn forks (``prepare``), as a table of the pids
holding each slot and each place in the queue: a worker that dies gives its places back (``gone``)
instead of holding them forever. Without ``prepare`` (plain gunicorn, in-process tests) each
process keeps its own.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from typing import TYPE_CHECKING, Any, Optional, Tuple

from mokku import config, errors
from mokku.server import connection

if TYPE_CHECKING:
    from mokku.server.http import Request

RUNNING_HEADER = "X-Mokku-Running"
POLL_S = 0.02  # how often a waiting request looks for a free slot
MAX_WAIT_S = 600.0  # the longest a request waits for a slot before it is refused


class Slots:
    """Places to run and to wait, shared by every process forked after they were made."""

    def __init__(self, running: int, waiting: int) -> None:
        self.max_running, self.max_waiting = running, waiting
        self._lock = multiprocessing.Lock()
        self._running = multiprocessing.RawArray("q", running)  # the pid in each slot, 0 when free
        self._waiting = multiprocessing.RawArray("q", max(waiting, 1))

    def counts(self) -> Tuple[int, int]:
        """(running, waiting) now."""
        with self._lock:
            return _held(self._running), _held(self._waiting)

    def take(self, environ: Any) -> Held:
        """A slot to run in, after waiting for one if need be; raises ``Full`` when the queue is full
        or the wait too long, ``ConnectionClosed`` when the client leaves while waiting."""
        pid = os.getpid()
        with self._lock:
            slot = _claim(self._running, pid)
            if slot is not None:
                return Held(self, slot, _held(self._running))
            place = _claim(self._waiting, pid) if self.max_waiting else None
            if place is None:
                raise Full(self.max_running, _held(self._waiting))
        began = time.monotonic()
        deadline = began + MAX_WAIT_S
        try:
            while True:
                if not connection.wait(POLL_S, environ):
                    raise connection.ConnectionClosed("the client left while it waited for a slot")
                with self._lock:
                    slot = _claim(self._running, pid)
                    if slot is not None:
                        self._waiting[place] = 0
                        place = -1
                        return Held(self, slot, _held(self._running), time.monotonic() - began)
                if time.monotonic() > deadline:
                    raise Full(self.max_running, self.max_waiting)
        finally:
            if place >= 0:
                with self._lock:
                    self._waiting[place] = 0

    def give_back(self, slot: int) -> None:
        with self._lock:
            self._running[slot] = 0

    def gone(self, pid: int) -> None:
        """A worker died: the places it held are free again."""
        with self._lock:
            for table in (self._running, self._waiting):
                for index, holder in enumerate(table):
                    if holder == pid:
                        table[index] = 0


def _held(table: Any) -> int:
    return sum(1 for holder in table if holder)


def _claim(table: Any, pid: int) -> Optional[int]:
    for index, holder in enumerate(table):
        if not holder:
            table[index] = pid
            return index
    return None


class Full(Exception):
    def __init__(self, running: int, waiting: int) -> None:
        super().__init__(f"{running} running, {waiting} waiting")
        self.running, self.waiting = running, waiting


class Held:
    """A running request's slot: given back once, when its answer is over."""

    __slots__ = ("_slot", "_slots", "running", "waited")

    def __init__(self, slots: Slots, slot: int, running: int, waited: float = 0.0) -> None:
        self._slots, self._slot, self.running = slots, slot, running
        self.waited = waited  # seconds in the queue

    def release(self) -> None:
        if self._slot >= 0:
            self._slots.give_back(self._slot)
            self._slot = -1


_shared: Optional[Slots] = None


def prepare(settings: config.Settings) -> None:
    """Make the shared slots in the process that forks the workers (gunicorn's arbiter)."""
    global _shared
    if settings.max_running:
        _shared = Slots(settings.max_running, settings.max_waiting)


def slots(settings: config.Settings) -> Optional[Slots]:
    """The server's slots: those made before the fork, else an app's own (an app made once per
    process: ``python -m mokku``, plain gunicorn, tests)."""
    if not settings.max_running:
        return None
    if _shared is not None and (_shared.max_running, _shared.max_waiting) == (
        settings.max_running,
        settings.max_waiting,
    ):
        return _shared
    return Slots(settings.max_running, settings.max_waiting)


def gone(pid: int) -> None:
    if _shared is not None:
        _shared.gone(pid)


class Load:
    """One server's load simulation: admission to a slot, and the latency it makes."""

    def __init__(self, settings: config.Settings, slots: Optional[Slots]) -> None:
        self.settings = settings
        self.slots = slots
        self.load_factor = settings.load_factor

    def admit(self, request: Request) -> float:
        """Take a slot for the request's generation (``request.held``, given back by the app when
        the answer is over), waiting for one; the factor its latency is stretched by (see the
        module). Raises the queue-full error, or a 400 for a bad ``X-Mokku-Running`` (before any
        wait, whether or not it changes the latency)."""
        asked = _asked_running(request)
        slots = self.slots
        if slots is None:
            return 1.0
        try:
            request.held = slots.take(request.environ)
        except Full as full:
            raise queue_full(self.settings, full) from None
        if self.load_factor == 1.0 or slots.max_running < 2:
            return 1.0
        running = min(asked or request.held.running, slots.max_running)
        return 1 + (self.load_factor - 1) * (running - 1) / (slots.max_running - 1)


def _asked_running(request: Request) -> int:
    """The running count ``X-Mokku-Running`` asks to be slowed down as, or 0 when not sent."""
    raw = request.header(RUNNING_HEADER)
    if not raw:
        return 0
    if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) <= 1_000_000:
        raise errors.invalid_request(
            f"The {RUNNING_HEADER} header must be a whole number from 1 to 1000000, got {raw!r}.",
            RUNNING_HEADER,
        )
    return int(raw)


def stretch(pace: Any, factor: float, prompt_tokens: int, prefill_ms: float) -> None:
    """A reply's pace under load: its delays times ``factor``, and the prompt's prefill added to the
    time to first token."""
    if factor != 1.0:
        pace.ttft *= factor
        pace.token_delay *= factor
    if prefill_ms:
        pace.ttft += prompt_tokens * prefill_ms / 1000 * factor


def queue_full(settings: config.Settings, full: Full) -> errors.APIError:
    """The refusal of a request that finds the queue full: a rate limit, or an overloaded server."""
    if settings.queue_full == 503:
        return errors.overloaded()
    return errors.APIError(
        429,
        f"This server is at capacity: {full.running} requests running and {full.waiting} waiting. "
        "Please try again shortly.",
        "requests",
        code="rate_limit_exceeded",
        headers=(
            ("retry-after", "1"),
            ("retry-after-ms", "1000"),
            ("x-ratelimit-limit-requests", str(full.running + full.waiting)),
            ("x-ratelimit-remaining-requests", "0"),
        ),
    )
