"""Strict parsing of an OpenAI-style SSE body: every event is ``data: <compact json>\\n\\n``."""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List


def compact(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def parse(body: bytes) -> List[Any]:
    """The event payloads, asserting the exact framing; the last event must be ``[DONE]``."""
    assert body.endswith(b"data: [DONE]\n\n"), body[-200:]
    frames = body.split(b"\n\n")
    assert frames[-1] == b""
    payloads = []
    for frame in frames[:-2]:
        assert frame.startswith(b"data: "), frame[:100]
        assert b"\n" not in frame, frame[:100]
        raw = frame[len(b"data: ") :]
        payload = json.loads(raw)
        assert compact(payload) == raw, "event JSON is not compact UTF-8"
        payloads.append(payload)
    assert frames[-2] == b"data: [DONE]"
    return payloads


def content(chunks: List[Any], index: int = 0) -> str:
    return "".join(
        choice["delta"].get("content") or ""
        for chunk in chunks
        for choice in chunk["choices"]
        if choice["index"] == index
    )


def post_stream(app: Any, url: str, body: Dict[str, Any], check: Callable[[Any], None]) -> List[Any]:
    """POST ``body`` with ``stream`` on (a WebTest app), assert the SSE headers and framing, and
    ``check`` every chunk; the chunks."""
    response = app.post_json(url, dict(body, stream=True))
    assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    chunks = parse(response.body)
    for chunk in chunks:
        check(chunk)
    return chunks
