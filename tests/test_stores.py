"""The shared state on each store (the embedded state file, a real Redis): several apps over one store
act as the replicas of one deployment: scripted replies fire exactly ``times`` across them, one rate
limit holds across them, the journal read from any one shows every request exactly once."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List

import pytest
import webtest

from mokku import config
from mokku.server.app import App
from mokku.store.redis import Redis

CHAT = "/v1/chat/completions"


def replicas(env: Dict[str, str], count: int = 3, **extra: str) -> List[webtest.TestApp]:
    settings = config.load({**env, "MOKKU_ADMIN": "1", "MOKKU_JOURNAL": "1", **extra})
    return [webtest.TestApp(App(settings), extra_environ={"wsgi.multithread": True}) for _ in range(count)]


def say(app: webtest.TestApp, text: str, **headers: str) -> Any:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}
    return app.post_json(CHAT, body, headers=headers, expect_errors=True)


def spread(apps: List[webtest.TestApp], count: int, **headers: str) -> List[Any]:
    with ThreadPoolExecutor(max_workers=30) as pool:
        return list(pool.map(lambda n: say(apps[n % len(apps)], f"call {n}", **headers), range(count)))


def test_a_rule_fires_exactly_times_across_replicas(store_env: Dict[str, str]) -> None:
    apps = replicas(store_env)
    rule = {"match": {"contains": "call"}, "reply": {"content": "scripted"}, "times": 3}
    assert apps[0].post_json("/mokku/scenarios", rule).status_int == 200
    answers = [r.json["choices"][0]["message"]["content"] for r in spread(apps, 90)]
    assert answers.count("scripted") == 3
    listed = apps[2].get("/mokku/scenarios").json["data"]
    assert listed[0]["times_left"] == 0 and listed[0]["calls"] == 3
    apps[1].post_json("/mokku/scenarios", {"match": {"nth": 2}, "reply": {"content": "second"}})
    assert [say(app, "x").json["choices"][0]["message"]["content"] for app in apps] == ["x", "second", "x"]
    apps[2].delete("/mokku/scenarios")
    assert apps[0].get("/mokku/scenarios").json["data"] == []


def test_one_rate_limit_across_replicas(store_env: Dict[str, str]) -> None:
    # 30 a window of an hour: no refill while the test runs, so the count is exact.
    apps = replicas(store_env, MOKKU_RPM="30", MOKKU_RATE_WINDOW="3600")
    statuses = [r.status_int for r in spread(apps, 90, Authorization="Bearer sk-team")]
    assert (statuses.count(200), statuses.count(429)) == (30, 60)
    other = say(apps[1], "another key", Authorization="Bearer sk-other")
    assert other.status_int == 200 and other.headers["x-ratelimit-remaining-requests"] == "29"


def test_the_journal_shows_every_request_once_from_any_replica(store_env: Dict[str, str]) -> None:
    apps = replicas(store_env)
    spread(apps, 60)
    for app in apps:  # read-your-writes: every request answered before the read, whichever took it
        entries = app.get("/mokku/requests?limit=1000").json["data"]
        texts = sorted(entry["body"]["messages"][0]["content"] for entry in entries)
        assert texts == sorted(f"call {n}" for n in range(60))
        assert len({entry["id"] for entry in entries}) == 60
    apps[1].delete("/mokku/requests")
    assert apps[2].get("/mokku/requests").json["data"] == []


def test_a_read_waits_for_a_replica_slower_to_answer_than_one_redis_read(redis_server: Any) -> None:
    """A replica may take seconds to write what it holds (a loaded machine): the reader waits for
    its ack, up to the settle timeout, instead of taking an empty wait for one or for an outage."""
    store = Redis(redis_server.url, "slow-ack:")
    acked = threading.Event()

    def slow_replica(token: str) -> None:
        time.sleep(2.5)  # longer than one read from Redis may take
        acked.set()
        store.ack(token)

    assert store.listener.on("settle", slow_replica, wait=5)
    assert store.broadcast("settle", 10.0) is True
    assert acked.is_set()


def test_the_journal_keeps_the_newest(store_env: Dict[str, str]) -> None:
    (app,) = replicas(store_env, 1, MOKKU_JOURNAL_SIZE="5")
    for n in range(30):
        say(app, f"call {n}")
    page = app.get("/mokku/requests?limit=100").json
    assert [entry["body"]["messages"][0]["content"] for entry in page["data"]] == [
        f"call {n}" for n in range(25, 30)
    ]
    older = app.get(f"/mokku/requests?limit=2&before={page['data'][2]['id']}").json["data"]
    assert [entry["body"]["messages"][0]["content"] for entry in older] == ["call 25", "call 26"]


def test_redis_gone_and_back(redis_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Decisions that need Redis answer 503 naming it, logged once; the rest is answered; recovery by itself."""
    apps = replicas(redis_server.env(), 1)
    (app,) = apps
    assert say(app, "before").status_int == 200
    redis_server.stop()
    try:
        with caplog.at_level(logging.ERROR, logger="mokku"):
            failed = [say(app, f"during {n}") for n in range(5)]
            for response in failed:
                error = response.json["error"]
                assert response.status_int == 503 and error["code"] == "state_unavailable"
                assert "Redis at redis://127.0.0.1" in error["message"] and error["type"] == "server_error"
            assert app.get("/v1/models").status_int == 200  # no shared decision: answered
        outages = [r for r in caplog.records if "cannot be used" in r.getMessage()]
        assert len(outages) == 1
    finally:
        redis_server.start()
    assert say(app, "after").status_int == 200


def test_a_rule_added_on_one_replica_applies_at_once_on_the_others(store_env: Dict[str, str]) -> None:
    """Replicas that have learnt "no rules" (and so stop asking) hear of a new rule before its add answers."""
    apps = replicas(store_env)
    for _ in range(3):
        assert [say(app, "x").json["choices"][0]["message"]["content"] for app in apps] == ["x"] * 3
    for round_ in range(20):
        rule = {"match": {"contains": f"round {round_}"}, "reply": {"content": "scripted"}}
        apps[round_ % 3].post_json("/mokku/scenarios", rule)
        target = apps[(round_ + 1) % 3]
        assert say(target, f"round {round_}").json["choices"][0]["message"]["content"] == "scripted"
        apps[0].delete("/mokku/scenarios")
        assert say(target, "x").json["choices"][0]["message"]["content"] == "x"


def test_readiness_follows_the_shared_store(redis_server: Any, tmp_path: Any) -> None:
    (app,) = replicas(redis_server.env(), 1)
    (embedded,) = replicas({"MOKKU_STATE": str(tmp_path / "state.sqlite3")}, 1)
    assert app.get("/readyz").json["status"] == "ok" and embedded.get("/readyz").status_int == 200
    redis_server.stop()
    try:
        error = app.get("/readyz", status=503).json["error"]
        assert error["code"] == "state_unavailable" and "Redis at" in error["message"]
        assert app.get("/health").status_int == 200 and embedded.get("/readyz").status_int == 200
    finally:
        redis_server.start()
    assert app.get("/readyz").status_int == 200


def test_stored_responses_and_conversations_are_shared(store_env: Dict[str, str]) -> None:
    apps = replicas(store_env)
    first = apps[0].post_json("/v1/responses", {"model": "gpt-4o", "input": "remember me"}).json
    assert apps[1].get(f"/v1/responses/{first['id']}").json["id"] == first["id"]
    chained = (
        apps[2]
        .post_json(
            "/v1/responses", {"model": "gpt-4o", "input": "and me", "previous_response_id": first["id"]}
        )
        .json
    )
    inputs = apps[0].get(f"/v1/responses/{chained['id']}/input_items?order=asc").json["data"]
    assert [item["content"][0]["text"] for item in inputs if item["role"] == "user"] == [
        "remember me",
        "and me",
    ]
    conversation = apps[1].post_json("/v1/conversations", {}).json["id"]

    def add(n: int) -> int:
        item = {"type": "message", "role": "user", "content": f"item {n}"}
        return apps[n % 3].post_json(f"/v1/conversations/{conversation}/items", {"items": [item]}).status_int

    with ThreadPoolExecutor(max_workers=20) as pool:
        assert set(pool.map(add, range(60))) == {200}
    listed = apps[2].get(f"/v1/conversations/{conversation}/items?limit=100&order=asc").json["data"]
    assert sorted(item["content"][0]["text"] for item in listed) == sorted(f"item {n}" for n in range(60))
    assert len({item["id"] for item in listed}) == 60
    assert apps[0].delete(f"/v1/responses/{first['id']}").status_int == 200
    apps[1].get(f"/v1/responses/{first['id']}", status=404)


def test_cassette_sequences_count_across_replicas(store_env: Dict[str, str], tmp_path: Any) -> None:
    from mokku.record.cassettes import Cassettes
    from mokku.store import open_stores

    settings = config.load(store_env)
    replicas_ = [
        Cassettes(str(tmp_path / "tapes"), open_stores(settings, settings.state_path).counters)
        for _ in range(3)
    ]
    other = Cassettes(str(tmp_path / "other"), open_stores(settings, settings.state_path).counters)
    with ThreadPoolExecutor(max_workers=9) as pool:
        numbers = list(pool.map(lambda n: replicas_[n % 3].next("key", "replayed"), range(30)))
    assert sorted(numbers) == list(range(1, 31))
    assert other.next("key", "replayed") == 1 and replicas_[0].next("key", "recorded") == 1
    replicas_[1].reset()
    assert replicas_[2].next("key", "replayed") == 1


def test_a_rules_file_is_loaded_into_the_store_at_start(store_env: Dict[str, str], tmp_path: Any) -> None:
    import json

    from mokku.control.state import claim_state, remove

    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([{"match": {"contains": "hi"}, "reply": {"content": "loaded"}}]))
    remove(claim_state(config.load({**store_env, "MOKKU_SCENARIOS": str(rules)})))
    (app,) = replicas(store_env, 1)
    assert say(app, "hi there").json["choices"][0]["message"]["content"] == "loaded"
