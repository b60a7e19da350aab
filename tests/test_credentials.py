"""Credentials are recognised by name: masked in the journal, redacted in spans' URLs."""

from __future__ import annotations

from pathlib import Path

import pytest
import webtest

from mokku import config
from mokku.credentials import is_secret, mask_header, redact_query, redact_text
from mokku.server.app import App

SECRET = "sk-secret-value-0123456789"
CREDENTIAL_HEADERS = [
    "Authorization",
    "Proxy-Authorization",
    "Cookie",
    "X-Api-Key",
    "Api-Key",
    "X-Goog-Api-Key",
    "Ocp-Apim-Subscription-Key",
    "X-Auth-Token",
    "OpenAI-Organization",
    "OpenAI-Project",
    "X-Amz-Security-Token",
    "X-Session-Id",
    "X-Amzn-Bedrock-Hmac",
]


@pytest.mark.parametrize("name", CREDENTIAL_HEADERS)
def test_credential_headers_are_recognised_by_name(name: str) -> None:
    assert is_secret(name) and is_secret(name.lower())
    assert SECRET not in mask_header(name, SECRET) and SECRET not in mask_header(name, f"Bearer {SECRET}")


@pytest.mark.parametrize(
    "name", ["Content-Type", "User-Agent", "X-Request-Id", "X-Stainless-Retry-Count", "X-Mokku-Token-Ms"]
)
def test_other_headers_are_kept(name: str) -> None:
    assert not is_secret(name) and mask_header(name, "value") == "value"


def test_query_credentials_are_redacted() -> None:
    assert (
        redact_query(f"api-version=2024-10-21&api-key={SECRET}") == "api-version=2024-10-21&api-key=REDACTED"
    )
    assert redact_query(f"key={SECRET}&alt=sse") == "key=REDACTED&alt=sse"
    assert redact_query("alt=sse&limit=5") == "alt=sse&limit=5"
    # Only the credentials' values change: the rest stays byte for byte, however it is written.
    assert redact_query(f"a=%ZZ&b=x+y;c&key={SECRET}&d=%41") == "a=%ZZ&b=x+y;c&key=REDACTED&d=%41"
    assert redact_query(f"k%00ey={SECRET}&api%2Dkey={SECRET}") == "k%00ey=REDACTED&api%2Dkey=REDACTED"
    assert redact_query(f"{SECRET}&stream") == "REDACTED&stream"  # a key sent bare
    assert redact_query(f"a=1;key={SECRET};b=2") == "a=1;key=REDACTED;b=2"
    line = f"Invalid HTTP request line: 'GET /v1/models?alt=sse&key={SECRET}\\x01 HTTP/1.1'"
    assert redact_text(line) == "Invalid HTTP request line: 'GET /v1/models?alt=sse&key=REDACTED HTTP/1.1'"


def test_the_journal_masks_every_credential_header(tmp_path: Path) -> None:
    settings = config.load({"MOKKU_STATE": str(tmp_path / "state.sqlite3"), "MOKKU_JOURNAL": "1"})
    app = webtest.TestApp(App(settings), extra_environ={"wsgi.multithread": True})
    headers = {name: SECRET for name in CREDENTIAL_HEADERS}
    headers["X-Mokku-Token-Ms"] = "0"
    app.post_json(
        "/v1/chat/completions",
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        headers=headers,
    )
    (entry,) = app.get("/mokku/requests").json["data"]
    assert SECRET not in str(entry)
    assert entry["headers"]["x-mokku-token-ms"] == "0"
    assert {name.lower() for name in CREDENTIAL_HEADERS} <= set(entry["headers"])
