"""The Responses API's stream: typed events, ``event: <type>`` plus ``data: <json>``, numbered.

The same events are made for a stream as it is created and for a background response's stream
resumed later (``GET /v1/responses/{id}?stream=true&starting_after=N``): they follow from the
finished response and its output tokens, so a resumed stream repeats the numbers of the first.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence

from mokku import errors
from mokku.api import logprobs as token_logprobs
from mokku.api.tokens import tokenize
from mokku.server import stream
from mokku.server.stream import Event, Last, Opening, Token


class Numbered:
    """Typed events numbered from 0, an error event (a fault's, a failure's) included."""

    def __init__(self) -> None:
        self._sequence = itertools.count()
        self.last = -1  # the number of the event made last
        # Whether that event ends the stream (and so cannot have gone out before an error).
        self._final = False
        self.response: Optional[Dict[str, Any]] = None  # as created: what ``response.failed`` ends
        # Given the error, the failed response and the error event's number.
        self.on_failure: Optional[Callable[[errors.APIError, Dict[str, Any], int], None]] = None

    def __call__(self, kind: str, **fields: Any) -> bytes:
        self.last = next(self._sequence)
        self._final = kind in FINAL_EVENTS
        return stream.typed_event(kind, {"type": kind, "sequence_number": self.last, **fields})

    def after(self, number: int, made: Iterable[Event]) -> Iterator[Event]:
        """The events of ``made`` (numbered by this) past ``number``: a resumed stream."""
        for event in made:
            if self.last > number:
                yield event

    def error(self, error: errors.APIError) -> bytes:
        """The ``error`` event the Responses API sends when a stream fails, then ``response.failed``
        (the response failed, with the error's code and message), as the real API ends one. The real
        API nests the error under ``error`` (as the official SDKs and the AI SDK read it), where the
        spec puts its fields at the top level (as generated clients read it): both, so that either
        kind sees it."""
        if self._final:  # made, but a fault struck in its place: its number is the error's
            self._sequence = itertools.count(self.last)
        code = error.code or error.type
        fields = {"code": code, "message": error.message, "param": error.param}
        event = self("error", error={"type": error.type, **fields}, **fields)
        if self.response is None:
            return event
        reason = {"code": code if code in FAILURE_CODES else "server_error", "message": error.message}
        failed = dict(self.response, status="failed", error=reason)
        if self.on_failure is not None:
            self.on_failure(error, failed, self.last)
        return event + self("response.failed", response=failed)

    def until_failure(self, made: Iterable[Event], number: int, error: errors.APIError) -> Iterator[Event]:
        """The events of ``made`` before ``number``, then ``error`` numbered ``number``: a failed
        stream replayed as it went."""
        for event in made:
            if self.last >= number:
                break
            yield event
        self._sequence, self._final = itertools.count(number), False
        yield self.error(error)


FINAL_EVENTS = ("response.completed", "response.incomplete")
# The codes a failed response's ``error`` takes (``ResponseErrorCode``) that a stream may end with.
FAILURE_CODES = ("server_error", "rate_limit_exceeded")


def text_part(text: str, logprobs: Optional[List[Dict[str, Any]]] = None) -> Dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs or []}


def part_logprobs(tokens: Sequence[str], top: Optional[int]) -> Optional[List[Dict[str, Any]]]:
    """An output text's ``logprobs`` (``LogProb``): each token's, with ``top`` alternatives; None
    when they were not asked for (``include``)."""
    if top is None:
        return None
    return [token_logprobs.token_entry(token, top) for token in tokens]


def _delta_logprobs(entry: Dict[str, Any]) -> Dict[str, Any]:
    """A delta event's ``logprobs`` entry (``ResponseLogProb``): no bytes."""
    return {
        "token": entry["token"],
        "logprob": entry["logprob"],
        "top_logprobs": [{"token": t["token"], "logprob": t["logprob"]} for t in entry["top_logprobs"]],
    }


def unfinished(final: Dict[str, Any], status: str) -> Dict[str, Any]:
    """The response as it stood before its output: queued or in progress."""
    shell = dict(final, status=status, output=[], completed_at=None, incomplete_details=None)
    shell.pop("usage", None)
    return shell


def _call_input(
    emit: Numbered,
    item_id: str,
    output_index: int,
    event: str,
    fragments: Sequence[str],
    padding: Dict[str, str],
    **done: Any,
) -> Iterator[Event]:
    """A call's input as it is made: each fragment an ``<event>.delta`` (with the stream's
    ``obfuscation``, in ``padding``), then ``<event>.done``."""
    for fragment in fragments:
        delta = emit(f"{event}.delta", item_id=item_id, output_index=output_index, delta=fragment, **padding)
        yield Token(delta)
    yield emit(f"{event}.done", item_id=item_id, output_index=output_index, **done)


def _summary(
    emit: Numbered, item: Dict[str, Any], output_index: int, padding: Dict[str, str]
) -> Iterator[bytes]:
    """A reasoning item's summary parts as they are made: each part added, its text in deltas (not
    paced: the reasoning is over before the answer's first token), done."""
    for summary_index, part in enumerate(item["summary"]):
        where = {"item_id": item["id"], "output_index": output_index, "summary_index": summary_index}
        yield emit("response.reasoning_summary_part.added", **where, part=dict(part, text=""))
        for piece in tokenize(part["text"]):
            yield emit("response.reasoning_summary_text.delta", **where, delta=piece, **padding)
        yield emit("response.reasoning_summary_text.done", **where, text=part["text"])
        yield emit("response.reasoning_summary_part.done", **where, part=part)


def events(
    emit: Numbered,
    final: Dict[str, Any],
    tokens: Sequence[str],
    top_logprobs: Optional[int] = None,
    cancelled: bool = False,
    obfuscation: Optional[str] = None,
) -> Iterator[Event]:
    """The typed events of ``final``, in the real API's order (a background response is first
    queued); a cancelled one stops before its output. Each delta (text, a call's input) ends with
    ``obfuscation`` when given, as the real API's do unless ``include_obfuscation`` is false: here
    one random string per stream, where the real API pads each event to a size of its own."""
    padding = {} if obfuscation is None else {"obfuscation": obfuscation}
    background = final.get("background", False)
    first = unfinished(final, "queued" if background else "in_progress")
    emit.response = first
    yield Opening(emit("response.created", response=first))
    if background:
        yield Opening(emit("response.queued", response=first))
    if cancelled:
        return
    # A background response stays queued for the time to first token, as reading it back says.
    in_progress = emit("response.in_progress", response=unfinished(final, "in_progress"))
    yield in_progress if background else Opening(in_progress)
    for output_index, item in enumerate(final["output"]):
        item_id = item["id"]
        if item["type"] == "reasoning":
            yield emit("response.output_item.added", output_index=output_index, item=dict(item, summary=[]))
            yield from _summary(emit, item, output_index, padding)
        elif item["type"] == "custom_tool_call":
            yield emit(
                "response.output_item.added",
                output_index=output_index,
                item=dict(item, input=""),
            )
            yield from _call_input(
                emit,
                item_id,
                output_index,
                "response.custom_tool_call_input",
                tokens,
                padding,
                input=item["input"],
            )
        elif item["type"] == "function_call":
            yield emit(
                "response.output_item.added",
                output_index=output_index,
                item=dict(item, status="in_progress", arguments=""),
            )
            yield from _call_input(
                emit,
                item_id,
                output_index,
                "response.function_call_arguments",
                tokenize(item["arguments"]),
                padding,
                name=item["name"],
                arguments=item["arguments"],
            )
        else:
            yield emit(
                "response.output_item.added",
                output_index=output_index,
                item=dict(item, status="in_progress", content=[]),
            )
            where = {"item_id": item_id, "output_index": output_index, "content_index": 0}
            yield emit("response.content_part.added", **where, part=text_part(""))
            entries = part_logprobs(tokens, top_logprobs) or []
            deltas = [_delta_logprobs(entry) for entry in entries]
            for index, token in enumerate(tokens):
                logprobs = [deltas[index]] if deltas else []
                yield Token(
                    emit("response.output_text.delta", **where, delta=token, logprobs=logprobs, **padding)
                )
            part = item["content"][0]
            yield emit("response.output_text.done", **where, text=part["text"], logprobs=deltas)
            yield emit("response.content_part.done", **where, part=part)
        yield emit("response.output_item.done", output_index=output_index, item=item)
    yield Last(
        emit(
            "response.incomplete" if final["status"] == "incomplete" else "response.completed", response=final
        )
    )
