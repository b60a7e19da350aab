"""W5: many slow streams held at once, driven by one asyncio client.

Each stream asks for ``tokens`` tokens at a fixed pace; the client notes when every SSE event
arrives. A token's lateness is how far it arrives behind its schedule (the first token's arrival
plus one delay per token since), so time lost anywhere (the server's scheduling, the client's own
event loop, the kernel) shows up, while the first token's wait (accepting the connection) does not.
Streams start spread over ``ramp`` seconds, as clients of a real service would.
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import statistics
from typing import List, NamedTuple, Optional, Tuple

DATA = b"data: "
DONE = b"data: [DONE]"


class Outcome(NamedTuple):
    streams: int
    completed: int
    chunks_per_second: float
    lateness_p50_ms: float
    lateness_p99_ms: float
    lateness_max_ms: float
    lateness_percentiles_ms: Tuple[float, ...] = ()  # 1 to 99, for the chart


class _Stream(asyncio.Protocol):
    """One streamed chat completion over its own connection; the arrival time of each event."""

    def __init__(self, request: bytes, finished: asyncio.Future[List[float]]) -> None:
        self.request = request
        self.finished = finished
        self.loop = asyncio.get_running_loop()
        self.sent = self.loop.time()
        self.first_byte = 0.0
        self.arrivals: List[float] = []
        self.head = b""
        self.tail = b""
        self.complete = False
        self.transport: Optional[asyncio.Transport] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        now = self.loop.time()
        if not self.first_byte:
            self.first_byte = now - self.sent
        if self.head is not None:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.head.startswith(b"HTTP/1.1 200"):
                self.transport.close()  # type: ignore[union-attr]
                return
            data, self.head = self.head[end + 4 :], None  # type: ignore[assignment]
        # An event's "data: " may straddle two reads: look at the end of the last one too.
        window = self.tail + data
        self.arrivals.extend([now] * window.count(DATA))
        if DONE in window:
            self.complete = True
            self.transport.close()  # type: ignore[union-attr]
        self.tail = window[-(len(DATA) - 1) :]

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if not self.finished.done():
            self.finished.set_result(self.arrivals if self.complete else [])


async def _one(port: int, request: bytes, start_in: float = 0.0) -> List[float]:
    await asyncio.sleep(start_in)
    return (await _exchange(port, request))[1]


async def _exchange(port: int, request: bytes) -> Tuple[float, List[float]]:
    """One request on a new connection: time to its first byte and each event's arrival."""
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[List[float]] = loop.create_future()
    try:
        _, stream = await loop.create_connection(lambda: _Stream(request, finished), "127.0.0.1", port)
    except OSError:
        return 0.0, []
    events = await finished
    return stream.first_byte, events


async def _first_bytes(port: int, request: bytes, concurrency: int, seconds: float) -> List[float]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    found: List[float] = []

    async def client() -> None:
        while loop.time() < deadline:
            first_byte, events = await _exchange(port, request)
            if events:
                found.append(first_byte)

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return found


def time_to_first_byte(
    port: int, body: dict, concurrency: int = 64, seconds: float = 5.0
) -> Tuple[float, float]:
    """p50 and p99 (ms) from sending a streamed request to the first byte of its answer, under load."""
    found = asyncio.run(_first_bytes(port, chat_request(port, body), concurrency, seconds))
    cuts = statistics.quantiles(found, n=100)
    return cuts[49] * 1000, cuts[98] * 1000


def chat_request(port: int, body: dict, headers: str = "") -> bytes:
    """A whole HTTP/1.1 chat request, closing the connection after the answer."""
    payload = json.dumps(body).encode()
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n{headers}"
        "Connection: close\r\n\r\n"
    ).encode() + payload


def slow_request(port: int, tokens: int, token_ms: float) -> bytes:
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": " ".join(["word"] * (tokens + 10))}],
        "max_tokens": tokens,
        "stream": True,
    }
    return chat_request(port, body, f"X-Mokku-Token-Ms: {token_ms:g}\r\n")


async def _run(port: int, streams: int, tokens: int, token_ms: float, ramp: float, exact: bool) -> Outcome:
    request = slow_request(port, tokens, token_ms)
    started = asyncio.get_running_loop().time()
    results = await asyncio.gather(*(_one(port, request, random.uniform(0, ramp)) for _ in range(streams)))
    elapsed = asyncio.get_running_loop().time() - started
    delay = token_ms / 1000
    lateness: List[float] = []
    completed = chunks = 0
    for arrivals in results:
        # Events: the role chunk, one per token, the finish chunk, [DONE]. A peer's stream counts
        # when it ends with [DONE], whatever its length.
        if len(arrivals) < 4 or (exact and len(arrivals) != tokens + 3):
            continue
        completed += 1
        chunks += len(arrivals)
        first = arrivals[1]
        lateness.extend(arrivals[1 + k] - first - k * delay for k in range(1, len(arrivals) - 3))
    if not lateness:
        return Outcome(streams, completed, 0.0, float("nan"), float("nan"), float("nan"))
    cuts = statistics.quantiles(lateness, n=100)
    return Outcome(
        streams,
        completed,
        chunks / elapsed,
        cuts[49] * 1000,
        cuts[98] * 1000,
        max(lateness) * 1000,
        tuple(cut * 1000 for cut in cuts),
    )


def run(
    port: int, streams: int, tokens: int = 300, token_ms: float = 100, ramp: float = 2.0, exact: bool = True
) -> Outcome:
    """Hold ``streams`` streams of ``tokens`` tokens at one token per ``token_ms``; wait for them all.

    ``exact``: a stream counts as complete only with exactly ``tokens`` tokens (mokku's echo)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < streams + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, streams + 1000), hard))
    return asyncio.run(_run(port, streams, tokens, token_ms, ramp, exact))
