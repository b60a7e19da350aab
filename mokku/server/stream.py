"""Server-sent events, as the OpenAI API frames them: ``data: <compact json>\\n\\n``.

Streams are generators: each event is encoded and handed to the server as it
is produced, never collected. When the client hangs up, the server closes the
generator (``GeneratorExit`` at its ``yield``), which ends the stream quietly.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Iterable, Iterator, Optional

from opentelemetry.trace import Span

from mokku import errors, telemetry
from mokku.server.http import JSONTemplate, Response, dumps

log = logging.getLogger("mokku")

DONE = b"data: [DONE]\n\n"


def event(payload: Any) -> bytes:
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

    def render(self, value: Any) -> bytes:  # type: ignore[override]
        return self._head + dumps(value) + self._tail  # once per token: kept to one concatenation


HEADERS = (
    ("Content-Type", "text/event-stream; charset=utf-8"),
    ("Cache-Control", "no-cache"),
    ("X-Accel-Buffering", "no"),
)


def response(
    events: Iterable[bytes],
    span: Optional[Span] = None,
    on_complete: Optional[Callable[[], None]] = None,
    environ: Optional[Dict[str, Any]] = None,
) -> Response:
    """A 200 streaming response; a failure mid-stream ends it with an error event.

    ``on_complete`` runs once the last event has been handed to the server
    (not when the client disconnects first); the span learns how it ended.
    """
    return Response(200, list(HEADERS), _guarded(events, span, on_complete, environ))


def _guarded(
    events: Iterable[bytes],
    span: Optional[Span],
    on_complete: Optional[Callable[[], None]],
    environ: Optional[Dict[str, Any]],
) -> Iterator[bytes]:
    iterator = iter(events)
    sent = 0
    completed = False
    try:
        for chunk in iterator:
            yield chunk
            sent += chunk.count(b"\n\n")  # events, several of which may share a write
        completed = True
        if on_complete is not None:
            on_complete()
    except ConnectionResetError:
        raise  # the client is gone, or the connection is dropped on purpose: not an error
    except Exception:
        log.exception("stream failed after it started")
        error = errors.server_error()
        telemetry.record_error(span, 500, error.type, error.code, "stream failed after it started")
        yield event(error.to_dict())
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
        telemetry.record_stream_end(span, completed, sent)
        if environ is not None:  # for the journal
            outcome = "completed" if completed else "client_disconnected"
            environ["mokku.stream"] = {"outcome": outcome, "events": sent}
