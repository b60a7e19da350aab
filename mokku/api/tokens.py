"""The one tokenizer: deterministic, approximate, used for usage, streaming and limits.

The rule, so that counts are stable and plausible (close to OpenAI's for
English text):

1. Text is split into pieces: a word (letters or digits, with the one space
   before it, as BPE tokenizers keep it: ``" world"``), a run of at most three
   digits, a single punctuation or symbol character (with the space before it),
   or a run of whitespace.
2. A piece of more than six characters (not counting its leading space) is
   cut into parts of four characters; the first part keeps the space.

Joining the tokens gives back the text exactly; tokens are whole code points,
so no token splits a character. A chat prompt costs the tokens of its text
plus 3 per message and 3 to prime the reply, as OpenAI documents for its own
counting.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any, List

_PIECE = re.compile(r" ?[^\W\d_]+| ?\d{1,3}| ?[^\w\s]|_| ?\S|\s+")
_LONG = 6
_PART = 4

TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3


def tokenize(text: str) -> List[str]:
    """Split ``text`` into tokens whose concatenation is ``text``."""
    tokens: List[str] = []
    append = tokens.append
    for piece in _PIECE.findall(text):
        lead = 1 if piece[0] == " " else 0
        if len(piece) - lead <= _LONG:
            append(piece)
        else:
            parts = [piece[i : i + _PART] for i in range(lead, len(piece), _PART)]
            parts[0] = piece[:lead] + parts[0]
            tokens.extend(parts)
    return tokens


def count(text: str) -> int:
    """How many tokens ``text`` is; the same as ``len(tokenize(text))``."""
    total = 0
    for piece in _PIECE.findall(text):
        length = len(piece) - (1 if piece[0] == " " else 0)
        total += 1 if length <= _LONG else -(-length // _PART)
    return total


_counted_once = functools.lru_cache(maxsize=256)(count)
_CACHED_DEFINITION_CHARS = 64 * 1024  # larger ones are counted each time, so the cache stays small


def definition_tokens(value: Any) -> int:
    """Tool definitions' tokens (their compact JSON): the real APIs count them as input. An agent
    sends the same ones every turn, so a definition of ordinary size is counted once."""
    if not value:
        return 0
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return _counted_once(text) if len(text) <= _CACHED_DEFINITION_CHARS else count(text)
