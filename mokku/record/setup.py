"""The proxy a server's settings ask for (``MOKKU_MODE``)."""

from __future__ import annotations

from mokku import config
from mokku.record.cassettes import Cassettes, Redaction
from mokku.record.proxy import Proxy
from mokku.simulation.faults import Simulator
from mokku.store.base import CounterStore


def make_proxy(settings: config.Settings, counters: CounterStore) -> Proxy:
    cassettes = Cassettes(settings.cassettes, counters) if settings.cassettes else None
    return Proxy(
        settings.mode,
        settings.upstream,
        cassettes,
        Simulator(settings),
        Redaction(settings.redact_fields, settings.redact_patterns),
        settings.match_ignore,
        settings.replay_speed,
        settings.replay_miss_status,
    )
