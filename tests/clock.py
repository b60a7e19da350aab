"""A clock that moves only when a test moves it, for code that takes a clock."""

from __future__ import annotations


class FakeClock:
    """Seconds, like ``time.monotonic``: call it for the time, ``advance`` it to let time pass."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
