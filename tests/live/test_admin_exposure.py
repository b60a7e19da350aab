"""The admin surface on an address other machines reach: off without MOKKU_ADMIN_TOKEN (403, a
warning at start), on with the token or with MOKKU_ADMIN=open (with a warning), on both entry
points; untouched on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Dict, Iterator, Optional

import pytest

from mokku import config
from mokku.control.admin import exposure_warning, is_loopback

from .. import servers
from ..servers import ENTRY_POINTS, LiveServer

CHAT = "/v1/chat/completions"
RULE = {"match": {"contains": "pay"}, "reply": {"content": "Payment approved."}}
ADMIN_CALLS = (
    ("POST", "/mokku/scenarios", RULE),
    ("GET", "/mokku/scenarios", None),
    ("DELETE", "/mokku/scenarios", None),
    ("GET", "/mokku/requests", None),
    ("DELETE", "/mokku/requests", None),
    ("GET", "/mokku/verdict", None),
)


@pytest.fixture(params=ENTRY_POINTS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def start(kind: str) -> Iterator[Any]:
    started = []

    def run(**env: str) -> LiveServer:
        server = LiveServer(kind, env={"MOKKU_JOURNAL": "1", **env})
        started.append(server)
        return server

    yield run
    for server in started:
        server.close()


def call(server: LiveServer, method: str, path: str, payload: Any, token: Optional[str] = None) -> Any:
    headers: Dict[str, str] = {"Authorization": f"Bearer {token}"} if token else {}
    body = None if payload is None else json.dumps(payload).encode()
    if body is not None:
        headers["Content-Type"] = "application/json"
    status, _, data = servers.request(method, server.url + path, body, headers)
    return status, json.loads(data)


def chat(server: LiveServer, text: str, key: str = "sk-anything") -> str:
    status, body = call(
        server, "POST", CHAT, {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}, key
    )
    assert status == 200, body
    return body["choices"][0]["message"]["content"]


def test_a_public_address_without_a_token(start: Any) -> None:
    """Bound to 0.0.0.0 with MOKKU_API_KEY set, as the Docker image runs: nobody scripts the replies."""
    server = start(MOKKU_HOST="0.0.0.0", MOKKU_API_KEY="sk-real-key")
    for method, path, payload in ADMIN_CALLS:
        for token in (None, "sk-real-key"):
            status, body = call(server, method, path, payload, token)
            assert status == 403, (method, path, body)
            error = body["error"]
            assert error["code"] == "admin_disabled" and "MOKKU_ADMIN_TOKEN" in error["message"]
            assert "0.0.0.0" in error["message"]
    assert chat(server, "please pay me", "sk-real-key") == "please pay me"
    assert "WARNING" in server.output() and "MOKKU_ADMIN_TOKEN" in server.output()
    cli = subprocess.run(
        [sys.executable, "-m", "mokku", "verdict", "--url", server.url],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "MOKKU_ADMIN_TOKEN": ""},
    )
    assert cli.returncode == 2 and "403" in cli.stderr and "MOKKU_ADMIN_TOKEN" in cli.stderr


def test_a_public_address_with_a_token(start: Any) -> None:
    server = start(MOKKU_HOST="0.0.0.0", MOKKU_ADMIN_TOKEN="admin-secret")
    assert call(server, "POST", "/mokku/scenarios", RULE)[0] == 401
    assert call(server, "POST", "/mokku/scenarios", RULE, "wrong")[0] == 401
    assert call(server, "POST", "/mokku/scenarios", RULE, "admin-secret")[0] == 200
    assert chat(server, "please pay me") == "Payment approved."
    assert "admin endpoints" not in server.output()


def test_a_public_address_opened_on_purpose(start: Any) -> None:
    server = start(MOKKU_HOST="0.0.0.0", MOKKU_ADMIN="open")
    assert call(server, "POST", "/mokku/scenarios", RULE)[0] == 200
    assert chat(server, "please pay me") == "Payment approved."
    assert "WARNING" in server.output() and "MOKKU_ADMIN=open" in server.output()


def test_loopback_is_unchanged(start: Any) -> None:
    server = start()
    assert call(server, "POST", "/mokku/scenarios", RULE)[0] == 200
    assert chat(server, "please pay me") == "Payment approved."
    assert "admin endpoints" not in server.output()


def test_gunicorn_bound_elsewhere_by_its_own_flags() -> None:
    """MOKKU_HOST says loopback, gunicorn's --bind says 0.0.0.0: the address it listens on counts."""
    server = LiveServer("gunicorn", env={"GUNICORN_CMD_ARGS": "--bind 0.0.0.0:0"})
    try:
        status, body = call(server, "POST", "/mokku/scenarios", RULE)
        assert status == 403 and body["error"]["code"] == "admin_disabled"
        assert "MOKKU_ADMIN_TOKEN" in server.output()
    finally:
        server.close()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("mokku.internal", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_settings_and_warning() -> None:
    opened = config.load({"MOKKU_ADMIN": "open"})
    assert opened.admin and opened.admin_open
    assert not config.load({"MOKKU_ADMIN": "0"}).admin
    with pytest.raises(config.ConfigError):
        config.load({"MOKKU_ADMIN": "maybe"})
    assert exposure_warning(config.load({}), ["127.0.0.1"]) is None
    assert "MOKKU_ADMIN_TOKEN" in (exposure_warning(config.load({}), ["0.0.0.0"]) or "")
    assert exposure_warning(config.load({"MOKKU_ADMIN_TOKEN": "t"}), ["0.0.0.0"]) is None
    assert exposure_warning(config.load({"MOKKU_ADMIN": "0"}), ["0.0.0.0"]) is None
    assert "MOKKU_ADMIN=open" in (exposure_warning(opened, ["0.0.0.0"]) or "")
