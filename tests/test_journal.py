"""The request journal and its admin endpoints, in-process."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import pytest
import webtest

from mokku import config
from mokku.server.app import App
from mokku.store.sqlite import SqliteJournal

from . import wsgi

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "journal me"}]


def build(where: Union[Path, Dict[str, str]], **env: str) -> webtest.TestApp:
    """An app on a state file in ``where``, or on the store ``where`` names (``store_env``)."""
    store = where if isinstance(where, dict) else {"MOKKU_STATE": str(where / "state.sqlite3")}
    settings = config.load({**store, "MOKKU_JOURNAL": "1", **env})
    return webtest.TestApp(App(settings), extra_environ={"wsgi.multithread": True})


def entries(app: webtest.TestApp, query: str = "", headers: Dict[str, str] = {}) -> list:  # noqa: B006
    return app.get("/mokku/requests" + query, headers=headers).json["data"]


def test_chat_entry(store_env: Dict[str, str]) -> None:
    app = build(store_env)
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


def test_stream_and_fault_entries(store_env: Dict[str, str]) -> None:
    app = build(store_env)
    app.post_json(CHAT, {"model": "gpt-4o", "messages": HI, "stream": True})
    app.post_json(CHAT, {"model": "rate-limit-error", "messages": HI}, status=429)
    streamed, limited = entries(app)
    assert streamed["stream"] == {"outcome": "completed", "events": 6}  # role, 3 tokens, finish, [DONE]
    assert limited["status"] == 429 and limited["fault"] == "rate_limit"


def test_a_stream_a_fault_ends_with_an_error_is_failed(store_env: Dict[str, str]) -> None:
    app = build(store_env)
    app.post_json(CHAT, {"model": "gpt-4o@stream_error:2", "messages": HI, "stream": True})
    (entry,) = entries(app)
    assert entry["stream"] == {"outcome": "failed", "events": 3}  # role, a token, the error event


def test_filters_and_clear(store_env: Dict[str, str]) -> None:
    app = build(store_env)
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
    for odd in ("nan", "inf", "-inf"):  # each store read nan its own way: none, or every entry
        assert app.get(f"/mokku/requests?since={odd}", status=400).json["error"]["param"] == "since"
    assert app.delete("/mokku/requests").json["deleted"] is True
    assert entries(app) == []


def test_admin_health_and_models_lists(store_env: Dict[str, str]) -> None:
    app = build(store_env)
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


def test_reads_see_the_newest_entries_only(tmp_path: Path) -> None:
    """Exactly the newest ``MOKKU_JOURNAL_SIZE``, whatever older ones wait for the next prune (here
    two batches that pass no hundred: nothing is pruned yet)."""
    store = SqliteJournal(str(tmp_path / "state.sqlite3"), 50, 10**9)
    for first, count in ((0, 60), (60, 30)):
        store.append(
            [
                (float(n), CHAT, f"m{n}", 10, json.dumps({"model": f"m{n}"}), None)
                for n in range(first, first + count)
            ]
        )
    newest = [f"m{n}" for n in range(40, 90)]
    for after in (None, 0):
        page = store.page(None, None, None, 1000, after, None, None)
        assert [entry["model"] for entry in page.entries] == newest and not page.has_more
    assert store.page(None, None, None, 1000, None, page.entries[0]["id"], None).entries == []
    assert store.count() == 50 and [entry["model"] for entry in store.scan()] == newest


def test_admin_token(store_env: Dict[str, str]) -> None:
    app = build(store_env, MOKKU_ADMIN_TOKEN="admin-secret")
    app.get("/mokku/requests", status=401)
    app.get("/mokku/requests", headers={"Authorization": "Bearer wrong"}, status=401)
    assert app.get("/mokku/requests", headers={"Authorization": "Bearer admin-secret"}).status_int == 200


def test_admin_off_and_journal_off(store_env: Dict[str, str]) -> None:
    off = build(store_env, MOKKU_ADMIN="0")
    assert off.get("/mokku/requests", status=404).json["error"]["message"].startswith("Invalid URL")
    no_journal = build(store_env, MOKKU_JOURNAL="0")
    no_journal.post_json(CHAT, {"model": "m", "messages": HI})
    assert no_journal.get("/mokku/requests", status=404).json["error"]["code"] == "journal_off"


def test_a_read_after_a_streams_last_byte_sees_it_before_the_server_closes_it(
    store_env: Dict[str, str],
) -> None:
    """The client may ask the journal as soon as ``[DONE]`` arrives, while the server has yet to close
    the stream (where its entry is written): the read waits for the entry."""
    app = App(config.load({**store_env, "MOKKU_JOURNAL": "1"}))
    body = wsgi.post(app, CHAT, {"model": "streamed", "messages": HI, "stream": True})
    assert b"".join(body).endswith(b"data: [DONE]\n\n")  # every byte sent; not closed yet
    journal = app.journal
    assert journal is not None
    seen: list = []
    reader = threading.Thread(target=lambda: seen.extend(journal.entries()))
    reader.start()
    time.sleep(0.3)  # the reader is waiting (were it not, it would have read no entry by now)
    body.close()  # type: ignore[attr-defined]
    reader.join(10)
    assert [(entry["model"], entry["stream"]["outcome"]) for entry in seen] == [("streamed", "completed")]


def test_the_journal_is_on_unless_turned_off(tmp_path: Path) -> None:
    app = webtest.TestApp(App(config.load({"MOKKU_STATE": str(tmp_path / "state.sqlite3")})))
    app.post_json(CHAT, {"model": "m", "messages": HI})
    assert [entry["model"] for entry in entries(app)] == ["m"]


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_bad_flags(value: str) -> None:
    with pytest.raises(config.ConfigError):
        config.load({"MOKKU_JOURNAL": value})


def test_large_bodies_are_kept_as_a_marker(store_env: Dict[str, str]) -> None:
    import hashlib

    app = build(store_env, MOKKU_JOURNAL_BODY_BYTES="1000")
    small = {"model": "gpt-4o", "messages": HI}
    large = {"model": "gpt-4o", "messages": [{"role": "user", "content": "é" * 2000}]}
    app.post_json(CHAT, small)
    raw = json.dumps(large).encode()
    app.post(CHAT, raw, headers={"Content-Type": "application/json"})
    kept, cut = entries(app)
    assert kept["body"] == small
    assert cut["body"] == {
        "truncated": True,
        "bytes": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "prefix": raw[:1024].decode("utf-8", "replace"),
    }
    assert cut["model"] == "gpt-4o"


def test_bounded_in_bytes(tmp_path: Path) -> None:
    app = build(tmp_path, MOKKU_JOURNAL_BYTES="200000")
    for index in range(60):
        app.post_json(CHAT, {"model": f"m{index}", "messages": [{"role": "user", "content": "x" * 20_000}]})
    assert [e["model"] for e in entries(app, "?limit=1000")][-1] == "m59"  # (a read waits for the writes)
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:
        held, count = db.execute("SELECT SUM(bytes), COUNT(*) FROM requests").fetchone()
    assert held <= 200_000 + 2 * 21_000 and count >= 5


def test_paging_and_its_bounds(store_env: Dict[str, str]) -> None:
    app = build(store_env)
    for index in range(7):
        app.post_json(CHAT, {"model": f"m{index}", "messages": HI})
    page = app.get("/mokku/requests?limit=3").json
    assert [e["model"] for e in page["data"]] == ["m4", "m5", "m6"] and page["has_more"] is True
    assert page["first_id"] == page["data"][0]["id"] and page["last_id"] == page["data"][-1]["id"]
    back = app.get(f"/mokku/requests?limit=3&before={page['first_id']}").json
    assert [e["model"] for e in back["data"]] == ["m1", "m2", "m3"] and back["has_more"] is True
    first = app.get("/mokku/requests?limit=2&after=0").json
    assert [e["model"] for e in first["data"]] == ["m0", "m1"] and first["has_more"] is True
    rest = app.get(f"/mokku/requests?after={first['last_id']}&limit=1000").json
    assert [e["model"] for e in rest["data"]] == [f"m{i}" for i in range(2, 7)] and rest["has_more"] is False
    assert len(app.get("/mokku/requests?limit=5000").json["data"]) == 7
    for query in ("after=-1", "before=1.5", "after=x", "limit=nan"):
        app.get("/mokku/requests?" + query, status=400)


def test_odd_bodies_are_journaled(store_env: Dict[str, str]) -> None:
    """A lone surrogate (valid JSON, not UTF-8) and a model that is not a string: answered, and kept."""
    app = build(store_env)
    app.post(
        CHAT,
        b'{"model": "m\\ud800", "messages": [{"role": "user", "content": "\\udfff"}]}',
        headers={"Content-Type": "application/json"},
    )
    app.post_json(CHAT, {"model": ["not", "a", "string"], "messages": HI}, status=400)
    lone, listed = entries(app)
    assert lone["body"]["messages"][0]["content"] == "\udfff" and lone["model"] == "m\ud800"
    assert listed["status"] == 400 and listed["model"] == ["not", "a", "string"]


def test_bodies_in_other_encodings_are_journaled_as_parsed(store_env: Dict[str, str]) -> None:
    """JSON may come with a UTF-8 BOM, or as UTF-16 or UTF-32: the entry keeps what was parsed, and the
    journal and the verdict read back."""
    text = json.dumps({"model": "gpt-4o", "messages": HI})
    for raw in (b"\xef\xbb\xbf" + text.encode(), text.encode("utf-16-le"), text.encode("utf-32")):
        app = build(store_env)
        app.delete("/mokku/requests")
        app.post(CHAT, raw, headers={"Content-Type": "application/json"})
        (entry,) = entries(app)
        assert entry["body"] == {"model": "gpt-4o", "messages": HI}
        assert app.get("/mokku/verdict").status_int == 200


def test_a_broken_state_file_costs_the_entry_not_the_request(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    app = build(tmp_path)
    app.post_json(CHAT, {"model": "gpt-4o", "messages": HI})
    assert len(entries(app)) == 1  # written (a read waits for that)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{state}{suffix}").unlink()
    state.write_bytes(b"not a database" * 1000)
    assert build(tmp_path).get("/health").status_int == 200  # an app boots over it: nothing reads it yet
    assert app.post_json(CHAT, {"model": "gpt-4o", "messages": HI}).json["choices"][0]["message"]["content"]
    for method in (app.get, app.delete):
        error = method("/mokku/requests", status=503).json["error"]
        assert error["code"] == "state_unavailable" and str(state) in error["message"]
    assert app.get("/mokku/verdict", status=503).json["error"]["type"] == "server_error"
    state.unlink()  # mended: a new journal
    app.post_json(CHAT, {"model": "gpt-4o", "messages": HI})
    assert len(entries(app)) == 1


@pytest.mark.parametrize(
    "waits, warned",
    [
        ((0.5, 0.75), False),  # the SDKs' doubling with the most jitter: 0.5 s, then 1 s less a quarter
        ((0.375, 1.0), False),
        ((0.25, 0.5, 1.0), False),
        ((0.5, 0.5), True),  # a fixed pause
        ((1.0, 0.0), True),
    ],
)
def test_no_backoff_spares_the_sdks_jittered_doubling(waits: tuple, warned: bool) -> None:
    from mokku.control.verdict import judge

    entries, now = [], 1000.0
    for index, wait in enumerate((0.0, *waits)):
        now += wait + 0.01  # each attempt takes 10 ms
        headers = {"authorization": "Bearer sk-...retry"}
        entry = {"id": index, "time": now, "duration_ms": 10, "status": 500, "path": CHAT, "body": {}}
        entries.append({**entry, "headers": headers})
    (client,) = judge(entries)["clients"]
    assert ("no_backoff" in [finding["kind"] for finding in client["findings"]]) is warned


def test_the_verdict_tells_requests_apart_by_method_query_and_unparsed_body(
    store_env: Dict[str, str],
) -> None:
    """A retry is the same request sent again: a 404 read and a 404 delete of one id, a page asked
    again with a smaller limit, two different bodies that are not JSON are not retries; the same
    junk sent twice is."""
    app = build(store_env)
    app.delete("/mokku/requests")
    app.get("/v1/responses/resp_gone", status=404)
    app.delete("/v1/responses/resp_gone", status=404)
    app.get("/v1/chat/completions?limit=101&key=secret-key", status=400)
    app.get("/v1/chat/completions?limit=100&key=secret-key")
    junk = {"Content-Type": "application/json"}
    app.post(CHAT, b'{"model": oops', headers=junk, status=400)
    app.post(CHAT, b"not json at all", headers=junk, status=400)
    assert app.get("/mokku/verdict").json["passed"]
    listed = entries(app)
    assert listed[2]["query"] == "limit=101&key=REDACTED" and listed[0]["query"] is None
    assert "secret-key" not in json.dumps(listed)
    unparsed = listed[5]["body"]
    assert (
        unparsed["unparsed"] is True and unparsed["bytes"] == 15 and unparsed["prefix"] == "not json at all"
    )
    app.post(CHAT, b"not json at all", headers=junk, status=400)
    (finding,) = app.get("/mokku/verdict").json["clients"][0]["findings"]
    assert finding["kind"] == "retried_non_retryable"
    assert [evidence["id"] for evidence in finding["evidence"]] == [listed[5]["id"], listed[5]["id"] + 1]


def test_the_same_request_after_a_success_is_a_new_call_not_a_retry() -> None:
    """A test suite sends one prompt in many tests, a client polls a background response: each
    success ends a call, so neither is a retry storm; twelve failures in a row still are."""
    from mokku.control.verdict import judge

    def attempts(statuses: List[int]) -> List[Dict[str, Any]]:
        return [
            {"id": index, "time": 1000.0 + index, "duration_ms": 10, "status": status, "path": CHAT}
            for index, status in enumerate(statuses)
        ]

    assert judge(attempts([200] * 12))["passed"]
    assert judge(attempts([500, 200] * 6))["passed"]
    (client,) = judge(attempts([500] * 11 + [200]))["clients"]
    assert "retry_storm" in [finding["kind"] for finding in client["findings"]]


@pytest.mark.parametrize("header", ["authorization", "x-api-key", "api-key", "x-goog-api-key"])
def test_the_verdict_tells_clients_apart_by_the_key_header_of_each_dialect(header: str) -> None:
    """Two clients with keys of their own, each failing once and retrying as asked: neither is
    judged by the other's attempts."""
    from mokku.control.verdict import judge

    entries = []
    for index, (key, at) in enumerate(
        [("sk-...aaaa", 1000.0), ("sk-...bbbb", 1000.1), ("sk-...aaaa", 1001.05), ("sk-...bbbb", 1001.15)]
    ):
        status, retry = (429, 1000) if at < 1001 else (200, None)
        entry = {"id": index, "time": at, "duration_ms": 10, "status": status, "path": CHAT, "body": {}}
        entries.append({**entry, "retry_after_ms": retry, "headers": {header: key}})
    verdict = judge(entries)
    assert [client["client"] for client in verdict["clients"]] == ["sk-...aaaa", "sk-...bbbb"]
    assert verdict["passed"], verdict


def test_the_verdict_reads_the_journal_a_few_entries_at_a_time(tmp_path: Path) -> None:
    from mokku.control.journal import Journal

    journal = Journal(str(tmp_path / "state.sqlite3"), 10_000)
    for index in range(600):
        journal.record(
            {"time": float(index), "path": CHAT, "model": "m", "status": 200, "body": {"i": index}}
        )
    scanned = journal.scan()
    assert next(scanned)["body"] == {"i": 0}
    assert [entry["body"]["i"] for entry in scanned] == list(range(1, 600))


def test_entries_in_either_stored_form_read_back(tmp_path: Path) -> None:
    """Entries are stored in marshal's format; JSON text (an earlier version's rows, or an entry
    holding a type marshal does not take) reads back the same."""
    from collections import OrderedDict

    from mokku.control.journal import Journal

    path = tmp_path / "state.sqlite3"
    journal = Journal(str(path), 100)
    journal.record({"time": 1.0, "path": CHAT, "model": "m", "status": 200, "usage": {"total_tokens": 3}})
    journal.record(
        {"time": 2.0, "path": CHAT, "model": "m", "status": 200, "usage": OrderedDict(total_tokens=4)}
    )
    journal.settle()
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO requests (time, path, model, bytes, entry, body) VALUES (3, ?, 'm', 60, ?, ?)",
            (CHAT, json.dumps({"time": 3.0, "path": CHAT, "status": 200, "body": None}), '{"a":"\\ud800"}'),
        )
        stored = [row[0] for row in db.execute("SELECT entry FROM requests ORDER BY id")]
    assert isinstance(stored[0], bytes) and isinstance(stored[1], str) and isinstance(stored[2], str)
    first, second, third = journal.entries(CHAT)
    assert first["usage"] == {"total_tokens": 3} and second["usage"] == {"total_tokens": 4}
    assert third["time"] == 3.0 and third["body"] == {"a": "\ud800"}
    assert [first["id"], second["id"], third["id"]] == sorted({first["id"], second["id"], third["id"]})


@pytest.mark.parametrize(
    "faults, warned",
    [
        (["stream_drop"], True),
        (["stream_drop"] * 3, False),  # asked again until its retries ran out
        (["stream_drop", None, "stream_error"], True),  # the last one was taken as it came
    ],
)
def test_a_broken_stream_asked_for_again_is_no_accepted_one(
    faults: List[Optional[str]], warned: bool
) -> None:
    """An SDK that retries a dropped stream until its retries run out did ask again."""
    from mokku.control.verdict import judge

    entries = []
    for index, fault in enumerate(faults):
        entry = {"id": index, "time": 1000.0 + index, "duration_ms": 10, "status": 200, "path": CHAT}
        body = {"model": "gpt-4o", "messages": HI, "stream": True}
        headers = {"authorization": "Bearer sk-...drop"}
        entries.append({**entry, "body": body, "headers": headers, "stream": True, "fault": fault})
    (client,) = judge(entries)["clients"]
    assert ("accepted_broken_stream" in [finding["kind"] for finding in client["findings"]]) is warned
