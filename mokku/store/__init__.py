"""Where what every worker and replica must share lives (``mokku.store.base``): the embedded state
file by default, Redis with ``MOKKU_STATE=redis://...``."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Tuple, Type

from mokku import config
from mokku.control.objects import Objects
from mokku.store.base import BucketStore, CounterStore, JournalStore, RulesStore
from mokku.store.sqlite import SqliteBuckets, SqliteCounters, SqliteJournal, SqliteRules


class Stores(NamedTuple):
    journal: JournalStore
    rules: RulesStore
    buckets: BucketStore
    ready: Callable[[], None]  # raises when the shared store cannot be used (``GET /readyz``)
    objects: Any  # stored responses and conversations: ``Objects`` or ``RedisObjects``
    counters: CounterStore  # cassette sequence counters


def shown(state: str) -> str:
    """The start-up line saying where ``MOKKU_STATE`` puts the state: a Redis URL without its password."""
    url = config.load({"MOKKU_STATE": state}).state_url
    if url:
        from mokku.store import redis

        return f"state: {redis.describe(url)}"
    return f"state file: {state}"


def open_stores(settings: config.Settings, state_path: str) -> Stores:
    """The server's stores; nothing is touched until first use (a worker boots whatever state they are in)."""
    if settings.state_url:
        from mokku.store import redis
        from mokku.store.redis_objects import RedisObjects

        shared = redis.Redis(settings.state_url, settings.state_prefix)
        return Stores(
            redis.RedisJournal(shared, settings.journal_size, settings.journal_bytes),
            redis.RedisRules(shared),
            redis.RedisBuckets(shared),
            shared.check,
            RedisObjects(shared),
            redis.RedisCounters(shared),
        )
    return Stores(
        SqliteJournal(state_path, settings.journal_size, settings.journal_bytes),
        # A state file named in the settings may be shared by other processes; the default one is ours.
        SqliteRules(state_path, shared=bool(settings.state_path)),
        SqliteBuckets(state_path),
        lambda: None,  # the state file: a worker that can run can use it, or says so per request
        Objects(state_path),
        SqliteCounters(state_path),
    )


def check(settings: config.Settings) -> None:
    """Fail fast at start when the shared store cannot be reached (``config.ConfigError``)."""
    if not settings.state_url:
        return
    from mokku.store import redis

    failures: Tuple[Type[BaseException], ...] = (RuntimeError, *redis.ERRORS)
    try:
        redis.Redis(settings.state_url, settings.state_prefix).check()
    except failures as exc:
        raise config.ConfigError(
            f"MOKKU_STATE: {redis.describe(settings.state_url)} cannot be used: {exc}"
        ) from None
