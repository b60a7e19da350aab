"""Random object ids in the real API's shape (``chatcmpl-`` plus base62 characters)."""

from __future__ import annotations

import random

_ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Maps every byte to a base62 character; the slight bias is irrelevant for ids.
_TO_BASE62 = bytes(_ALPHABET[b % len(_ALPHABET)] for b in range(256))


def random_id(prefix: str, length: int = 29) -> str:
    # The random module, not os.urandom: ids need not be secret, and a system call per id showed
    # in profiles of a loaded worker. Python reseeds it in every forked worker.
    return prefix + random.randbytes(length).translate(_TO_BASE62).decode("ascii")
