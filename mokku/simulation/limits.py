"""Real limits, opt-in: API keys (``MOKKU_API_KEY``), rate limits (``MOKKU_RPM``/``MOKKU_TPM``)
and context windows (``MOKKU_CONTEXT_WINDOW``).

Rate limits are token buckets per API key (per client address when there is no key), refilled over
``MOKKU_RATE_WINDOW`` seconds (60), kept in the server's store: every worker, and with Redis every
replica, takes from the same bucket. A request costs one request and, on the
token bucket, an estimate made before it runs as the real API makes it: the prompt (its body's
length / 4) plus the completion tokens it asks for.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from mokku import config, errors
from mokku.anthropic import claude
from mokku.api.models import SNAPSHOTS
from mokku.control import statedb
from mokku.errors import invalid_api_key, rate_limited
from mokku.server.dialect import OPENAI, Limit
from mokku.server.http import Request
from mokku.store.base import BucketStore

# (context window, most output tokens) of the catalogue's models; others get DEFAULT_WINDOW.
MODEL_WINDOWS: Dict[str, Tuple[int, int]] = {
    **{
        model: (1_050_000, 128_000)
        for model in (
            "gpt-6.2-astra",
            "gpt-6.2-sol",
            "gpt-6.1-terra",
            "gpt-6.1-sol",
            "gpt-6-astra",
            "gpt-6-sol",
            "gpt-6-luna",
            "gpt-5.6-sol",
            "gpt-5.6-terra",
            "gpt-5.6-luna",
        )
    },
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
# Any ``claude-*`` model before 4.6 (from 4.6 on: ``claude.WIDE_WINDOW``), but for the output of these:
CLAUDE_WINDOW = (200_000, 64_000)
CLAUDE_OUTPUT: Dict[str, int] = {
    "claude-opus-4-1-20250805": 32_000,
    "claude-opus-4-1": 32_000,
    "claude-opus-4-20250514": 32_000,
    "claude-opus-4-0": 32_000,
    "claude-3-5-haiku-20241022": 8_192,
    "claude-3-5-haiku-latest": 8_192,
}
GEMINI_WINDOW = (1_048_576, 65_536)  # any ``gemini-*`` model (Gemini 2.5's input and output limits)
_CONTEXT = re.compile(
    r"maximum context length is (\d+) tokens.*?\((\d+) in (?:your prompt|the messages)[;,] (\d+)"
)


# A dated snapshot has its alias's window: ``gpt-4o-2024-08-06`` is ``gpt-4o``.
_ALIASES = {dated: alias for alias, dated in SNAPSHOTS.items()}


def known_window(model: str) -> Tuple[int, int]:
    found = MODEL_WINDOWS.get(model) or MODEL_WINDOWS.get(_ALIASES.get(model, ""))
    if found is not None:
        return found
    if model.startswith("claude-"):
        return claude.window(model) or (CLAUDE_WINDOW[0], CLAUDE_OUTPUT.get(model, CLAUDE_WINDOW[1]))
    return GEMINI_WINDOW if model.startswith(("gemini-", "models/gemini-")) else DEFAULT_WINDOW


def window(settings: config.Settings, model: str) -> Optional[Tuple[int, int]]:
    """(context window, most output tokens) for ``model``, or None when windows are off."""
    if not settings.context_window:
        return None
    if settings.context_window == "real":
        return known_window(model)
    size = int(settings.context_window)
    return size, size


def output_room(settings: config.Settings, model: str, prompt_tokens: int) -> Optional[int]:
    """The most tokens an answer that asks for no limit may have, when windows are on: the model's
    output limit, or what its window leaves past the prompt if less (None: no bound)."""
    limits = window(settings, model)
    if limits is None:
        return None
    size, most_output = limits
    return max(1, min(most_output or size, size - prompt_tokens))


def check_context(
    request: Request,
    model: str,
    prompt_tokens: int,
    completion_tokens: Optional[int],
    forced: bool,
    wording: str = "messages",
    prompt_only: bool = False,
) -> None:
    """400 ``context_length_exceeded`` when prompt plus completion overflow the model's window.

    ``forced`` (the ``context_length`` fault) answers it whatever the sizes, with numbers that
    overflow the window just as a real oversized request would. ``wording`` is the field that holds
    the prompt, which the error names and whose endpoint it words as: ``prompt`` (legacy completions,
    embeddings), ``input`` (Responses, whose error gives no numbers), else chat's. ``prompt_only``
    (embeddings): nothing is completed, so a forced overflow is all the prompt's.
    """
    limits = window(request.settings, model) or (known_window(model) if forced else None)
    if limits is None:
        return
    size, most_output = limits
    asked = completion_tokens or 0
    if not forced:
        if most_output and asked > most_output:
            body = request.json()
            names = ("max_output_tokens", "max_completion_tokens", "max_tokens")
            field = next((name for name in names if body.get(name)), "max_tokens")
            raise errors.invalid_request(
                f"{field} is too large: {asked}. This model supports at most {most_output} completion tokens, "
                f"whereas you provided {asked}.",
                field,
                "invalid_value",
            )
        if prompt_tokens + asked <= size:
            return
    elif prompt_only:
        prompt_tokens = max(prompt_tokens, size + 1)
    else:
        asked = max(asked, size - prompt_tokens + 1)
    total = prompt_tokens + asked
    if wording == "input":
        message = (
            "Your input exceeds the context window of this model. Please adjust your input and try again."
        )
    elif wording == "prompt":
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
    raise errors.invalid_request(message, wording, "context_length_exceeded")


class Access:
    """API-key checks and per-key rate limits for the API's routes; ``clock`` gives the buckets' time
    in seconds (the same in every process that shares them), ``buckets`` where they live."""

    def __init__(
        self,
        settings: config.Settings,
        clock: Callable[[], float] = time.time,
        buckets: Optional[BucketStore] = None,
    ) -> None:
        self._keys = [key.encode() for key in settings.api_keys]
        self._rpm, self._tpm = settings.rpm, settings.tpm
        self._window = float(settings.rate_window)
        self._clock = clock
        self._buckets = buckets

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
        # A digest, not the key: the state keeps no secret, and a bucket's size is fixed.
        who = key or request.environ.get("REMOTE_ADDR", "")
        return self._take(
            request, hashlib.blake2b(who.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
        )

    def _take(self, request: Request, who: str) -> List[Tuple[str, str]]:
        tokens = _estimated_tokens(request) if self._tpm else 0
        if tokens > self._tpm > 0:
            raise errors.request_too_large(_model(request), self._tpm, tokens)
        wants = [
            (kind, capacity, float(amount))
            for kind, capacity, amount in (("requests", self._rpm, 1), ("tokens", self._tpm, tokens))
            if capacity
        ]
        assert self._buckets is not None, "rate limits need a bucket store"
        try:
            refused, left = self._buckets.take(who, wants, self._clock(), self._window)
        except statedb.STATE_ERRORS as exc:
            raise statedb.unavailable(self._buckets.name, exc) from None
        levels = [
            Limit(kind, capacity, max(0, math.floor(level)), reset) for kind, capacity, level, reset in left
        ]
        if refused is not None:
            kind, capacity, amount, wait = refused
            used = capacity - (amount - wait * capacity / self._window)  # the level was amount short by wait
            retry_ms = max(1, math.ceil(wait * 1000))
            # The other limit's headers too, as they stand: the real API's 429 sends every limit's.
            others = OPENAI.rate_limit_headers([limit for limit in levels if limit.kind != kind])
            raise rate_limited(
                _model(request), kind, capacity, max(0, round(used)), int(amount), retry_ms, others
            )
        return request.dialect.rate_limit_headers(levels)

    @property
    def buckets(self) -> int:
        """How many buckets are kept."""
        return self._buckets.count() if self._buckets is not None else 0


def _model(request: Request) -> str:
    return str(_body(request).get("model", "this model"))


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
    # Every choice may use them all: n (best_of for legacy completions) times over, as the API counts.
    choices = [body.get(name) for name in ("n", "best_of")]
    times = max([n for n in choices if isinstance(n, int) and not isinstance(n, bool) and n > 0] or [1])
    prompt = math.ceil(int(request.environ.get("CONTENT_LENGTH") or 0) / 4)
    return prompt + max(0, completion) * times


def context_numbers(error: errors.APIError) -> Optional[Tuple[int, int, int]]:
    """(window, prompt tokens, completion tokens asked) of a ``context_length_exceeded`` error, for
    the other dialects to word it as their providers do."""
    found = _CONTEXT.search(error.message) if error.code == "context_length_exceeded" else None
    return None if found is None else (int(found[1]), int(found[2]), int(found[3]))
