"""Credentials in requests: which headers carry them, reading a bearer key, and masking them.

Keys are never logged, traced or journaled in clear: the journal stores headers masked with
``mask_header``, errors show keys as the real API does (``mask_key``), and spans redact
``SECRET_HEADERS``.
"""

from __future__ import annotations

# Headers that carry credentials: masked in the journal, redacted in spans, never logged.
SECRET_HEADERS = frozenset(
    ("authorization", "api-key", "x-api-key", "openai-api-key", "openai-organization", "openai-project")
)


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
    if name.lower() not in SECRET_HEADERS:
        return value
    scheme, _, key = value.partition(" ")
    shown = key if key else scheme
    masked = shown[:3] + "..." + shown[-4:] if len(shown) > 10 else "***"
    return f"{scheme} {masked}" if key else masked
