"""A simulated prefix cache (``MOKKU_PREFIX_CACHE``, a number of blocks; off by default), as vLLM's
automatic prefix caching behaves seen from outside.

A prompt is cut into blocks of ``BLOCK_TOKENS`` tokens (its messages' roles and texts, as mokku
counts them: ``mokku.api.decide``), each block named by a hash chained from the model and every block before it, so a
block matches only after the same prefix. The blocks a recent prompt of the same model already had,
from its start, are cached: ``usage.prompt_tokens_details.cached_tokens`` (``cache_read_input_tokens``
on the Messages API, ``cachedContentTokenCount`` on Gemini's) reports them, and the prefill
(``MOKKU_PREFILL_MS``) counts only the tokens after them. The table is set-associative: a block may
sit in any of ``WAYS`` places of its set, and a new one takes the place used longest ago, as vLLM
evicts its least recently used blocks; a prompt cannot evict its own start (it would need more than
``WAYS`` of its blocks in one set), so a repeated prompt finds all of it while the cache holds it.

``vllm:kv_cache_usage_perc`` is the share of the blocks that running requests' prompts hold. The
table and the counts live in shared memory made before gunicorn forks (``prepare``); a worker that
dies gives its blocks back (``gone``).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from typing import Optional, Sequence, Tuple

from mokku import config

BLOCK_TOKENS = 16
WAYS = 8  # the places a block may take in its set
_HOLDERS = 1024  # processes that can hold blocks at once (a server's workers)


class PrefixCache:
    def __init__(self, blocks: int) -> None:
        self.blocks = blocks
        self._ways = min(WAYS, blocks)
        self._sets = blocks // self._ways
        self._lock = multiprocessing.Lock()
        self._table = multiprocessing.RawArray("q", blocks)  # a block's hash, 0 for none
        self._used = multiprocessing.RawArray("q", blocks)  # when it was last used (``_clock``)
        self._clock = multiprocessing.RawValue("q", 0)
        self._holders = multiprocessing.RawArray("q", _HOLDERS)  # pid
        self._held = multiprocessing.RawArray("q", _HOLDERS)  # blocks its running requests hold
        self._place: Tuple[int, Optional[int]] = (0, None)  # (pid, its place), found once per process

    def visit(self, model: str, tokens: Sequence[str]) -> int:
        """The prompt's tokens found cached (whole blocks from its start); its blocks are cached now."""
        hashes = _chain(model, tokens)
        table, used, ways = self._table, self._used, self._ways
        with self._lock:
            hits, missed = 0, False
            for value in hashes:
                first = value % self._sets * ways
                places = range(first, first + ways)
                place = next((index for index in places if table[index] == value), None)
                if place is None:
                    missed = True
                    place = min(places, key=used.__getitem__)  # the one used longest ago (or empty)
                    table[place] = value
                elif not missed:
                    hits += 1
                self._clock.value += 1
                used[place] = self._clock.value
        return hits * BLOCK_TOKENS

    def hold(self, blocks: int) -> None:
        """A running request's prompt takes ``blocks`` (given back by ``release``)."""
        self._add(blocks)

    def release(self, blocks: int) -> None:
        self._add(-blocks)

    def _add(self, blocks: int) -> None:
        place = self._own_place(claim=blocks > 0)  # blocks given back were taken from a place
        if place is None:  # every place taken by a live process: this one's blocks go uncounted
            return
        with self._lock:
            self._held[place] += blocks

    def _own_place(self, claim: bool) -> Optional[int]:
        """This process's place among the holders, found once; ``claim``: a free one is taken when it
        has none (a forked worker takes its own: ``gone`` frees a dead one's)."""
        pid = os.getpid()
        if self._place[0] != pid:
            found = None
            with self._lock:
                for index, holder in enumerate(self._holders):
                    if holder == pid or (not holder and found is None):
                        found = index
                        if holder == pid:
                            break
                if found is not None and self._holders[found] != pid:
                    if not claim:
                        found = None
                    else:
                        self._holders[found], self._held[found] = pid, 0
            if found is None:
                return None  # asked again next time: a dead worker's place may be freed by then
            self._place = (pid, found)
        return self._place[1]

    def usage(self) -> float:
        """The share of the cache the running requests hold, 0 to 1."""
        with self._lock:
            held = sum(self._held)
        return min(1.0, max(0, held) / self.blocks)

    def gone(self, pid: int) -> None:
        with self._lock:
            for index, holder in enumerate(self._holders):
                if holder == pid:
                    self._holders[index] = self._held[index] = 0


def blocks_of(tokens: int) -> int:
    return -(-tokens // BLOCK_TOKENS)


def _chain(model: str, tokens: Sequence[str]) -> list:
    """The hash of each whole block of the prompt's tokens, each from the one before it."""
    previous = hashlib.blake2b(model.encode("utf-8", "backslashreplace"), digest_size=8).digest()
    hashes = []
    for start in range(0, len(tokens) - BLOCK_TOKENS + 1, BLOCK_TOKENS):
        block = "\x00".join(tokens[start : start + BLOCK_TOKENS]).encode("utf-8", "backslashreplace")
        previous = hashlib.blake2b(previous + block, digest_size=8).digest()
        hashes.append(int.from_bytes(previous, "little", signed=True) or 1)  # 0 marks an empty place
    return hashes


_shared: Optional[PrefixCache] = None


def prepare(settings: config.Settings) -> None:
    """Make the cache in the process that forks the workers (gunicorn's arbiter)."""
    global _shared
    if settings.prefix_cache:
        _shared = PrefixCache(settings.prefix_cache)


def cache(settings: config.Settings) -> Optional[PrefixCache]:
    """The server's cache: the one made before the fork, else one of this app's own (an app made
    once per process: ``python -m mokku``, plain gunicorn, tests)."""
    if not settings.prefix_cache:
        return None
    if _shared is not None and _shared.blocks == settings.prefix_cache:
        return _shared
    return PrefixCache(settings.prefix_cache)


def gone(pid: int) -> None:
    if _shared is not None:
        _shared.gone(pid)
