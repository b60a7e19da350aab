"""The Messages stream: ``event: <type>`` then ``data: <json>``, in Anthropic's order.

``message_start`` (the message without content), then per content block ``content_block_start``,
its deltas (``thinking_delta`` then one ``signature_delta``, ``text_delta``, ``input_json_delta``)
and ``content_block_stop``, a ``ping`` after the first block starts, then ``message_delta`` (the
stop reason, the output tokens) and ``message_stop``. A failure mid-stream is an ``error`` event.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterator, List, Sequence

from mokku import errors
from mokku.anthropic.dialect import envelope, translate
from mokku.api.tokens import tokenize
from mokku.server.stream import Event, Last, Token, typed_event

PING = typed_event("ping", {"type": "ping"})
STOP = Last(typed_event("message_stop", {"type": "message_stop"}))


def error(failure: errors.APIError, request_id: str) -> bytes:
    """The ``error`` event a stream ends with when it fails."""
    _, error_type, message = translate(failure)
    return typed_event("error", envelope(error_type, message, request_id))


def _delta(index: int, delta: Dict[str, Any]) -> bytes:
    return typed_event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


def stream(message: Dict[str, Any], text_tokens: Sequence[str]) -> Iterator[Event]:
    """The events of ``message`` (finished), its text sent as ``text_tokens``."""
    usage = message["usage"]
    # Nothing written yet: no stop, one output token, its breakdown left to message_delta.
    start = dict(
        message,
        content=[],
        stop_reason=None,
        stop_sequence=None,
        stop_details=None,
        usage=dict(usage, output_tokens=1, output_tokens_details=None),
    )
    yield typed_event("message_start", {"type": "message_start", "message": start})
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "thinking":
            opened: Dict[str, Any] = {"type": "thinking", "thinking": "", "signature": ""}
        elif kind == "tool_use":
            opened = dict(block, input={})
        else:
            opened = {"type": "text", "text": ""}
        yield typed_event(
            "content_block_start", {"type": "content_block_start", "index": index, "content_block": opened}
        )
        if index == 0:
            yield PING
        yield from _deltas(index, block, text_tokens)
        yield typed_event("content_block_stop", {"type": "content_block_stop", "index": index})
    yield typed_event(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {
                "stop_reason": message["stop_reason"],
                "stop_sequence": message["stop_sequence"],
                "stop_details": message["stop_details"],
            },
            "usage": {  # cumulative, as the real API sends it
                "input_tokens": usage["input_tokens"],
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": usage["cache_read_input_tokens"],
                "output_tokens": usage["output_tokens"],
                "output_tokens_details": usage["output_tokens_details"],
                "server_tool_use": None,
            },
        },
    )
    yield STOP


def _deltas(index: int, block: Dict[str, Any], text_tokens: Sequence[str]) -> Iterator[Event]:
    kind = block["type"]
    pieces: List[str]
    if kind == "thinking":
        for piece in tokenize(block["thinking"]):
            yield Token(_delta(index, {"type": "thinking_delta", "thinking": piece}))
        yield _delta(index, {"type": "signature_delta", "signature": block["signature"]})
    elif kind == "tool_use":
        pieces = tokenize(_compact(block["input"]))
        for piece in pieces:
            yield Token(_delta(index, {"type": "input_json_delta", "partial_json": piece}))
    else:
        for token in text_tokens:
            yield Token(_delta(index, {"type": "text_delta", "text": token}))


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
