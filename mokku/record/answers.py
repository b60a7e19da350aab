"""Reading an upstream's answer (live or recorded) as mokku reads its own: a stream cut into its
events, and what the answer says of itself (its id, finish reasons, token usage), so that a
forwarded or replayed call fills the journal, the metrics and the verdict as a mock answer does."""

from __future__ import annotations

import json
import re
from typing import Any, Dict, Iterable, Iterator, List, Optional

from mokku.server.http import Result

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
MAX_PENDING = 64 * 1024  # bytes of an event with no end in sight, passed on as they are past this
# Token counts under the other providers' names (the Responses API's, Anthropic's, Gemini's), as
# mokku's own results name them; OpenAI's usage is kept as it came, as mokku's own is.
_USAGE = {
    "input_tokens": "prompt_tokens",
    "promptTokenCount": "prompt_tokens",
    "output_tokens": "completion_tokens",
    "candidatesTokenCount": "completion_tokens",
}


def events(reads: Iterable[bytes]) -> Iterator[bytes]:
    """An event stream's reads cut at its events' ends (a blank line), each event whole: the stream
    faults, the journal and the metrics count events, not reads. What is left at the end comes last."""
    pending = b""
    for data in reads:
        pending += data
        start = 0
        for end in _EVENT_END.finditer(pending):
            yield pending[start : end.end()]
            start = end.end()
        pending = pending[start:]
        if len(pending) > MAX_PENDING:
            yield pending
            pending = b""
    if pending:
        yield pending


class Outcome:
    """What an answer says of itself, gathered from its body or its stream's events."""

    def __init__(self) -> None:
        self.id: Optional[str] = None
        self.reasons: List[str] = []
        self.usage: Dict[str, int] = {}

    def body(self, data: bytes) -> None:
        try:
            self._add(json.loads(data))
        except (ValueError, RecursionError):
            pass

    def event(self, data: bytes) -> None:
        """One server-sent event: the JSON of its ``data:`` lines."""
        lines = [line[5:].strip() for line in data.splitlines() if line.startswith(b"data:")]
        if lines and lines != [b"[DONE]"]:
            self.body(b"\n".join(lines))

    def _add(self, document: Any) -> None:
        if not isinstance(document, dict):
            return
        # An answer whole, or as its events carry it: the Responses API's response, Anthropic's
        # message (message_start) and delta (message_delta).
        for part in (document, document.get("response"), document.get("message"), document.get("delta")):
            if isinstance(part, dict):
                self._take(part)

    def _take(self, part: Dict[str, Any]) -> None:
        found = part.get("id") or part.get("responseId")
        if self.id is None and isinstance(found, str):
            self.id = found
        for choice in _list(part.get("choices")) + _list(part.get("candidates")):
            reason = (
                choice.get("finish_reason") or choice.get("finishReason")
                if isinstance(choice, dict)
                else None
            )
            if isinstance(reason, str):
                self.reasons.append(reason)
        if isinstance(part.get("stop_reason"), str):
            self.reasons.append(part["stop_reason"])
        usage = part.get("usage") or part.get("usageMetadata")
        if isinstance(usage, dict) and "prompt_tokens" in usage:
            self.usage = usage
        elif isinstance(usage, dict):
            for name, value in usage.items():
                if name in _USAGE and type(value) is int:
                    self.usage[_USAGE[name]] = value  # a later count (a stream's last) replaces an earlier

    def result(self) -> Optional[Result]:
        """The journal's result; None for an answer that is no generation (a model list, an error)."""
        if self.id is None and not self.reasons and not self.usage:
            return None
        return Result(self.id, self.reasons or None, self.usage)


def _list(value: Any) -> List[Any]:
    return value if isinstance(value, list) else []
