"""Cassettes in-process: which headers a recording keeps, how a broken recording is refused."""

from __future__ import annotations

import pytest

from mokku.record.cassettes import secret_header


@pytest.mark.parametrize(
    "name",
    [
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
        "anthropic-ratelimit-input-tokens-limit",
        "anthropic-ratelimit-output-tokens-remaining",
        "anthropic-ratelimit-tokens-reset",
        "x-ratelimit-remaining-requests",
        "content-type",
    ],
)
def test_rate_limits_counted_in_tokens_are_kept(name: str) -> None:
    assert not secret_header(name)


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "x-api-key",
        "x-goog-api-key",
        "set-cookie",
        "x-amz-security-token",
        "x-auth-token",
        "openai-organization",
        "www-authenticate",
        "x-session-token",
    ],
)
def test_credentials_are_never_kept(name: str) -> None:
    assert secret_header(name)
