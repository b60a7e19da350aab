"""Credentials in requests: which headers and query parameters carry them, bearer keys, masking.

Keys are never logged, traced or journaled in clear. A header or query parameter is taken for a
credential by its name: any name holding one of ``SECRET_WORDS`` (``Authorization``,
``Proxy-Authorization``, ``Cookie``, ``X-Api-Key``, ``X-Goog-Api-Key``, ``Ocp-Apim-Subscription-Key``,
``X-Auth-Token``, ``?api-key=``, ``?key=`` ...), so that a provider's new header is masked too. The
journal stores such values masked (``mask_header``), errors show keys as the real API does
(``mask_key``), and spans redact them (``SECRET_WORDS`` for headers, ``redact_query`` for URLs).
"""

from __future__ import annotations

import functools
import re
from urllib.parse import unquote_plus

# Words that make a header or query parameter a credential, wherever they stand in its name.
SECRET_WORDS = ("auth", "key", "token", "secret", "cookie", "password", "passwd", "session", "credential",
                "signature", "hmac", "organization", "project")  # fmt: skip
_SECRET_NAME = re.compile("|".join(SECRET_WORDS), re.IGNORECASE)


@functools.lru_cache(maxsize=1024)
def is_secret(name: str) -> bool:
    """Whether a header or query parameter named ``name`` carries a credential (mokku's own
    ``X-Mokku-*`` headers, such as ``X-Mokku-Token-Ms``, do not)."""
    return _SECRET_NAME.search(name) is not None and not name.lower().startswith("x-mokku-")


def bearer_key(authorization: str) -> str:
    """The key of an ``Authorization: Bearer <key>`` header value, or "" for any other scheme."""
    scheme, _, key = authorization.strip().partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""


def mask_key(key: str) -> str:
    """The key as the real API shows it in errors: its start and its last 4 characters."""
    if len(key) < 12:
        return "*" * len(key)  # too short to show any of it safely
    return key[:6] + "*" * min(len(key) - 10, 40) + key[-4:]


def mask_header(name: str, value: str) -> str:
    """A header's value as the journal keeps it: credentials cut to a recognisable stub."""
    return mask_secret(value) if is_secret(name) else value


def mask_secret(value: str) -> str:
    """A credential's value cut to a recognisable stub (its scheme kept: ``Bearer sk-...abcd``)."""
    scheme, _, key = value.partition(" ")
    shown = key if key else scheme
    masked = shown[:3] + "..." + shown[-4:] if len(shown) > 10 else "***"
    return f"{scheme} {masked}" if key else masked


def redact_query(query: str) -> str:
    """A query string with the value of each credential parameter replaced by ``REDACTED``, as is
    a long parameter without a value (a key sent bare, ``?sk-...``); the rest left as it came."""
    if not query:
        return query
    parts = _SEPARATORS.split(query)  # each piece, then the separator after it, ...
    return "".join(part if index % 2 else _redacted(part) for index, part in enumerate(parts))


def redact_text(text: str) -> str:
    """A log message with the query of every URL or request line in it redacted (``redact_query``):
    a refused request's line is logged as it came."""
    return _QUERY_IN_TEXT.sub(lambda found: "?" + redact_query(found.group(1)), text) if "?" in text else text


_SEPARATORS = re.compile("([&;])")  # ``;`` too: some servers and proxies split a query there
_QUERY_IN_TEXT = re.compile(r"""\?([^\s'"]*)""")
_NOT_LETTERS = re.compile("[^A-Za-z]+")
_BARE_FLAG_CHARS = 16  # a parameter without a value up to this long is a flag, not a key


def _redacted(part: str) -> str:
    name, equals, _ = part.partition("=")
    if not equals:
        return part if len(part) <= _BARE_FLAG_CHARS else "REDACTED"
    named = unquote_plus(name)
    if is_secret(named) or is_secret(_NOT_LETTERS.sub("", named)):  # ``k%00ey``, ``api%2Dkey``
        return name + "=REDACTED"
    return part
