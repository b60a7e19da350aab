"""Deterministic log probabilities for the tokens mokku returns.

The returned token is always the most likely one: its logprob lies in
(-0.25, 0], derived from a CRC of the token so the same token always gets the
same value. Alternatives are variants of the token (other case, spacing) and
then common tokens, each clearly less likely and all distinct.
"""

from __future__ import annotations

import zlib
from typing import Any, Dict, List, Tuple

_COMMON = (
    " the", " a", " and", ",", ".", " of", " to", " in", "\n", " is",
    " I", " you", " it", " that", " for", " on", " with", " as", " be", " at",
)  # fmt: skip


def _fraction(token: str) -> float:
    return zlib.crc32(token.encode("utf-8", "surrogatepass")) / 0x100000000


def logprob(token: str) -> float:
    """The logprob of ``token`` as the chosen token."""
    return round(-0.25 * _fraction(token), 6)


def alternatives(token: str, count: int) -> List[Tuple[str, float]]:
    """``count`` other candidates for ``token``'s position, most likely first."""
    if count <= 0:
        return []
    stripped = token.strip()
    variants = (
        stripped,
        " " + stripped,
        token.lower(),
        token.upper(),
        token.capitalize(),
        token + "s",
        *_COMMON,
    )
    out: List[Tuple[str, float]] = []
    seen = {token}
    base = logprob(token)
    for candidate in variants:
        if candidate and candidate not in seen:
            seen.add(candidate)
            rank = len(out) + 1
            out.append((candidate, round(base - 1.5 * rank - _fraction(candidate), 6)))
            if len(out) == count:
                break
    return out


def token_entry(token: str, top: int) -> Dict[str, Any]:
    """A chat ``ChatCompletionTokenLogprob``: the token, its logprob and bytes, and ``top`` alternatives
    (the token itself first, as the most likely)."""
    own = logprob(token)
    ranked = [(token, own), *alternatives(token, top - 1)] if top else []
    return {
        "token": token,
        "logprob": own,
        "bytes": list(token.encode("utf-8", "surrogatepass")),
        "top_logprobs": [
            {"token": t, "logprob": lp, "bytes": list(t.encode("utf-8", "surrogatepass"))} for t, lp in ranked
        ],
    }
