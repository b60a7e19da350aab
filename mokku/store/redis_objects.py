"""Stored responses and conversations in Redis (``MOKKU_STATE=redis://...``): what one replica
stores, every replica retrieves, continues, cancels or pages. The same operations and bounds as the
embedded store (``mokku.control.objects``): each write is one Lua script, so concurrent replicas
never lose or duplicate an object or an item; past a count or byte bound the oldest go first; a
response also expires in Redis once past its age. Keys are built inside the scripts from the prefix
(one Redis, not a cluster).
"""

from __future__ import annotations

import time
from typing import Any, Callable, List, Optional, Sequence, Tuple

from mokku.control.objects import (
    DEFAULT_BOUNDS,
    Bounds,
    Duplicate,
    Page,
    StoredResponse,
    UnknownCursor,
)
from mokku.store.redis import Redis

_EVICT_RESPONSES = """
local function evict(p, limit, limit_bytes, expired_before)
  local count = tonumber(redis.call('HGET', p .. 'totals', 'responses') or '0')
  local size = tonumber(redis.call('HGET', p .. 'totals', 'response_bytes') or '0')
  while true do
    local oldest = redis.call('ZRANGE', p .. 'responses', 0, 63)
    if #oldest == 0 then break end
    local stop = false
    for _, id in ipairs(oldest) do
      local created = tonumber(redis.call('HGET', p .. 'response:' .. id, 'created') or '0')
      if count <= limit and size <= limit_bytes and created >= expired_before then stop = true; break end
      local bytes = tonumber(redis.call('HGET', p .. 'response_bytes', id) or '0')
      redis.call('DEL', p .. 'response:' .. id)
      redis.call('ZREM', p .. 'responses', id)
      redis.call('HDEL', p .. 'response_bytes', id)
      count, size = count - 1, size - bytes
    end
    if stop then break end
  end
  redis.call('HSET', p .. 'totals', 'responses', count, 'response_bytes', size)
end

local function remove(p, id)
  local bytes = redis.call('HGET', p .. 'response_bytes', id)
  if not bytes then return 0 end
  redis.call('DEL', p .. 'response:' .. id)
  redis.call('ZREM', p .. 'responses', id)
  redis.call('HDEL', p .. 'response_bytes', id)
  redis.call('HINCRBY', p .. 'totals', 'responses', -1)
  redis.call('HINCRBY', p .. 'totals', 'response_bytes', -tonumber(bytes))
  return 1
end
"""

# ARGV: prefix, id, body, items, job ('' for none), has job, created, size, limit, limit bytes,
# expired before, seconds to keep.
_KEEP_RESPONSE = (
    _EVICT_RESPONSES
    + """
local p, id = ARGV[1], ARGV[2]
remove(p, id)
local key = p .. 'response:' .. id
redis.call('HSET', key, 'body', ARGV[3], 'items', ARGV[4], 'created', ARGV[7])
if ARGV[6] == '1' then redis.call('HSET', key, 'job', ARGV[5]) end
redis.call('EXPIRE', key, math.ceil(tonumber(ARGV[12])))
redis.call('ZADD', p .. 'responses', redis.call('INCR', p .. 'seq'), id)
redis.call('HSET', p .. 'response_bytes', id, ARGV[8])
redis.call('HINCRBY', p .. 'totals', 'responses', 1)
redis.call('HINCRBY', p .. 'totals', 'response_bytes', tonumber(ARGV[8]))
evict(p, tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11]))
return 1
"""
)

# ARGV: prefix, id, body, job, has job. 0 when it is gone.
_REPLACE_RESPONSE = """
local p, id = ARGV[1], ARGV[2]
local key = p .. 'response:' .. id
if redis.call('EXISTS', key) == 0 then return 0 end
local old = string.len(redis.call('HGET', key, 'body') or '') + string.len(redis.call('HGET', key, 'job') or '')
local new = string.len(ARGV[3]) + (ARGV[5] == '1' and string.len(ARGV[4]) or 0)
redis.call('HSET', key, 'body', ARGV[3])
if ARGV[5] == '1' then redis.call('HSET', key, 'job', ARGV[4]) else redis.call('HDEL', key, 'job') end
redis.call('HINCRBY', p .. 'response_bytes', id, new - old)
redis.call('HINCRBY', p .. 'totals', 'response_bytes', new - old)
return 1
"""

_DELETE_RESPONSE = _EVICT_RESPONSES + "\nreturn remove(ARGV[1], ARGV[2])\n"

# Where deleted and evicted objects were, for list cursors: ``gone_seq`` maps '0:<conversation id>'
# and '<conversation seq>:<item id>' to their seq; ``gone`` orders them as they went, the earliest out
# past ``Bounds.gone_positions`` (written in for GONE_POSITIONS when the scripts are registered).
_GONE = """
local function keep_position(p, member, seq)
  redis.call('ZADD', p .. 'gone', redis.call('INCR', p .. 'gone_n'), member)
  redis.call('HSET', p .. 'gone_seq', member, seq)
  local forgotten = redis.call('ZRANGE', p .. 'gone', 0, -(GONE_POSITIONS + 1))
  if #forgotten > 0 then
    redis.call('HDEL', p .. 'gone_seq', unpack(forgotten))
    redis.call('ZREMRANGEBYRANK', p .. 'gone', 0, #forgotten - 1)
  end
end
"""

_CONVERSATIONS = (
    _GONE
    + """
local function remove_conversation(p, id)
  local key = p .. 'conversation:' .. id
  local bytes = redis.call('HGET', key, 'bytes')
  if not bytes then return 0 end
  redis.call('DEL', key, key .. ':order', key .. ':items', key .. ':sizes')
  keep_position(p, '0:' .. id, redis.call('ZSCORE', p .. 'conversations', id))
  redis.call('ZREM', p .. 'conversations', id)
  redis.call('HINCRBY', p .. 'totals', 'conversations', -1)
  redis.call('HINCRBY', p .. 'totals', 'conversation_bytes', -tonumber(bytes))
  return 1
end

local function evict(p, keep, limit, limit_bytes)
  while true do
    local count = tonumber(redis.call('HGET', p .. 'totals', 'conversations') or '0')
    local size = tonumber(redis.call('HGET', p .. 'totals', 'conversation_bytes') or '0')
    if count <= limit and size <= limit_bytes then return end
    local oldest = redis.call('ZRANGE', p .. 'conversations', 0, 1)
    local victim = oldest[1]
    if victim == keep then victim = oldest[2] end
    if not victim then return end
    remove_conversation(p, victim)
  end
end

-- Items (id, body) from ARGV[first] on; 'duplicate:<id>' when one is there already or comes twice.
local function add_items(p, id, first)
  local key = p .. 'conversation:' .. id
  local seen, added = {}, 0
  for i = first, #ARGV, 2 do
    local item = ARGV[i]
    if seen[item] or redis.call('HEXISTS', key .. ':items', item) == 1 then return nil, item end
    seen[item] = true
  end
  for i = first, #ARGV, 2 do
    redis.call('ZADD', key .. ':order', redis.call('INCR', p .. 'seq'), ARGV[i])
    redis.call('HSET', key .. ':items', ARGV[i], ARGV[i + 1])
    redis.call('HSET', key .. ':sizes', ARGV[i], string.len(ARGV[i + 1]))
    added = added + string.len(ARGV[i + 1])
  end
  return added
end
"""
)

# ARGV: prefix, id, body, size, limit, limit bytes, then (item id, item) pairs.
_CREATE_CONVERSATION = (
    _CONVERSATIONS
    + """
local p, id = ARGV[1], ARGV[2]
local key = p .. 'conversation:' .. id
local added, duplicate = add_items(p, id, 7)
if duplicate then redis.call('DEL', key .. ':order', key .. ':items', key .. ':sizes'); return {'duplicate', duplicate} end
redis.call('HSET', key, 'body', ARGV[3], 'bytes', ARGV[4])
redis.call('ZADD', p .. 'conversations', redis.call('INCR', p .. 'seq'), id)
redis.call('HINCRBY', p .. 'totals', 'conversations', 1)
redis.call('HINCRBY', p .. 'totals', 'conversation_bytes', tonumber(ARGV[4]))
evict(p, id, tonumber(ARGV[5]), tonumber(ARGV[6]))
return {'ok'}
"""
)

# ARGV: prefix, id, size of the items, one conversation's bound, limit, limit bytes, then pairs.
_ADD_ITEMS = (
    _CONVERSATIONS
    + """
local p, id = ARGV[1], ARGV[2]
local key = p .. 'conversation:' .. id
local bytes = redis.call('HGET', key, 'bytes')
if not bytes then return {'missing'} end
if tonumber(bytes) + tonumber(ARGV[3]) > tonumber(ARGV[4]) then return {'too_large'} end
local added, duplicate = add_items(p, id, 7)
if duplicate then return {'duplicate', duplicate} end
redis.call('HINCRBY', key, 'bytes', added)
redis.call('HINCRBY', p .. 'totals', 'conversation_bytes', added)
evict(p, id, tonumber(ARGV[5]), tonumber(ARGV[6]))
return {'ok'}
"""
)

# ARGV: prefix, id, body.
_REPLACE_CONVERSATION = """
local p, id = ARGV[1], ARGV[2]
local key = p .. 'conversation:' .. id
local old = redis.call('HGET', key, 'body')
if not old then return 0 end
local change = string.len(ARGV[3]) - string.len(old)
redis.call('HSET', key, 'body', ARGV[3])
redis.call('HINCRBY', key, 'bytes', change)
redis.call('HINCRBY', p .. 'totals', 'conversation_bytes', change)
return 1
"""

_DELETE_CONVERSATION = _CONVERSATIONS + "\nreturn remove_conversation(ARGV[1], ARGV[2])\n"

# ARGV: prefix, conversation id, item id.
_DELETE_ITEM = (
    _GONE
    + """
local p = ARGV[1]
local key = p .. 'conversation:' .. ARGV[2]
local size = redis.call('HGET', key .. ':sizes', ARGV[3])
if not size or redis.call('EXISTS', key) == 0 then return 0 end
redis.call('HDEL', key .. ':items', ARGV[3])
redis.call('HDEL', key .. ':sizes', ARGV[3])
local conversation = redis.call('ZSCORE', p .. 'conversations', ARGV[2])
keep_position(p, conversation .. ':' .. ARGV[3], redis.call('ZSCORE', key .. ':order', ARGV[3]))
redis.call('ZREM', key .. ':order', ARGV[3])
redis.call('HINCRBY', key, 'bytes', -tonumber(size))
redis.call('HINCRBY', p .. 'totals', 'conversation_bytes', -tonumber(size))
return 1
"""
)

# ARGV: prefix, conversation id ('' for the list of conversations), cursor id. The cursor's seq,
# or where it was when it went: {'at', seq}; {'unknown'}; {'missing'} when the conversation is not there.
_POSITION = """
local p, conversation, id = ARGV[1], ARGV[2], ARGV[3]
local order, scope = p .. 'conversations', '0'
if conversation ~= '' then
  scope = redis.call('ZSCORE', p .. 'conversations', conversation)
  if not scope then return {'missing'} end
  order = p .. 'conversation:' .. conversation .. ':order'
end
local seq = redis.call('ZSCORE', order, id) or redis.call('HGET', p .. 'gone_seq', scope .. ':' .. id)
if not seq then return {'unknown'} end
return {'at', seq}
"""


_WALK = 256  # conversations read at a time when some are passed over


class RedisObjects:
    """``mokku.control.objects.Objects`` with Redis under it."""

    def __init__(
        self, store: Redis, bounds: Bounds = DEFAULT_BOUNDS, clock: Callable[[], float] = time.time
    ) -> None:
        self.store, self.bounds, self.clock = store, bounds, clock
        self.name = store.name  # what a 503 names
        self._prefix = store.key("objects", "")
        client = store.client
        (
            self._keep,
            self._replace,
            self._delete,
            self._create,
            self._add,
            self._rename,
            self._drop,
            self._drop_item,
            self._position,
        ) = (
            client.register_script(script.replace("GONE_POSITIONS", str(bounds.gone_positions)))
            for script in (
                _KEEP_RESPONSE,
                _REPLACE_RESPONSE,
                _DELETE_RESPONSE,
                _CREATE_CONVERSATION,
                _ADD_ITEMS,
                _REPLACE_CONVERSATION,
                _DELETE_CONVERSATION,
                _DELETE_ITEM,
                _POSITION,
            )
        )

    def _run(self, script: Any, *args: Any) -> Any:
        return self.store.call(script, args=[self._prefix, *args])

    def _key(self, *parts: str) -> str:
        return self._prefix + ":".join(parts)

    # Responses

    def keep_response(self, response_id: str, body: bytes, items: bytes, job: Optional[str] = None) -> None:
        bounds = self.bounds
        size = bounds.response_size(body, items, job)
        now = self.clock()
        self._run(
            self._keep,
            response_id,
            body,
            items,
            job or "",
            "1" if job is not None else "0",
            repr(now),
            size,
            bounds.responses,
            bounds.response_bytes,
            repr(now - bounds.response_seconds),
            bounds.response_seconds,
        )

    def response(self, response_id: str) -> Optional[StoredResponse]:
        found = self.store.call(
            self.store.client.hmget, self._key("response", response_id), ["body", "items", "created", "job"]
        )
        body, items, created, job = found
        if body is None or float(created) < self.clock() - self.bounds.response_seconds:
            return None
        return StoredResponse(
            bytes(body), bytes(items), float(created), job.decode() if job is not None else None
        )

    def replace_response(self, response_id: str, body: bytes, job: Optional[str]) -> bool:
        return bool(self._run(self._replace, response_id, body, job or "", "1" if job is not None else "0"))

    def delete_response(self, response_id: str) -> bool:
        return bool(self._run(self._delete, response_id))

    # Conversations

    def create_conversation(
        self, conversation_id: str, body: bytes, items: Sequence[Tuple[str, bytes]]
    ) -> None:
        bounds = self.bounds
        size = bounds.conversation_size(body, items)
        pairs = [value for item in items for value in item]
        result = self._run(
            self._create, conversation_id, body, size, bounds.conversations, bounds.conversation_bytes, *pairs
        )
        _raise_for(result, bounds)

    def conversation(self, conversation_id: str) -> Optional[bytes]:
        body = self.store.call(self.store.client.hget, self._key("conversation", conversation_id), "body")
        return bytes(body) if body is not None else None

    def replace_conversation(self, conversation_id: str, body: bytes) -> bool:
        return bool(self._run(self._rename, conversation_id, body))

    def delete_conversation(self, conversation_id: str) -> bool:
        return bool(self._run(self._drop, conversation_id))

    def add_items(self, conversation_id: str, items: Sequence[Tuple[str, bytes]]) -> bool:
        size = sum(len(item) for _, item in items)
        bounds = self.bounds
        pairs = [value for item in items for value in item]
        result = self._run(
            self._add,
            conversation_id,
            size,
            bounds.one_conversation_bytes,
            bounds.conversations,
            bounds.conversation_bytes,
            *pairs,
        )
        if result[0] == b"missing":
            return False
        _raise_for(result, bounds)
        return True

    def items(self, conversation_id: str) -> Optional[List[bytes]]:
        key = self._key("conversation", conversation_id)
        client = self.store.client
        if not self.store.call(client.exists, key):
            return None
        ids = self.store.call(client.zrange, key + ":order", 0, -1)
        if not ids:
            return []
        return [
            bytes(body) for body in self.store.call(client.hmget, key + ":items", ids) if body is not None
        ]

    def conversations_after(
        self, prefix: str, after: Optional[str], limit: int, newest_first: bool
    ) -> List[Tuple[str, bytes]]:
        """As ``Objects.conversations_after``: conversations are walked in their order, a batch at a
        time, and those of other prefixes passed over."""
        order = self._key("conversations")
        client = self.store.client
        start = self._cursor("", after) if after is not None else None
        found: List[Tuple[str, bytes]] = []
        encoded = prefix.encode()
        while len(found) < limit:
            ids = self._ordered(order, start, _WALK, newest_first, withscores=True)
            if not ids:
                break
            start = ids[-1][1]
            chosen = [member for member, _ in ids if member.startswith(encoded)]
            with client.pipeline(transaction=False) as pipe:
                for member in chosen:
                    pipe.hget(self._key("conversation", member.decode()), "body")
                bodies = self.store.call(pipe.execute) if chosen else []
            found.extend(
                (member.decode(), bytes(body)) for member, body in zip(chosen, bodies) if body is not None
            )
            if len(ids) < _WALK:
                break
        return found[:limit]

    def _ordered(
        self, key: str, start: Optional[float], count: int, newest_first: bool, withscores: bool = False
    ) -> List[Any]:
        """At most ``count`` members of the sorted set ``key`` past the score ``start`` (from the
        first when None), in the order asked."""
        client = self.store.client
        if newest_first:
            high = f"({int(start)}" if start is not None else "+inf"
            return self.store.call(
                client.zrevrangebyscore, key, high, "-inf", start=0, num=count, withscores=withscores
            )
        low = f"({int(start)}" if start is not None else "-inf"
        return self.store.call(
            client.zrangebyscore, key, low, "+inf", start=0, num=count, withscores=withscores
        )

    def page_items(
        self, conversation_id: str, after: Optional[str], limit: int, newest_first: bool
    ) -> Optional[Page]:
        key = self._key("conversation", conversation_id)
        client = self.store.client
        if after is not None:
            start: Optional[float] = self._cursor(conversation_id, after)
            if start is None:
                return None
        elif self.store.call(client.exists, key):
            start = None
        else:
            return None
        ids = self._ordered(key + ":order", start, limit + 1, newest_first)
        bodies = self.store.call(client.hmget, key + ":items", ids[:limit]) if ids else []
        return Page([bytes(body) for body in bodies if body is not None], len(ids) > limit)

    def _cursor(self, conversation_id: str, after: str) -> Optional[float]:
        """Where ``after`` stands in a conversation ('' for the list of conversations), or where it
        was; None when the conversation is not there."""
        found = self._run(self._position, conversation_id, after)
        if found[0] == b"unknown":
            raise UnknownCursor(after)
        return float(found[1]) if found[0] == b"at" else None

    def item(self, conversation_id: str, item_id: str) -> Optional[bytes]:
        key = self._key("conversation", conversation_id)
        client = self.store.client
        with client.pipeline(transaction=False) as pipe:
            pipe.exists(key)
            pipe.hget(key + ":items", item_id)
            exists, body = self.store.call(pipe.execute)
        return bytes(body) if exists and body is not None else None

    def delete_item(self, conversation_id: str, item_id: str) -> bool:
        return bool(self._run(self._drop_item, conversation_id, item_id))


def _raise_for(result: List[Any], bounds: Bounds) -> None:
    if result[0] == b"duplicate":
        raise Duplicate(result[1].decode())
    if result[0] == b"too_large":
        raise bounds.conversation_full()
