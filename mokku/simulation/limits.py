"""Real limits, opt-in: API keys (``MOKKU_API_KEY``), rate limits (``MOKKU_RPM``/``MOKKU_TPM``)
and context windows (``MOKKU_CONTEXT_WINDOW``).

Rate limits are token buckets per API key (per client address when there is no key), shared by
the threads of one worker process; with several gunicorn workers each keeps its own buckets, so
exact global limits need one worker with many threads. A request costs one request and, on the
token bucket, an estimate made before it runs as the real API makes it: the prompt (its body's
length / 4) plus the completion tokens it asks for.
"""

from __future__ import annotations

import hmac
import math
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from mokku import config, errors
from mokku.errors import invalid_api_key, rate_limited
from mokku.server.dialect import Limit
from mokku.server.http import Request

# (context window, most output tokens) of the catalogue's models; others get DEFAULT_WINDOW.
MODEL_WINDOWS: Dict[str, Tuple[int, int]] = {
    "gpt-5.5": (400_000, 128_000),
    "gpt-5.4": (400_000, 128_000),
    "gpt-5.4-mini": (400_000, 128_000),
    "gpt-5.4-nano": (400_000, 128_000),
    "gpt-5.2": (400_000, 128_000),
    "gpt-5.1": (400_000, 128_000),
    "gpt-5": (400_000, 128_000),
    "gpt-5-mini": (400_000, 128_000),
    "gpt-5-nano": (400_000, 128_000),
    "gpt-4.1": (1_047_576, 32_768),
    "gpt-4.1-mini": (1_047_576, 32_768),
    "gpt-4.1-nano": (1_047_576, 32_768),
    "o4-mini": (200_000, 100_000),
    "o3": (200_000, 100_000),
    "o3-mini": (200_000, 100_000),
    "o1": (200_000, 100_000),
    "gpt-4o": (128_000, 16_384),
    "gpt-4o-mini": (128_000, 16_384),
    "gpt-4-turbo": (128_000, 4_096),
    "gpt-4": (8_192, 8_192),
    "gpt-3.5-turbo": (16_385, 4_096),
    "gpt-3.5-turbo-instruct": (4_096, 4_096),
    "davinci-002": (16_384, 16_384),
    "babbage-002": (16_384, 16_384),
    "text-embedding-3-small": (8_192, 0),
    "text-embedding-3-large": (8_192, 0),
    "text-embedding-ada-002": (8_192, 0),
}
DEFAULT_WINDOW = (128_000, 16_384)
CLAUDE_WINDOW = (200_000, 64_000)  # any ``claude-*`` model


def known_window(model: str) -> Tuple[int, int]:
    found = MODEL_WINDOWS.get(model)
    if found is not None:
        return found
    return CLAUDE_WINDOW if model.startswith("claude-") else DEFAULT_WINDOW


def window(settings: config.Settings, model: str) -> Optional[Tuple[int, int]]:
    """(context window, most output tokens) for ``model``, or None when windows are off."""
    if not settings.context_window:
        return None
    if settings.context_window == "real":
        return known_window(model)
    size = int(settings.context_window)
    return size, size


def check_context(
    request: Request,
    model: str,
    prompt_tokens: int,
    completion_tokens: Optional[int],
    forced: bool,
    legacy: bool = False,
) -> None:
    """400 ``context_length_exceeded`` when prompt plus completion overflow the model's window.

    ``forced`` (the ``context_length`` fault) answers it whatever the sizes, with numbers that
    overflow the window just as a real oversized request would.
    """
    limits = window(request.settings, model) or (known_window(model) if forced else None)
    if limits is None:
        return
    size, most_output = limits
    asked = completion_tokens or 0
    if not forced:
        if most_output and asked > most_output:
            field = "max_completion_tokens" if request.json().get("max_completion_tokens") else "max_tokens"
            raise errors.invalid_request(
                f"{field} is too large: {asked}. This model supports at most {most_output} completion tokens, "
                f"whereas you provided {asked}.",
                field,
                "invalid_value",
            )
        if prompt_tokens + asked <= size:
            return
    else:
        asked = max(asked, size - prompt_tokens + 1)
    total = prompt_tokens + asked
    if legacy:
        message = (
            f"This model's maximum context length is {size} tokens, however you requested {total} tokens "
            f"({prompt_tokens} in your prompt; {asked} for the completion). "
            "Please reduce your prompt; or completion length."
        )
    else:
        message = (
            f"This model's maximum context length is {size} tokens. However, you requested {total} tokens "
            f"({prompt_tokens} in the messages, {asked} in the completion). "
            "Please reduce the length of the messages or completion."
        )
    raise errors.invalid_request(message, "messages" if not legacy else "prompt", "context_length_exceeded")


class _Bucket:
    """A token bucket: ``capacity`` per minute, refilled continuously."""

    __slots__ = ("capacity", "level", "updated")

    def __init__(self, capacity: int, now: float) -> None:
        self.capacity = capacity
        self.level = float(capacity)
        self.updated = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.capacity / 60)
        self.updated = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` is available."""
        return max(0.0, (amount - self.level) * 60 / self.capacity)

    def reset_in(self) -> float:
        """Seconds until the bucket is full again."""
        return (self.capacity - self.level) * 60 / self.capacity

    def full_at(self, now: float) -> bool:
        """Whether the bucket has refilled by ``now``: then it is the same as a new one."""
        return now - self.updated >= self.reset_in()


# Buckets kept at most (a key has one per limit): past it, full buckets are dropped, then the ones
# used longest ago, so that clients sending ever new keys cannot grow the table without end.
MAX_BUCKETS = 10_000


class Access:
    """API-key checks and per-key rate limits for the ``/v1`` endpoints; ``clock`` gives the
    buckets' time in seconds."""

    def __init__(self, settings: config.Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self._keys = [key.encode() for key in settings.api_keys]
        self._rpm, self._tpm = settings.rpm, settings.tpm
        self._clock = clock
        self._buckets: Dict[Tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return bool(self._keys or self._rpm or self._tpm)

    def check(self, request: Request) -> List[Tuple[str, str]]:
        """Raise 401 or 429, or return the rate-limit headers for this response (in the request's dialect)."""
        key = request.dialect.api_key(request)
        if self._keys:
            sent = key.encode()
            # Compare against every key, in constant time, so timing reveals nothing.
            matched = False
            for known in self._keys:
                matched |= hmac.compare_digest(sent, known)
            if not matched:
                raise invalid_api_key(key)
        if not (self._rpm or self._tpm):
            return []
        who = key or request.environ.get("REMOTE_ADDR", "")
        return self._take(request, who)

    def _take(self, request: Request, who: str) -> List[Tuple[str, str]]:
        tokens = _estimated_tokens(request) if self._tpm else 0
        now = self._clock()
        with self._lock:
            buckets = []
            for kind, capacity, amount in (("requests", self._rpm, 1), ("tokens", self._tpm, tokens)):
                if capacity:
                    bucket = self._buckets.get((who, kind))
                    if bucket is None:
                        if len(self._buckets) >= MAX_BUCKETS:
                            self._prune(now)
                        bucket = self._buckets[(who, kind)] = _Bucket(capacity, now)
                    bucket.refill(now)
                    buckets.append((kind, bucket, amount))
            for kind, bucket, amount in buckets:
                if bucket.level < amount:
                    wait_ms = max(1, math.ceil(bucket.wait_for(amount) * 1000))
                    model = str(_body(request).get("model", "this model"))
                    raise rate_limited(model, kind, bucket.capacity, amount, wait_ms)
            left = []
            for kind, bucket, amount in buckets:
                bucket.level -= amount
                left.append(Limit(kind, bucket.capacity, max(0, math.floor(bucket.level)), bucket.reset_in()))
        return request.dialect.rate_limit_headers(left)

    def _prune(self, now: float) -> None:
        """Drop the buckets that have refilled; if that is not enough, the older half."""
        self._buckets = {key: b for key, b in self._buckets.items() if not b.full_at(now)}
        if len(self._buckets) >= MAX_BUCKETS:
            newest = sorted(self._buckets.items(), key=lambda item: item[1].updated)[MAX_BUCKETS // 2 :]
            self._buckets = dict(newest)

    @property
    def buckets(self) -> int:
        """How many buckets are kept."""
        return len(self._buckets)


def _body(request: Request) -> Dict[str, Any]:
    if request.method != "POST":
        return {}
    try:
        return request.json()
    except errors.APIError:
        return {}


def _estimated_tokens(request: Request) -> int:
    body = _body(request)
    if not body:
        return 0
    asked = [body.get(name) for name in ("max_completion_tokens", "max_tokens", "max_output_tokens")]
    completion = next((n for n in asked if isinstance(n, int) and not isinstance(n, bool)), 0)
    prompt = math.ceil(int(request.environ.get("CONTENT_LENGTH") or 0) / 4)
    return prompt + max(0, completion)
