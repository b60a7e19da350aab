"""Rate limits, exactly: the token buckets' arithmetic on a clock that moves only when told.

Sixty requests per minute refill one request a second, and 600 tokens per minute ten tokens a
second, so every expected number below is exact.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Optional

import pytest

from mokku import config, errors
from mokku.server.http import Request
from mokku.simulation import limits
from mokku.store.sqlite import MAX_BUCKETS, SqliteBuckets

from .clock import FakeClock

SETTINGS = config.load({})


def access(clock: FakeClock, buckets: int = MAX_BUCKETS, **env: str) -> limits.Access:
    """Buckets in a state file of their own (the embedded store), on the test's clock."""
    store = SqliteBuckets(os.path.join(tempfile.mkdtemp(), "state.sqlite3"), buckets)
    return limits.Access(
        config.load({f"MOKKU_{name.upper()}": value for name, value in env.items()}), clock, store
    )


def get(key: Optional[str] = "sk-a", address: str = "127.0.0.1") -> Request:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/v1/models",
        "REMOTE_ADDR": address,
        "wsgi.input": io.BytesIO(b""),
    }
    if key:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return Request(environ, SETTINGS)


def chat(prompt_tokens: int, max_tokens: int, key: str = "sk-a", **extra: Any) -> Request:
    """A chat request whose estimate is ``prompt_tokens + max_tokens`` (times ``n``): its body is
    exactly ``4 * prompt_tokens`` bytes long (JSON padded with spaces)."""
    body = json.dumps(
        {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": max_tokens,
            **extra,
        }
    ).encode()
    assert len(body) <= 4 * prompt_tokens
    body += b" " * (4 * prompt_tokens - len(body))
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/v1/chat/completions",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_AUTHORIZATION": f"Bearer {key}",
        "wsgi.input": io.BytesIO(body),
    }
    return Request(environ, SETTINGS)


def served(limiter: limits.Access, request: Request) -> Dict[str, str]:
    return dict(limiter.check(request))


def refused(limiter: limits.Access, request: Request) -> errors.APIError:
    with pytest.raises(errors.APIError) as caught:
        limiter.check(request)
    assert caught.value.status == 429 and caught.value.code == "rate_limit_exceeded"
    return caught.value


def test_a_full_bucket_serves_its_capacity_at_once_then_refuses() -> None:
    limiter = access(FakeClock(), rpm="60")
    first = served(limiter, get())
    assert first == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "1s",
    }
    remaining = [served(limiter, get())["x-ratelimit-remaining-requests"] for _ in range(59)]
    assert remaining == [str(n) for n in range(58, -1, -1)]
    error = refused(limiter, get())
    assert error.type == "requests"
    assert dict(error.headers) == {
        "retry-after": "1",
        "retry-after-ms": "1000",
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1s",
    }
    assert error.message.startswith("Rate limit reached for this model in organization org-mokku on requests")
    assert "Limit 60, Used 60, Requested 1. Please try again in 1s." in error.message


def test_the_bucket_refills_continuously() -> None:
    clock = FakeClock()
    limiter = access(clock, rpm="60")
    for _ in range(60):
        served(limiter, get())
    clock.advance(0.25)
    error = refused(limiter, get())
    assert dict(error.headers)["retry-after-ms"] == "750"
    assert dict(error.headers)["retry-after"] == "1"  # whole seconds, rounded up
    assert dict(error.headers)["x-ratelimit-reset-requests"] == "750ms"
    assert "Please try again in 750ms." in error.message
    clock.advance(0.5)
    assert dict(refused(limiter, get()).headers)["retry-after-ms"] == "250"
    clock.advance(0.25)
    assert served(limiter, get()) == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1m0s",
    }
    assert dict(refused(limiter, get()).headers)["retry-after-ms"] == "1000"
    clock.advance(2.5)  # two and a half requests' worth
    assert served(limiter, get())["x-ratelimit-remaining-requests"] == "1"  # 1.5 left, shown whole
    last = served(limiter, get())
    assert last["x-ratelimit-remaining-requests"] == "0"
    assert last["x-ratelimit-reset-requests"] == "59.5s"
    assert dict(refused(limiter, get()).headers)["retry-after-ms"] == "500"


def test_an_idle_bucket_fills_up_to_its_capacity_and_no_further() -> None:
    clock = FakeClock()
    limiter = access(clock, rpm="60")
    served(limiter, get())
    clock.advance(3600)
    assert served(limiter, get())["x-ratelimit-remaining-requests"] == "59"


def test_retry_after_for_a_slower_bucket() -> None:
    clock = FakeClock()
    limiter = access(clock, rpm="3")  # one request every 20 s
    assert [served(limiter, get())["x-ratelimit-reset-requests"] for _ in range(3)] == ["20s", "40s", "1m0s"]
    headers = dict(refused(limiter, get()).headers)
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("20", "20000")
    clock.advance(10)
    headers = dict(refused(limiter, get()).headers)
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("10", "10000")
    clock.advance(10)
    assert served(limiter, get())["x-ratelimit-remaining-requests"] == "0"


def test_tokens_per_minute_take_the_estimate() -> None:
    clock = FakeClock()
    limiter = access(clock, tpm="600")
    assert served(limiter, chat(100, 200)) == {
        "x-ratelimit-limit-tokens": "600",
        "x-ratelimit-remaining-tokens": "300",
        "x-ratelimit-reset-tokens": "30s",
    }
    assert served(limiter, chat(100, 200))["x-ratelimit-reset-tokens"] == "1m0s"
    error = refused(limiter, chat(100, 200))
    assert error.type == "tokens"
    assert dict(error.headers) == {
        "retry-after": "30",
        "retry-after-ms": "30000",
        "x-ratelimit-limit-tokens": "600",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "30s",
    }
    assert error.message.startswith(
        "Rate limit reached for gpt-4o in organization org-mokku on tokens per min"
    )
    assert "Limit 600, Used 600, Requested 300. Please try again in 30s." in error.message
    clock.advance(15)
    assert dict(refused(limiter, chat(100, 200)).headers)["retry-after-ms"] == "15000"
    assert served(limiter, chat(100, 50))["x-ratelimit-remaining-tokens"] == "0"  # 150 was there
    clock.advance(30)
    assert served(limiter, chat(100, 200))["x-ratelimit-remaining-tokens"] == "0"


def test_a_refused_request_takes_nothing_from_either_bucket() -> None:
    limiter = access(FakeClock(), rpm="60", tpm="600")
    served(limiter, chat(100, 200))
    assert served(limiter, chat(100, 200))["x-ratelimit-remaining-requests"] == "58"
    assert refused(limiter, chat(25, 0)).type == "tokens"
    headers = served(limiter, get())  # no body: no tokens
    assert headers["x-ratelimit-remaining-requests"] == "57"
    assert headers["x-ratelimit-remaining-tokens"] == "0"


@pytest.mark.parametrize("where", ["sqlite", "redis"])
def test_a_request_whose_clock_read_came_late_does_not_refill_the_bucket_twice(
    where: str, request: Any
) -> None:
    """Requests read the clock, then wait for the store's lock: one that read it before another took
    its tokens must not move the bucket back in time, or the refill since is handed out again (800
    requests at once against 300 a minute let 693 through)."""
    if where == "redis":
        from mokku.store import redis

        server = request.getfixturevalue("redis_server").env()
        store: Any = redis.RedisBuckets(redis.Redis(server["MOKKU_STATE"], server["MOKKU_STATE_PREFIX"]))
    else:
        store = SqliteBuckets(os.path.join(tempfile.mkdtemp(), "state.sqlite3"), MAX_BUCKETS)
    want = [("requests", 10, 1.0)]  # 10 a window of 10 s: one a second
    start = 1_000_000.0
    for _ in range(10):
        assert store.take("sk-late", want, start, 10.0)[0] is None
    for _ in range(5):  # five seconds on, five refilled and taken
        assert store.take("sk-late", want, start + 5, 10.0)[0] is None
    assert store.take("sk-late", want, start + 1, 10.0)[0] is not None  # read its clock at 1 s
    assert store.take("sk-late", want, start + 5, 10.0)[0] is not None  # nothing new at 5 s


@pytest.mark.parametrize("where", ["sqlite", "redis"])
def test_a_429_carries_the_other_limits_headers_as_they_stand(where: str, request: Any) -> None:
    """The real API's 429 sends both limits' ``x-ratelimit-*``: the refused one's, then the other's,
    untaken, in either store."""
    clock = FakeClock()
    env = {"MOKKU_RPM": "60", "MOKKU_TPM": "600"}
    if where == "redis":
        from mokku.store import redis

        server = request.getfixturevalue("redis_server").env()
        store = redis.RedisBuckets(redis.Redis(server["MOKKU_STATE"], server["MOKKU_STATE_PREFIX"]))
        limiter = limits.Access(config.load(env), clock, store)
    else:
        limiter = access(clock, rpm="60", tpm="600")
    served(limiter, chat(100, 200))
    served(limiter, chat(100, 200))
    error = refused(limiter, chat(100, 200))
    assert error.type == "tokens"
    assert list(error.headers) == [
        ("retry-after", "30"),
        ("retry-after-ms", "30000"),
        ("x-ratelimit-limit-tokens", "600"),
        ("x-ratelimit-remaining-tokens", "0"),
        ("x-ratelimit-reset-tokens", "30s"),
        ("x-ratelimit-limit-requests", "60"),
        ("x-ratelimit-remaining-requests", "58"),
        ("x-ratelimit-reset-requests", "2s"),
    ]
    clock.advance(0.5)
    for _ in range(58):
        served(limiter, get())
    error = refused(limiter, get())
    assert error.type == "requests"  # with the tokens refilled by 0.5 s's worth
    assert dict(error.headers)["x-ratelimit-remaining-tokens"] == "5"
    assert dict(error.headers)["x-ratelimit-reset-tokens"] == "59.5s"


def test_buckets_are_per_key_else_per_client_address() -> None:
    limiter = access(FakeClock(), rpm="1")
    served(limiter, get("sk-a"))
    refused(limiter, get("sk-a"))
    served(limiter, get("sk-b"))
    served(limiter, get(None, "10.0.0.1"))
    refused(limiter, get(None, "10.0.0.1"))
    served(limiter, get(None, "10.0.0.2"))


def test_twenty_threads_take_exactly_the_capacity() -> None:
    limiter = access(FakeClock(), rpm="20")

    def call(_: int) -> int:
        try:
            limiter.check(get("sk-shared"))
            return 200
        except errors.APIError as error:
            return error.status

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(call, range(60)))
    assert (statuses.count(200), statuses.count(429)) == (20, 40)


def test_no_limits_no_headers() -> None:
    limiter = access(FakeClock())
    assert not limiter.active


def test_the_bucket_table_is_bounded() -> None:
    """Ever new keys cannot grow the table without end: refilled buckets go first, then the oldest."""
    clock = FakeClock()
    limiter = access(clock, buckets=100, rpm="60")
    for number in range(100):
        limiter.check(get(f"sk-{number}"))
    assert limiter.buckets == 100
    clock.advance(1.5)  # each bucket has refilled the one request it gave
    limiter.check(get("sk-new"))
    assert limiter.buckets == 1
    for number in range(250):
        limiter.check(get(f"sk-busy-{number}"))  # none refills: the older half is dropped
    assert limiter.buckets <= 100
    # The newest keys keep their bucket, and so their limit: one request taken before, one now.
    assert dict(limiter.check(get("sk-busy-249")))["x-ratelimit-remaining-requests"] == "58"


def test_a_refusal_says_how_much_of_the_limit_is_used() -> None:
    clock = FakeClock()
    limiter = access(clock, tpm="600")
    served(limiter, chat(100, 150))  # 250 used
    error = refused(limiter, chat(100, 300))
    assert "Limit 600, Used 250, Requested 400. Please try again in 5s." in error.message


def test_a_request_larger_than_the_whole_limit_is_too_large_not_told_to_wait() -> None:
    clock = FakeClock()
    limiter = access(clock, tpm="600")
    error = refused(limiter, chat(100, 5_000))
    assert (error.status, error.type, error.code) == (429, "tokens", "rate_limit_exceeded")
    assert error.message == (
        "Request too large for gpt-4o in organization org-mokku on tokens per min (TPM): Limit 600, "
        "Requested 5100. The input or output tokens must be reduced in order to run successfully. "
        "Visit https://platform.openai.com/account/rate-limits to learn more."
    )
    assert dict(error.headers) == {"x-ratelimit-limit-tokens": "600"}
    assert served(limiter, chat(100, 200))["x-ratelimit-remaining-tokens"] == "300"  # it took nothing


def test_every_choice_asked_for_counts_its_max_tokens() -> None:
    limiter = access(FakeClock(), tpm="600")
    assert served(limiter, chat(100, 100, n=3))["x-ratelimit-remaining-tokens"] == "200"  # 100 + 3 x 100
    assert "Requested 700." in refused(limiter, chat(100, 200, n=3)).message
    error = refused(access(FakeClock(), tpm="600"), chat(100, 100, n=10))
    assert error.message.startswith("Request too large") and "Requested 1100." in error.message


def test_the_state_keeps_a_digest_of_the_key_not_the_key() -> None:
    """The raw key was the bucket's name: a secret in the state file, 136 KB for a 60 KB key."""
    clock = FakeClock()
    limiter = access(clock, rpm="60")
    secret = "sk-secret-" + "k" * 60_000
    served(limiter, chat(100, 1, key=secret))
    store = limiter._buckets
    assert isinstance(store, SqliteBuckets)
    with store._connections.using() as db:
        names = [row[0] for row in db.execute("SELECT who FROM buckets")]
    assert len(names) == 1 and len(names[0]) == 32 and "secret" not in names[0]


def test_the_buckets_in_redis_are_bounded_too(redis_server: Any) -> None:
    """In Redis a bucket expired once refilled, but ever new keys within a window grew without end."""
    from mokku.store import redis

    env = redis_server.env()
    store = redis.RedisBuckets(redis.Redis(env["MOKKU_STATE"], env["MOKKU_STATE_PREFIX"]), limit=100)
    clock = FakeClock()
    limiter = limits.Access(config.load({"MOKKU_RPM": "60"}), clock, store)
    for number in range(100):
        limiter.check(get(f"sk-{number}"))
    assert limiter.buckets == 100
    clock.advance(1.5)
    limiter.check(get("sk-new"))
    for number in range(250):
        limiter.check(get(f"sk-busy-{number}"))
    assert limiter.buckets <= 100
    assert dict(limiter.check(get("sk-busy-249")))["x-ratelimit-remaining-requests"] == "58"


def _a_refused_key_keeps_its_limit(limiter: limits.Access, clock: FakeClock) -> None:
    for _ in range(3):
        limiter.check(get("sk-steady"))
    for number in range(250):  # ever new keys, while the exhausted one keeps asking
        limiter.check(get(f"sk-new-{number}"))
        if number % 10 == 0:
            clock.advance(0.01)
            refused(limiter, get("sk-steady"))
    assert limiter.buckets <= 100


def test_a_refused_key_in_use_keeps_its_limit_when_the_table_is_full() -> None:
    """It was written only when it took: among the older half dropped, its limit began again."""
    clock = FakeClock()
    _a_refused_key_keeps_its_limit(access(clock, buckets=100, rpm="3"), clock)


def test_a_refused_key_in_use_keeps_its_limit_in_redis(redis_server: Any) -> None:
    from mokku.store import redis

    env = redis_server.env()
    store = redis.RedisBuckets(redis.Redis(env["MOKKU_STATE"], env["MOKKU_STATE_PREFIX"]), limit=100)
    clock = FakeClock()
    _a_refused_key_keeps_its_limit(limits.Access(config.load({"MOKKU_RPM": "3"}), clock, store), clock)
