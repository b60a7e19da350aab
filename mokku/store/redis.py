"""The shared store past one machine: Redis or Valkey (``MOKKU_STATE=redis://host:6379/0``,
``rediss://`` and a password in the URL; ``pip install 'mokku[redis]'``).

Every key starts with ``MOKKU_STATE_PREFIX`` (``mokku:``), so test runs can share one Redis. A
decision that must be exact across replicas (a rule's ``times`` and ``nth``, a rate-limit bucket,
a journal entry's id) is one Lua script: atomic, one round trip. A Redis that is slow or gone
raises within ``TIMEOUT_S`` (``STATE_ERRORS``); the outage is logged once, its end once, and the
client reconnects by itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
import uuid
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple, Type
from urllib.parse import urlsplit

from mokku.store.base import (
    MAX_BUCKETS,
    SETTLE_TIMEOUT_S,
    Left,
    Page,
    Refused,
    Row,
    TooMany,
    Want,
    entry_of,
    standing,
)

try:
    import redis
except ImportError:  # the optional extra
    redis = None  # type: ignore[assignment]

log = logging.getLogger("mokku")

TIMEOUT_S = 2.0  # connect, read or write: past it, the store is down for this request
_SCAN_CHUNK = 256
_KEEP_ACKS_S = 30
# One BLPOP's wait for an ack: shorter than the socket's read timeout, so that an empty wait comes
# back as nothing rather than as a timeout that would read as an outage; and never under 10 ms,
# as Redis reads a wait that rounds to 0 ms as "wait forever".
_ACK_WAIT_S = TIMEOUT_S / 2
_MIN_BLOCK_S = 0.01

# The Redis URLs this process finds down: an outage is logged once per process, its end once.
_DOWN: Set[str] = set()
_OUTAGE_LOCK = threading.Lock()

ERRORS: Tuple[Type[BaseException], ...] = (redis.RedisError,) if redis is not None else ()


def describe(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"Redis at {parts.scheme}://{host}{port}{parts.path}"


class Redis:
    """One client per process (its pool serves every thread), the key prefix, and outage logging."""

    def __init__(self, url: str, prefix: str) -> None:
        if redis is None:
            raise RuntimeError(
                "MOKKU_STATE names Redis, but the redis package is missing: pip install 'mokku[redis]'"
            )
        self.url, self.prefix = url, prefix
        self.name = describe(url)
        self.listener = Listener(self)
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=TIMEOUT_S,
            socket_connect_timeout=TIMEOUT_S,
            health_check_interval=30,
            retry_on_timeout=False,
        )

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def check(self) -> None:
        """Raise when Redis cannot be reached (at start: fail fast)."""
        self.client.ping()

    def failed(self, exc: BaseException) -> None:
        # Logged under the lock: a thread that finds the outage noted has its line written already.
        with _OUTAGE_LOCK:
            if self.url in _DOWN:
                return
            _DOWN.add(self.url)
            log.error("%s cannot be used (%s): shared decisions answer 503 until it can", self.name, exc)

    def worked(self) -> None:
        if _DOWN:
            with _OUTAGE_LOCK:
                if self.url not in _DOWN:
                    return
                _DOWN.discard(self.url)
                log.warning("%s can be used again", self.name)

    def broadcast(self, channel: str, timeout: float) -> bool:
        """Publish on ``channel`` and wait until every process that heard it acknowledged (``ack``)."""
        token = uuid.uuid4().hex
        acks = self.key("acks", token)
        client = self.client
        heard = int(self.call(client.publish, channel, token))
        deadline = time.monotonic() + timeout
        acked = 0
        while acked < heard:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            # A BLPOP that comes back empty is no ack: wait again, until the deadline.
            wait = max(_MIN_BLOCK_S, min(left, _ACK_WAIT_S))
            if self.call(client.blpop, [acks], timeout=wait) is not None:
                acked += 1
        self.call(client.delete, acks)
        return True

    def ack(self, token: str) -> None:
        acks = self.key("acks", token)
        with contextlib.suppress(*ERRORS), self.client.pipeline() as pipe:
            pipe.rpush(acks, 1)
            pipe.expire(acks, _KEEP_ACKS_S)
            pipe.execute()

    def call(self, action: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one command or script, noting an outage's start and end."""
        try:
            result = action(*args, **kwargs)
        except ERRORS as exc:
            self.failed(exc)
            raise
        self.worked()
        return result


class Listener:
    """This process's one pub/sub connection to a store: readers asking writers to settle, rule
    changes. A thread of its own reads it, subscribes to channels as they are asked for, and after a
    lost connection subscribes again (each handler's ``lost`` is told, as notices may be missed)."""

    def __init__(self, store: Redis) -> None:
        self.store = store
        self._handlers: Dict[str, Tuple[Callable[[str], None], Optional[Callable[[], None]]]] = {}
        self._confirmed: Set[str] = set()
        self._changed = threading.Condition()
        self._pid = -1

    def on(
        self,
        channel: str,
        handler: Callable[[str], None],
        lost: Optional[Callable[[], None]] = None,
        wait: float = 0.0,
    ) -> bool:
        """Call ``handler`` with each message on ``channel``; True once subscribed (waiting up to ``wait``)."""
        with self._changed:
            self._handlers[channel] = (handler, lost)
            if self._pid != os.getpid():  # first use in this process (a fork has no thread of its parent's)
                self._pid, self._confirmed = os.getpid(), set()
                threading.Thread(target=self._run, name="mokku-redis-listener", daemon=True).start()
            deadline = time.monotonic() + wait
            while channel not in self._confirmed and time.monotonic() < deadline:
                self._changed.wait(deadline - time.monotonic())
            return channel in self._confirmed

    def subscribed(self, channel: str) -> bool:
        return self._pid == os.getpid() and channel in self._confirmed

    def _run(self) -> None:
        while True:
            try:
                self._listen()
            except ERRORS as exc:
                self.store.failed(exc)
            with self._changed:
                self._confirmed = set()
                losers = [lost for _, lost in self._handlers.values() if lost is not None]
            for lost in losers:
                lost()
            time.sleep(0.5)

    def _listen(self) -> None:
        pubsub = self.store.client.pubsub()
        asked: Set[str] = set()
        try:
            while True:
                with self._changed:
                    wanted = set(self._handlers) - asked
                if wanted:
                    pubsub.subscribe(*wanted)
                    asked |= wanted
                message = pubsub.get_message(timeout=0.05)
                if message is None:
                    continue
                channel = message["channel"].decode()
                if message["type"] == "subscribe":
                    with self._changed:
                        self._confirmed.add(channel)
                        self._changed.notify_all()
                elif message["type"] == "message":
                    data = message["data"]
                    self._handlers[channel][0](data.decode() if isinstance(data, bytes) else str(data))
        finally:
            with contextlib.suppress(*ERRORS):
                pubsub.close()


# KEYS: seq, stream, bytes; ARGV: size bound, byte bound, then (time, path, model, bytes, entry, body) per row.
_APPEND = """
local size, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local added = 0
for i = 3, #ARGV, 6 do
  local id = redis.call('INCR', KEYS[1])
  redis.call('XADD', KEYS[2], id .. '-1', 't', ARGV[i], 'p', ARGV[i + 1], 'm', ARGV[i + 2],
             'b', ARGV[i + 3], 'e', ARGV[i + 4], 'r', ARGV[i + 5])
  added = added + tonumber(ARGV[i + 3])
end
local total = redis.call('INCRBY', KEYS[3], added)
local over = redis.call('XLEN', KEYS[2]) - size
local cut = total > limit  -- past the byte bound: down to nine tenths of it
local function more() return over > 0 or (cut and total > limit * 0.9) end
while more() do
  local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 64)
  if #oldest == 0 then break end
  for _, item in ipairs(oldest) do
    if not more() then break end
    local fields = item[2]
    for j = 1, #fields, 2 do
      if fields[j] == 'b' then total = total - tonumber(fields[j + 1]) end
    end
    redis.call('XDEL', KEYS[2], item[1])
    over = over - 1
  end
end
redis.call('SET', KEYS[3], math.max(total, 0))
return total
"""


def _entry_of(fields: Dict[bytes, bytes], entry_id: int) -> Dict[str, Any]:
    body = fields.get(b"r")
    return entry_of(fields[b"e"], body.decode() if body else None, entry_id)


class RedisJournal:
    """The journal as one Redis stream; entry ids ``<n>-1`` from one counter, so they stay whole
    numbers that only grow, as the embedded store's do."""

    def __init__(self, store: Redis, size: int, max_bytes: int) -> None:
        self.store, self.size, self.max_bytes = store, size, max_bytes
        self.name = store.name
        self._seq, self._stream, self._bytes = (
            store.key("journal", part) for part in ("seq", "entries", "bytes")
        )
        self._channel = store.key("journal", "settle")
        self._append = store.client.register_script(_APPEND)

    def append(self, rows: Sequence[Row]) -> None:
        values: List[Any] = [self.size, self.max_bytes]
        for when, path, model, size, stored, body in rows:
            values += [repr(when), path, model or "", size, stored, body or ""]
        self.store.call(self._append, keys=[self._seq, self._stream, self._bytes], args=values)

    # Read-your-writes: a reader asks every process that writes entries to write what it holds.

    def tally(self, flush: Callable[[float], bool]) -> None:
        """Answer readers from this process: subscribed before its first entry is handed over (with
        Redis down, as soon as it is back)."""

        def settle(token: str) -> None:
            flush(SETTLE_TIMEOUT_S)
            self.store.ack(token)

        self.store.listener.on(self._channel, settle, wait=TIMEOUT_S)

    def settled(self) -> bool:
        return self.store.broadcast(self._channel, SETTLE_TIMEOUT_S)

    # Reads

    def _entry(self, item: Tuple[bytes, Dict[bytes, bytes]]) -> Tuple[int, int, Dict[bytes, bytes]]:
        raw_id, fields = item
        return int(raw_id.split(b"-")[0]), int(fields[b"b"]), fields

    def page(
        self,
        path: Optional[str],
        model: Optional[str],
        since: Optional[float],
        limit: int,
        after: Optional[int],
        before: Optional[int],
        max_bytes: Optional[int],
    ) -> Page:
        forward = after is not None
        client = self.store.client
        low = f"({after}-1" if after is not None else "-"
        high = f"({before}-1" if before is not None else "+"
        found: List[Dict[str, Any]] = []
        total = 0
        while True:
            if forward:
                chunk = self.store.call(client.xrange, self._stream, low, high, count=_SCAN_CHUNK)
            else:
                chunk = self.store.call(client.xrevrange, self._stream, high, low, count=_SCAN_CHUNK)
            for item in chunk:
                entry_id, size, fields = self._entry(item)
                if forward:
                    low = f"({entry_id}-1"
                else:
                    high = f"({entry_id}-1"
                if (
                    (path is not None and fields[b"p"].decode() != path)
                    or (model is not None and fields[b"m"].decode() != model)
                    or (since is not None and float(fields[b"t"]) < since)
                ):
                    continue
                if len(found) == limit or (max_bytes is not None and found and total + size > max_bytes):
                    if not forward:
                        found.reverse()
                    return Page(found, True)
                total += size
                found.append(_entry_of(fields, entry_id))
            if len(chunk) < _SCAN_CHUNK:
                break
        if not forward:
            found.reverse()
        return Page(found, False)

    def scan(self) -> Iterator[Dict[str, Any]]:
        client = self.store.client
        low = "-"
        while True:
            chunk = self.store.call(client.xrange, self._stream, low, "+", count=_SCAN_CHUNK)
            for item in chunk:
                entry_id, _, fields = self._entry(item)
                low = f"({entry_id}-1"
                yield _entry_of(fields, entry_id)
            if len(chunk) < _SCAN_CHUNK:
                return

    def count(self) -> int:
        return int(self.store.call(self.store.client.xlen, self._stream))

    def clear(self) -> None:
        self.store.call(self.store.client.delete, self._stream, self._bytes)


# KEYS: seq, ids, live, text, left, epoch; ARGV: limit, a new epoch, then (text, times or "") per rule.
_ADD_RULES = """
local held = redis.call('ZCARD', KEYS[2])
local count = (#ARGV - 2) / 2
if held + count > tonumber(ARGV[1]) then return {-1, held} end
redis.call('SET', KEYS[6], ARGV[2], 'NX')
local ids = {}
for i = 3, #ARGV, 2 do
  local id = redis.call('INCR', KEYS[1])
  redis.call('ZADD', KEYS[2], id, id)
  redis.call('ZADD', KEYS[3], id, id)
  redis.call('HSET', KEYS[4], id, ARGV[i])
  if ARGV[i + 1] ~= '' then redis.call('HSET', KEYS[5], id, ARGV[i + 1]) end
  ids[#ids + 1] = id
end
return {0, unpack(ids)}
"""

# KEYS: live, epoch. The cache scope (changes when the rules were wiped with Redis) and live ids.
_LIVE_RULES = """
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
return {redis.call('GET', KEYS[2]) or '', unpack(ids)}
"""

# KEYS: ids, live, left, seen; ARGV: id, nth or "".
_HIT_RULE = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local left = redis.call('HGET', KEYS[3], ARGV[1])
if left and tonumber(left) <= 0 then return 0 end
local seen = redis.call('HINCRBY', KEYS[4], ARGV[1], 1)
if ARGV[2] ~= '' and seen ~= tonumber(ARGV[2]) then return 0 end
if left and redis.call('HINCRBY', KEYS[3], ARGV[1], -1) <= 0 then redis.call('ZREM', KEYS[2], ARGV[1]) end
return 1
"""


class RedisRules:
    """Scripted-reply rules in Redis: every call asks which rules are live (one round trip); a hit
    is counted by one script, so ``times`` and ``nth`` are exact across every replica."""

    def __init__(self, store: Redis) -> None:
        self.store = store
        self.name = store.name
        self._channel = store.key("rules", "changed")
        self._maybe = True  # rules may exist: ask Redis (False only after it said none, with no change since)
        self._notices = 0
        names = ("seq", "ids", "live", "text", "left", "epoch", "seen")
        self._keys = {name: store.key("rules", name) for name in names}
        client = store.client
        self._add, self._live, self._hit = (
            client.register_script(s) for s in (_ADD_RULES, _LIVE_RULES, _HIT_RULE)
        )

    # Whether any rule may exist is known here, without a round trip: adding rules tells every
    # process (over pub/sub, waiting for each to acknowledge) before the add answers, so a call that
    # starts after it asks Redis again; a lost connection counts as such a notice.

    def may_hold(self, kind: int) -> bool:
        if not self.store.listener.subscribed(self._channel):
            self.store.listener.on(self._channel, self._changed, self._lost)
            return True
        return self._maybe

    def _changed(self, token: str) -> None:
        self._lost()
        self.store.ack(token)

    def _lost(self) -> None:
        self._notices += 1
        self._maybe = True

    def add(self, rules: Sequence[Tuple[str, Optional[int], int]], limit: int) -> List[int]:
        keys = self._keys
        args: List[Any] = [limit, uuid.uuid4().hex]
        for text, times, _ in rules:
            args += [text, "" if times is None else times]
        found = self.store.call(
            self._add,
            keys=[keys["seq"], keys["ids"], keys["live"], keys["text"], keys["left"], keys["epoch"]],
            args=args,
        )
        if int(found[0]) < 0:
            raise TooMany(int(found[1]))
        self.store.broadcast(self._channel, TIMEOUT_S)
        return [int(rule_id) for rule_id in found[1:]]

    def listed(self) -> List[Tuple[int, str, Optional[int], int]]:
        client, keys = self.store.client, self._keys
        ids = [int(i) for i in self.store.call(client.zrange, keys["ids"], 0, -1)]
        if not ids:
            return []
        with client.pipeline(transaction=False) as pipe:
            for name in ("text", "left", "seen"):
                pipe.hmget(keys[name], ids)
            texts, lefts, seens = self.store.call(pipe.execute)
        return [
            (rule_id, text.decode(), None if left is None else int(left), int(seen or 0))
            for rule_id, text, left, seen in zip(ids, texts, lefts, seens)
            if text is not None
        ]

    def clear(self) -> None:
        keys = self._keys
        self.store.call(
            self.store.client.delete, *(keys[name] for name in ("ids", "live", "text", "left", "seen"))
        )

    def live(self) -> Tuple[Any, List[int]]:
        notices, listening = self._notices, self.store.listener.subscribed(self._channel)
        found = self.store.call(self._live, keys=[self._keys["live"], self._keys["epoch"]])
        if len(found) == 1 and listening and notices == self._notices:
            self._maybe = False  # none live, and none added since this read began
        return found[0], [int(rule_id) for rule_id in found[1:]]

    def texts(self, ids: Sequence[int]) -> Dict[int, str]:
        texts = self.store.call(self.store.client.hmget, self._keys["text"], list(ids))
        return {rule_id: text.decode() for rule_id, text in zip(ids, texts) if text is not None}

    def hit(self, rule_id: int, nth: Optional[int]) -> bool:
        keys = self._keys
        return bool(
            self.store.call(
                self._hit,
                keys=[keys["ids"], keys["live"], keys["left"], keys["seen"]],
                args=[rule_id, "" if nth is None else nth],
            )
        )


# KEYS: one bucket per limit, then the index of buckets by last use; ARGV: now, window, the most
# buckets kept, then (capacity, amount) per bucket. Returns {0, level, ...} when taken, {i, seconds,
# level, ...} when bucket i is short (the levels untaken; as strings: Lua numbers would be cut). A
# refused bucket is written too, at its level now: it is in use. The index drops the buckets that
# have refilled (and expired); past the most, the older half goes, as the embedded store does. A
# caller whose clock read is older than the bucket's never moves it back (its refill counted twice).
_TAKE = """
local now, window, most = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local index = table.remove(KEYS)
local levels, stamps = {}, {}
for i, key in ipairs(KEYS) do
  local capacity = tonumber(ARGV[2 * i + 2])
  local state = redis.call('HMGET', key, 'level', 'updated')
  local level = tonumber(state[1]) or capacity
  local updated = tonumber(state[2]) or now
  levels[i] = math.min(capacity, level + math.max(0, now - updated) * capacity / window)
  stamps[i] = math.max(now, updated)
end
local out = {'0'}
for i = 1, #KEYS do
  local capacity, amount = tonumber(ARGV[2 * i + 2]), tonumber(ARGV[2 * i + 3])
  if levels[i] < amount then
    out = {tostring(i), tostring((amount - levels[i]) * window / capacity)}
    break
  end
end
for i, key in ipairs(KEYS) do
  if out[1] == '0' then levels[i] = levels[i] - tonumber(ARGV[2 * i + 3]) end
  redis.call('HSET', key, 'level', tostring(levels[i]), 'updated', tostring(stamps[i]))
  redis.call('PEXPIRE', key, math.ceil(window * 1000))
  redis.call('ZADD', index, now, key)
  out[#out + 1] = tostring(levels[i])
end
local refilled = '(' .. tostring(now - window)
for _, key in ipairs(redis.call('ZRANGEBYSCORE', index, '-inf', refilled)) do redis.call('DEL', key) end
redis.call('ZREMRANGEBYSCORE', index, '-inf', refilled)
local held = redis.call('ZCARD', index)
if held > most then
  local last = held - math.floor(most / 2) - 1
  for _, key in ipairs(redis.call('ZRANGE', index, 0, last)) do redis.call('DEL', key) end
  redis.call('ZREMRANGEBYRANK', index, 0, last)
end
return out
"""


class RedisBuckets:
    """Rate-limit buckets in Redis, one hash per (client, kind), taken from by one script: one limit
    across every replica. A bucket expires once it would have refilled: the store stays bounded."""

    def __init__(self, store: Redis, limit: int = MAX_BUCKETS) -> None:
        self.store = store
        self.name = store.name
        self.limit = limit
        self._take = store.client.register_script(_TAKE)

    def take(
        self, who: str, wants: Sequence[Want], now: float, window: float
    ) -> Tuple[Optional[Refused], List[Left]]:
        keys = [self.store.key("bucket", kind, who) for kind, _, _ in wants] + [self.store.key("buckets")]
        args: List[Any] = [repr(now), repr(window), self.limit]
        for _, capacity, amount in wants:
            args += [capacity, repr(float(amount))]
        found = [float(value) for value in self.store.call(self._take, keys=keys, args=args)]
        refused: Optional[Refused] = None
        if found[0]:
            kind, capacity, amount = wants[int(found[0]) - 1]
            refused = (kind, capacity, amount, found[1])
        return refused, standing(wants, found[2:] if refused is not None else found[1:], window)

    def count(self) -> int:
        pattern = self.store.key("bucket", "*")
        return sum(1 for _ in self.store.client.scan_iter(match=pattern, count=1000))


class RedisCounters:
    """Sequence counters in Redis: one hash per scope, one ``HINCRBY`` per call."""

    def __init__(self, store: Redis) -> None:
        self.store = store

    def _hash(self, scope: str) -> str:
        return self.store.key(
            "counters", hashlib.sha256(scope.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        )

    def next(self, scope: str, key: str, kind: str) -> int:
        field = f"{'recorded' if kind == 'recorded' else 'replayed'}:{key}"
        return int(self.store.call(self.store.client.hincrby, self._hash(scope), field, 1))

    def reset(self, scope: str) -> None:
        self.store.call(self.store.client.delete, self._hash(scope))
