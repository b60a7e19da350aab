"""The request journal and its admin endpoints, in-process."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Dict

import pytest
import webtest

from mokku import config
from mokku.server.app import App

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "journal me"}]


def build(tmp_path: Path, **env: str) -> webtest.TestApp:
    settings = config.load({"MOKKU_STATE": str(tmp_path / "state.sqlite3"), "MOKKU_JOURNAL": "1", **env})
    return webtest.TestApp(App(settings), extra_environ={"wsgi.multithread": True})


def entries(app: webtest.TestApp, query: str = "", headers: Dict[str, str] = {}) -> list:  # noqa: B006
    return app.get("/mokku/requests" + query, headers=headers).json["data"]


def test_chat_entry(tmp_path: Path) -> None:
    app = build(tmp_path)
    body = app.post_json(
        CHAT, {"model": "gpt-4o", "messages": HI}, headers={"Authorization": "Bearer sk-secret-key-123456789"}
    ).json
    (entry,) = entries(app)
    assert entry["method"] == "POST" and entry["path"] == CHAT and entry["route"] == CHAT
    assert entry["status"] == 200 and entry["duration_ms"] >= 0
    assert entry["body"] == {"model": "gpt-4o", "messages": HI}
    assert entry["model"] == "gpt-4o"
    assert entry["response_id"] == body["id"]
    assert entry["finish_reasons"] == ["stop"]
    assert entry["usage"] == body["usage"]
    assert entry["fault"] is None
    assert "sk-secret-key-123456789" not in str(entry)
    assert entry["headers"]["authorization"].startswith("Bearer sk-...")


def test_stream_and_fault_entries(tmp_path: Path) -> None:
    app = build(tmp_path)
    app.post_json(CHAT, {"model": "gpt-4o", "messages": HI, "stream": True})
    app.post_json(CHAT, {"model": "rate-limit-error", "messages": HI}, status=429)
    streamed, limited = entries(app)
    assert streamed["stream"] == {"outcome": "completed", "events": 6}  # role, 3 tokens, finish, [DONE]
    assert limited["status"] == 429 and limited["fault"] == "rate_limit"


def test_filters_and_clear(tmp_path: Path) -> None:
    app = build(tmp_path)
    app.post_json(CHAT, {"model": "a", "messages": HI})
    before = time.time()
    app.post_json(CHAT, {"model": "b", "messages": HI})
    app.post_json("/v1/embeddings", {"model": "b", "input": "x"})
    assert [e["model"] for e in entries(app, "?model=b")] == ["b", "b"]
    assert [e["path"] for e in entries(app, "?path=/v1/embeddings")] == ["/v1/embeddings"]
    assert len(entries(app, f"?since={before}")) == 2
    assert [e["model"] for e in entries(app, "?limit=1")] == ["b"]
    app.get("/mokku/requests?limit=0", status=400)
    app.get("/mokku/requests?since=yesterday", status=400)
    assert app.delete("/mokku/requests").json["deleted"] is True
    assert entries(app) == []


def test_admin_health_and_models_lists(tmp_path: Path) -> None:
    app = build(tmp_path)
    app.get("/health")
    app.get("/mokku/requests")
    app.get("/v1/models")
    assert [e["path"] for e in entries(app)] == ["/v1/models"]


def test_bounded(tmp_path: Path) -> None:
    app = build(tmp_path, MOKKU_JOURNAL_SIZE="5")
    for index in range(130):
        app.post_json(CHAT, {"model": f"m{index}", "messages": HI})
    assert [e["model"] for e in entries(app, "?limit=50")] == [f"m{i}" for i in range(125, 130)]
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM requests").fetchone()[0] <= 5 + 100


def test_admin_token(tmp_path: Path) -> None:
    app = build(tmp_path, MOKKU_ADMIN_TOKEN="admin-secret")
    app.get("/mokku/requests", status=401)
    app.get("/mokku/requests", headers={"Authorization": "Bearer wrong"}, status=401)
    assert app.get("/mokku/requests", headers={"Authorization": "Bearer admin-secret"}).status_int == 200


def test_admin_off_and_journal_off(tmp_path: Path) -> None:
    off = build(tmp_path, MOKKU_ADMIN="0")
    assert off.get("/mokku/requests", status=404).json["error"]["message"].startswith("Invalid URL")
    no_journal = build(tmp_path, MOKKU_JOURNAL="0")
    no_journal.post_json(CHAT, {"model": "m", "messages": HI})
    assert no_journal.get("/mokku/requests", status=404).json["error"]["code"] == "journal_off"


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_bad_flags(value: str) -> None:
    with pytest.raises(config.ConfigError):
        config.load({"MOKKU_JOURNAL": value})
