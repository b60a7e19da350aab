"""Random object ids in the real API's shape (``chatcmpl-`` plus base62 characters)."""

from __future__ import annotations

import base64
import os
import random

_ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Maps every byte to a base62 character; the slight bias is irrelevant for ids.
_TO_BASE62 = bytes(_ALPHABET[b % len(_ALPHABET)] for b in range(256))

# A generator of mokku's own, not the random module's: ids need not be secret, and a system call
# per id (os.urandom) showed in profiles of a loaded worker; but a test that seeds the random
# module (random.seed, pytest-randomly, Hypothesis) must not make the in-process server repeat
# its ids. Seeded from the system at import and again in every forked worker.
_RANDOM = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_RANDOM.seed)

random_bits = _RANDOM.getrandbits


def random_id(prefix: str, length: int = 29) -> str:
    return prefix + _RANDOM.randbytes(length).translate(_TO_BASE62).decode("ascii")


def signature(size: int = 96) -> str:
    """An opaque signature in base64, as a thinking block or a thought carries one."""
    return base64.b64encode(_RANDOM.randbytes(size)).decode("ascii")
