"""What the OpenAI endpoints share when they render a reply: the response, its stream, its usage.

``respond`` is the last step of every generation endpoint: it notes the result for the journal
and the span, waits as long as the reply's pace says for a whole answer, or hands the events to
the stream pipeline.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Protocol, Sequence

from mokku import errors
from mokku.api.ids import random_id
from mokku.server import connection
from mokku.server.http import Request, Response, Result, encoded_json_response, json_response
from mokku.server.stream import DONE, Event, EventStream, Token, error_event, event
from mokku.simulation.faults import Behaviour
from mokku.simulation.load import stretch
from mokku.telemetry import record_response

SYSTEM_FINGERPRINT = "fp_6d0c3f2a1b"
SERVICE_TIER = "default"
# The tier an answer names for each asked: fast mode is served as priority; auto is the default.
_SERVED_TIERS = {
    "flex": "flex",
    "priority": "priority",
    "scale": "scale",
    "fast": "priority",
    "ultrafast": "ultrafast",
}


def service_tier(asked: Any) -> str:
    """The ``service_tier`` an answer names for the one asked."""
    return _SERVED_TIERS.get(asked, SERVICE_TIER) if isinstance(asked, str) else SERVICE_TIER


def respond(
    request: Request,
    behaviour: Behaviour,
    response_id: Optional[str],
    usage: Dict[str, Any],
    finish_reasons: Sequence[str],
    body: Any = None,
    events: Optional[Iterable[Event]] = None,
    render_error: Callable[[errors.APIError], bytes] = error_event,
    wait: bool = True,
    answered: Optional[str] = None,
    cancelled: Optional[Callable[[], bool]] = None,
    live: bool = False,
) -> Response:
    """The JSON ``body`` (a document, or its encoded bytes; after the whole answer's time unless not
    ``wait``) or the stream of ``events``, paced as the request asks, with the GenAI response
    attributes on the span (``answered``: the model the answer names, where not the one asked for;
    ``cancelled`` and ``live``: see ``EventStream``).

    A stream's output tokens and finish reasons are recorded only once its last event is sent,
    so a client that disconnects early is not counted as having received the whole output.
    """
    span, model = request.span, answered or behaviour.model
    prompt_tokens = usage.get("prompt_tokens", 0)
    completion_tokens = usage.get("completion_tokens", 0)
    request.result = Result(response_id, list(finish_reasons), usage)
    if behaviour.load != 1.0 or request.settings.prefill_ms:  # the prefill: tokens not cached only
        stretch(
            behaviour.pace, behaviour.load, prompt_tokens - request.cached_tokens, request.settings.prefill_ms
        )
    if events is None:
        if wait:
            connection.hold(
                behaviour.pace.whole_response(completion_tokens), request.environ, "the answer waited"
            )
        record_response(span, response_id, model, prompt_tokens, completion_tokens, finish_reasons)
        return encoded_json_response(body) if isinstance(body, bytes) else json_response(body)
    record_response(span, response_id, model, prompt_tokens)
    stream = EventStream(
        request, events, behaviour.pace, behaviour.stream_fault, render_error, live, cancelled
    )
    if span is not None:

        def on_close(stream: EventStream) -> None:
            if stream.completed:
                record_response(span, response_id, model, prompt_tokens, completion_tokens, finish_reasons)

        stream.on_close(on_close)
    return stream.response()


def obfuscation(wanted: bool) -> Optional[str]:
    """The string a stream's events end with (``obfuscation``) unless ``include_obfuscation`` is
    false: one random string per stream, where the real API pads each event to a size of its own."""
    return random_id("", 12) if wanted else None


def chunk_base(
    object_name: str, completion_id: str, created: int, model: str, include_usage: bool, **extra: Any
) -> Dict[str, Any]:
    """The fields every chunk of a stream repeats; ``usage`` is null in each when usage is asked for."""
    base: Dict[str, Any] = {
        "id": completion_id,
        "object": object_name,
        "created": created,
        "model": model,
        **extra,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": None,
    }
    if include_usage:
        base["usage"] = None
    return base


def stream_end(base: Dict[str, Any], usage: Optional[Dict[str, Any]]) -> Iterator[bytes]:
    """The usage chunk (when asked for: no choices, the usage) and ``[DONE]``."""
    if usage is not None:
        yield event({**base, "choices": [], "usage": usage})
    yield DONE


class TokenEvents(Protocol):
    def render(self, token: str) -> bytes: ...


def interleave(renderers: Sequence[TokenEvents], token_lists: Sequence[Sequence[str]]) -> Iterator[Token]:
    """One event per token, choices taking turns, as the real API streams ``n > 1``."""
    if len(renderers) == 1:  # the common stream: one choice, a token at a time
        render = renderers[0].render
        for token in token_lists[0]:
            yield Token(render(token))
        return
    longest = max(map(len, token_lists), default=0)
    for position in range(longest):
        for renderer, tokens in zip(renderers, token_lists):
            if position < len(tokens):
                yield Token(renderer.render(tokens[position]))


def usage(
    prompt_tokens: int, completion_tokens: int, details: bool = True, cached: int = 0
) -> Dict[str, Any]:
    body: Dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if details:
        body["prompt_tokens_details"] = {"cached_tokens": cached, "audio_tokens": 0}
        body["completion_tokens_details"] = {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        }
    return body


def now() -> int:
    return int(time.time())
