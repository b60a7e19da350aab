"""Latency: when a reply's first token and each next token are due.

A ``Pace`` says how long to wait; the stream pipeline (``mokku.server.stream``) does the waiting,
on the client's socket, so a client that hangs up ends the wait at once. Server-wide values come
from ``MOKKU_TTFT_MS``, ``MOKKU_TOKEN_MS`` (or ``MOKKU_TOKENS_PER_SECOND``) and ``MOKKU_JITTER``;
a request may set its own with the ``X-Mokku-*`` headers below.
"""

from __future__ import annotations

import math
import random
import time
from typing import Callable

from mokku import config, errors
from mokku.server.http import Request

LATENCY_HEADER = "X-Mokku-Latency-Ms"
TOKEN_HEADER = "X-Mokku-Token-Ms"
RATE_HEADER = "X-Mokku-Tokens-Per-Second"
JITTER_HEADER = "X-Mokku-Jitter"
MAX_TOKEN_S = 600  # the longest wait a header asks for: before the first token, or between two


# How far behind its schedule a token may be and still be caught up (about ten tokens at 10/s).
CATCH_UP_S = 1.0


class Pace:
    """A reply's timing: time to first token, the delay between tokens, and their jitter.

    Tokens keep to a schedule, one delay after the previous token was due, so the time spent
    writing chunks does not add up over a long stream, and a token held up by the server (a busy
    moment, a pause for garbage collection) goes out at once, its successors back on time: the
    model made them on time. After a stall (``resume``) or a hold-up past ``CATCH_UP_S`` the
    schedule starts again rather than bursting to catch up.
    """

    __slots__ = ("jitter", "next_token_at", "token_delay", "ttft")

    def __init__(self, ttft: float = 0.0, token_delay: float = 0.0, jitter: float = 0.0) -> None:
        self.ttft, self.token_delay, self.jitter = ttft, token_delay, jitter
        self.next_token_at = -math.inf  # no token yet: the first one starts the schedule

    def _jittered(self, seconds: float) -> float:
        if not self.jitter or not seconds:
            return seconds
        return seconds * (1 + self.jitter * (2 * random.random() - 1))

    def first_token(self) -> float:
        """Seconds to wait before a reply's first byte."""
        return self._jittered(self.ttft)

    def next_token(self) -> float:
        """Seconds to wait before the next token (0 when tokens are not paced)."""
        if not self.token_delay:
            return 0.0
        now = time.monotonic()
        due = self.next_token_at if now - self.next_token_at <= max(self.token_delay, CATCH_UP_S) else now
        self.next_token_at = due + self._jittered(self.token_delay)
        return self.next_token_at - now

    def resume(self) -> None:
        """After a stall: the next token waits a whole delay again, none are sent to catch up."""
        self.next_token_at = -math.inf

    def whole_response(self, tokens: int) -> float:
        """A non-streamed answer arrives when a stream of it would have ended: its first token after
        the time to it, each later one a delay after the one before."""
        return self._jittered(self.ttft) + max(0, tokens - 1) * self._jittered(self.token_delay)


class Schedule(Pace):
    """A background response's tokens read back: each when its job made it, on the wall clock the
    workers share, so a stream resumed part-way ends when the stored response does. ``made`` counts
    the tokens drawn so far, sent or skipped; the events after a token follow it at once."""

    __slots__ = ("clock", "made", "starts")

    def __init__(self, starts: float, token_delay: float, clock: Callable[[], float] = time.time) -> None:
        super().__init__(max(0.0, starts - clock()), token_delay)
        self.starts, self.made, self.clock = starts, 0, clock

    def _due(self) -> float:
        return max(0.0, self.starts + max(self.made - 1, 0) * self.token_delay - self.clock())

    def first_token(self) -> float:
        return self._due()

    def next_token(self) -> float:
        return self._due()

    def resume(self) -> None:
        """After a stall the schedule holds: the tokens it made due go at once."""


def read_pace(request: Request, settings: config.Settings) -> Pace:
    """The request's pace: its ``X-Mokku-*`` headers, else the server's settings."""
    return Pace(
        _header_ms(request, LATENCY_HEADER, settings.ttft_ms / 1000),
        _token_delay(request, settings.token_ms / 1000),
        _header_number(request, JITTER_HEADER, settings.jitter, 1.0),
    )


def _header_number(request: Request, name: str, default: float, maximum: float) -> float:
    raw = request.header(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= maximum or math.isnan(value):
        raise errors.invalid_request(
            f"The {name} header must be a number from 0 to {maximum:g}, got {raw!r}.", name
        )
    return value


def _header_ms(request: Request, name: str, default: float) -> float:
    return _header_number(request, name, default * 1000, MAX_TOKEN_S * 1000) / 1000


def _token_delay(request: Request, default: float) -> float:
    if request.header(RATE_HEADER):
        rate = _header_number(request, RATE_HEADER, 0, 1_000_000)
        if rate < 1 / MAX_TOKEN_S:  # the same ceiling as X-Mokku-Token-Ms: 600 s a token
            raise errors.invalid_request(
                f"The {RATE_HEADER} header must be at least {1 / MAX_TOKEN_S:.4g} (a token every "
                f"{MAX_TOKEN_S:g} s), got {request.header(RATE_HEADER)!r}.",
                RATE_HEADER,
            )
        return 1 / rate
    return _header_ms(request, TOKEN_HEADER, default)
