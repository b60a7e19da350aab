"""The one stream pipeline: every streamed response's body, from an endpoint's events to the client.

An endpoint produces events, framed here as server-sent events (``event``, ``typed_event``,
``EventTemplate``); ``EventStream`` owns everything between them and the socket:

- pacing: the time to first token before the first event (past the opening ones), the token delay
  before each token after the first (both waited on the client's socket, so a hang-up ends the wait);
- write batching: events ready together share one write. When tokens are paced, a ``Token`` event
  ends a write (it is sent as soon as it is due); other events join the write of the next token,
  or the last write. Unpaced, every event is ready at once: writes of up to ``WRITE_BYTES`` (one
  write per event costs a system call and a chunk header each, for nothing a client can see).
  A ``live`` stream (an upstream's, a recording's) has its own timing, unknown here: its headers
  go out at once and each ``Token`` in its own write, as it comes;
- stream faults, counted in events, whatever the batching: drop (a TCP reset), error (an error
  event, then the end), truncated (the end, without ``[DONE]``), stall (a long pause), malformed
  (half an event);
- cancellation: a stream that can be cancelled (a background response's) asks whether it was
  through its waits, in slices of ``CANCEL_POLL_SECONDS``, and ends ``cancelled`` without its
  next event;
- the error event when the producer fails after the stream has started;
- end callbacks, run once as the last write is made, before it goes out (the journal's reads wait
  for the entry from then on);
- close callbacks, run once when the server closes the body, however the stream ended (even
  before its first byte): the span's stream attributes, the request's outcome, the journal entry.

It is one closeable iterator, as bottle's ``_closeiter``: no generator stacked on another.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

from mokku import errors, telemetry
from mokku.server import connection
from mokku.server.http import JSONTemplate, Request, Response, dumps
from mokku.simulation.latency import Pace

log = logging.getLogger("mokku")

DONE = b"data: [DONE]\n\n"
CANCEL_POLL_SECONDS = 0.2  # how soon a cancellable stream's wait notices it was cancelled
WRITE_BYTES = 16 * 1024  # an unpaced stream's events gathered into one write, up to about this
HEADERS = (
    ("Content-Type", "text/event-stream; charset=utf-8"),
    ("Cache-Control", "no-cache"),
    ("X-Accel-Buffering", "no"),
)


def event(payload: Any) -> bytes:
    """An unnamed event, as chat and completions stream them: ``data: <compact json>``."""
    return b"data: " + dumps(payload) + b"\n\n"


def typed_event(kind: str, payload: Any) -> bytes:
    """A named event, as the Responses API streams them: ``event: <type>`` then its data."""
    return b"event: " + kind.encode() + b"\ndata: " + dumps(payload) + b"\n\n"


class EventTemplate(JSONTemplate):
    """An event whose JSON is fixed but for one value (for example a chunk's delta content),
    encoded once per stream, so each token costs one small ``dumps`` instead of a whole chunk's."""

    def __init__(self, template: Dict[str, Any]) -> None:
        super().__init__(template, b"data: ", b"\n\n")
        if len(self._pieces) != 2:
            raise ValueError("an event template has exactly one SLOT")
        self._head, self._tail = self._pieces

    def render(self, value: Any) -> bytes:
        return self._head + dumps(value) + self._tail  # once per token: kept to one concatenation


class Token:
    """An event that carries a token: paced, and written as soon as it is due."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class Opening(bytes):
    """An event sent as soon as the request is taken, before the time to first token: the Responses
    API's ``response.created``, ``queued`` and ``in_progress``, by which a client learns the id
    it may cancel while the model works."""


class Last(bytes):
    """A stream's final event, for streams that end without ``[DONE]``: a stream fault set past the
    stream's end strikes there."""


Event = Union[bytes, Token]


def error_event(error: errors.APIError) -> bytes:
    """The mid-stream error as chat and completions send it: the error envelope as an event."""
    return event(error.to_dict())


def half_event(data: bytes) -> bytes:
    """The event cut halfway through its data, its lines and its ending kept: whatever the event
    (an ``event:`` line before a short payload, as Anthropic's ping), its JSON does not parse."""
    body = data.rstrip(b"\r\n")
    start = body.rfind(b"data:")
    start = 0 if start < 0 else start + (6 if body[start + 5 : start + 6] == b" " else 5)
    return body[: start + max(1, (len(body) - start) // 2)] + (data[len(body) :] or b"\n\n")


# Faults that end the stream where they strike.
_ENDINGS = frozenset(("stream_drop", "stream_error", "stream_truncated"))
_KEEP_ALIVE = b"event: ping\n"  # Anthropic's keep-alive: the official SDKs never parse its data


def _strikes(fault: Tuple[str, int, int], sent: int, item: Event) -> bool:
    """Whether a stream fault strikes at this event: its count, or the end of a shorter stream."""
    at = fault[1]
    return sent == at or (sent < at and (isinstance(item, Last) or item == DONE))


class EventStream:
    """A streamed response's body: iterate it for the writes, close it when done (see the module)."""

    def __init__(
        self,
        request: Request,
        events: Iterable[Event],
        pace: Pace,
        fault: Optional[Tuple[str, int, int]] = None,
        render_error: Callable[[errors.APIError], bytes] = error_event,
        live: bool = False,
        cancelled: Optional[Callable[[], bool]] = None,
    ) -> None:
        self.request = request
        self._cancelled = cancelled  # asked through every wait: the stream ends ``cancelled`` when true
        self._live = live  # the headers at once (an empty first write), then each token as it comes
        self._events = iter(events)
        self._pace = pace
        self._fault = fault  # (stream fault, the event it strikes at, its argument), once
        self._render_error = render_error
        self._held: Optional[Event] = None  # an event put back while the events before it go out
        self._flush = False  # each token in its own write (a live stream, once its headers are out)
        self._tokens = 0
        self._callbacks: List[Callable[[EventStream], None]] = []
        self._end_callbacks: List[Callable[[], None]] = []
        self.ended = False  # the end callbacks ran
        self.events = 0  # events handed to the server
        self._begun = False  # the time to first token has been waited
        self.first_at = 0.0  # perf_counter() when the first write past the opening events was made
        self.token_times: Optional[List[float]] = None  # when each token was written, if wanted
        self.outcome: Optional[str] = None  # completed, failed, dropped; client_disconnected if it never ends
        self._taken = False  # the server asked past the last write: every byte was handed over and sent
        self._closed = False

    def on_close(self, callback: Callable[[EventStream], None]) -> None:
        self._callbacks.append(callback)

    def on_end(self, callback: Callable[[], None]) -> None:
        self._end_callbacks.append(callback)

    @property
    def completed(self) -> bool:
        return self.outcome == "completed"

    def response(self) -> Response:
        return Response(200, list(HEADERS), self)

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> bytes:
        if self.outcome is not None:
            self._taken = True
            raise StopIteration
        if self._live:
            self._live = False
            self._flush = True
            return b""  # the servers send the headers on it
        batch: List[bytes] = []
        unpaced = not self._pace.token_delay
        size = 0
        try:
            while self.outcome is None:
                fault = self._fault
                if (
                    fault is not None
                    and fault[0] in _ENDINGS
                    and self.events == fault[1]
                    and self._held is None
                ):
                    # An ending strikes before the next event is made, so the event it replaces is
                    # never produced (the Responses API's numbering stays unbroken).
                    if batch:
                        break  # the events before the fault go out first
                    self._begin()
                    if self.outcome is None:
                        self._end(fault[0], batch)
                    continue
                item = self._next_event()
                if item is None:
                    self.outcome = "completed"
                elif not self._ready(item, batch):
                    break  # what is batched goes out first; the event is held for the next write
                elif self._fault is not None and _strikes(self._fault, self.events, item):
                    if batch:
                        self._held = item  # the events before the fault go out first
                        break
                    self._strike(self._fault, item, batch)
                    if isinstance(item, Token):
                        self._tokens += 1
                        break
                elif isinstance(item, Token):
                    self._add(item.data, batch)
                    self._tokens += 1
                    if self.token_times is not None:
                        self.token_times.append(time.perf_counter())
                    size += len(item.data)
                    if not unpaced or size >= WRITE_BYTES or self._flush:
                        break
                else:
                    self._add(item, batch)
        except ConnectionResetError:
            raise  # the client is gone, or the connection is dropped on purpose: not an error
        except Exception:
            log.exception("stream failed after it started")
            error = errors.server_error()
            telemetry.record_error(
                self.request.span, 500, error.type, error.code, "stream failed after it started"
            )
            self._add(self._render_error(error), batch)
            self.outcome = "failed"
        if self.outcome is not None and not self.ended:
            self._run_end_callbacks()
        if not batch:
            self._taken = True
            raise StopIteration
        if not self.first_at and self._begun:
            self.first_at = time.perf_counter()
        return batch[0] if len(batch) == 1 else b"".join(batch)

    def _add(self, data: bytes, batch: List[bytes]) -> None:
        batch.append(data)
        self.events += 1

    def _next_event(self) -> Optional[Event]:
        held, self._held = self._held, None
        if held is not None:
            return held
        return next(self._events, None)

    def _ready(self, item: Event, batch: List[bytes]) -> bool:
        """Wait until ``item`` is due; False (holding it) when the batch must go out before the wait."""
        if not self._begun and not isinstance(item, Opening):
            if batch and self._pace.ttft:
                self._held = item  # the opening events go out before the wait
                return False
            self._begin()
        if isinstance(item, Token):
            if self._tokens and self._pace.token_delay:
                if batch:
                    self._held = item
                    return False
                self._wait(self._pace.next_token())
        return self.outcome is None  # else cancelled during the wait: the item is never sent

    def _begin(self) -> None:
        """The time to first token, once, before the first event past the opening ones."""
        if not self._begun:
            self._begun = True
            self._wait(self._pace.first_token())

    def _strike(self, fault: Tuple[str, int, int], item: Event, batch: List[bytes]) -> None:
        """Break the stream at ``item`` (nothing else is batched yet)."""
        name, _, arg = fault
        data = item.data if isinstance(item, Token) else item
        if name in _ENDINGS:
            self._end(name, batch)
        elif name == "stream_stall":
            self._fault = None  # once
            self._wait(float(arg))
            if self.outcome is not None:
                return
            self._pace.resume()
            self._add(data, batch)
        elif data.startswith(_KEEP_ALIVE):  # stream_malformed at a ping, which clients skip unparsed
            self._add(data, batch)
            self._fault = (name, self.events, arg)  # the next event is cut instead
        else:  # stream_malformed
            self._fault = None
            self._add(half_event(data), batch)

    def _end(self, name: str, batch: List[bytes]) -> None:
        """End the stream as the fault says: a reset, an error event, or no ``[DONE]``."""
        self._fault = None
        if name == "stream_drop":
            self.outcome = "dropped"  # by the server, not left by the client
            connection.drop_connection(self.request.environ)
        if name == "stream_error":
            self._add(self._render_error(errors.simulated_server_error()), batch)
            self.outcome = "failed"  # as a stream ended by a real error
        else:
            self.outcome = "completed"

    def _wait(self, seconds: float) -> None:
        if self._cancelled is None:
            connection.hold(seconds, self.request.environ, "the stream waited")
            return
        ends = time.monotonic() + seconds
        while True:  # in slices, asking whether the stream was cancelled after each
            left = ends - time.monotonic()
            if left > 0:
                connection.hold(min(left, CANCEL_POLL_SECONDS), self.request.environ, "the stream waited")
            if self._cancelled():
                self.outcome = "cancelled"
                return
            if left <= CANCEL_POLL_SECONDS:
                return

    def _run_end_callbacks(self) -> None:
        self.ended = True
        for callback in self._end_callbacks:
            try:
                callback()
            except Exception:
                log.exception("a stream's end callback failed")

    def close(self) -> None:
        """Close the producer and run the callbacks, once."""
        if self._closed:
            return
        self._closed = True
        request = self.request
        if self.events and not self._taken:  # a write failed or the client left: no polite close
            connection.abandon(request.environ)
        try:
            close = getattr(self._events, "close", None)
            if close is not None:
                close()
        finally:
            request.stream_outcome = self.outcome or "client_disconnected"
            request.stream_events = self.events
            telemetry.record_stream_end(request.span, request.stream_outcome, self.events)
            for callback in self._callbacks:
                try:
                    callback(self)
                except Exception:
                    log.exception("a stream's close callback failed")
