"""Scripted replies in-process: matching, nth, times, replies of every kind, validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Union

import pytest
import webtest

from mokku import config
from mokku.control.state import remove
from mokku.server.app import App

from . import sse
from .spec import validate

CHAT = "/v1/chat/completions"


def build(where: Union[Path, Dict[str, str]], **env: str) -> webtest.TestApp:
    """An app on a state file in ``where``, or on the store ``where`` names (``store_env``)."""
    store = where if isinstance(where, dict) else {"MOKKU_STATE": str(where / "state.sqlite3")}
    settings = config.load({**store, **env})
    return webtest.TestApp(App(settings), extra_environ={"wsgi.multithread": True})


def say(app: webtest.TestApp, text: str, model: str = "gpt-4o", **extra: Any) -> Any:
    return app.post_json(
        CHAT, {"model": model, "messages": [{"role": "user", "content": text}], **extra}, expect_errors=True
    )


def content(response: Any) -> str:
    return response.json["choices"][0]["message"]["content"]


def test_no_rules_echoes(store_env: Dict[str, str]) -> None:
    app = build(store_env)
    assert content(say(app, "hello")) == "hello"
    assert app.get("/mokku/scenarios").json["data"] == []


def test_content_by_substring_and_regex(store_env: Dict[str, str]) -> None:
    app = build(store_env)
    app.post_json(
        "/mokku/scenarios",
        {
            "rules": [
                {"match": {"contains": "weather"}, "reply": {"content": "Sunny, 21 °C."}},
                {"match": {"regex": "^order #\\d+$"}, "reply": {"content": "Shipped."}},
            ]
        },
    )
    assert content(say(app, "what is the weather?")) == "Sunny, 21 °C."
    assert content(say(app, "order #42")) == "Shipped."
    assert content(say(app, "order #x")) == "order #x"
    chunks = sse.parse(say(app, "weather please", stream=True).body)
    assert sse.content(chunks) == "Sunny, 21 °C."


def test_model_endpoint_nth_and_times(store_env: Dict[str, str]) -> None:
    app = build(store_env)
    app.post_json("/mokku/scenarios", {"match": {"model": "m1", "nth": 2}, "reply": {"content": "second"}})
    app.post_json(
        "/mokku/scenarios", {"match": {"endpoint": "completions"}, "reply": {"content": "legacy"}, "times": 1}
    )
    assert [content(say(app, "x", model="m1")) for _ in range(3)] == ["x", "second", "x"]
    assert content(say(app, "x", model="m2")) == "x"
    legacy = [
        app.post_json("/v1/completions", {"model": "m", "prompt": "p"}).json["choices"][0]["text"]
        for _ in range(2)
    ]
    assert legacy == ["legacy", "p"]
    listed = app.get("/mokku/scenarios").json["data"]
    assert [(rule["times_left"], rule["calls"]) for rule in listed] == [(None, 3), (0, 1)]


def test_nth_counts_the_calls_an_earlier_rule_answered(store_env: Dict[str, str]) -> None:
    """control.md's pair: the second gpt-4o call fails, though the first was the weather rule's."""
    app = build(store_env)
    app.post_json(
        "/mokku/scenarios", {"match": {"contains": "weather"}, "reply": {"content": "Sunny"}, "times": 1}
    )
    app.post_json(
        "/mokku/scenarios", {"match": {"model": "gpt-4o", "nth": 2}, "reply": {"fault": "server_error"}}
    )
    statuses = [say(app, "weather?").status_int for _ in range(3)]
    assert statuses == [200, 500, 200]
    listed = app.get("/mokku/scenarios").json["data"]
    assert [rule["calls"] for rule in listed] == [1, 3]


def test_first_match_wins(store_env: Dict[str, str]) -> None:
    app = build(store_env)
    app.post_json("/mokku/scenarios", {"reply": {"content": "first"}})
    app.post_json("/mokku/scenarios", {"reply": {"content": "second"}})
    assert content(say(app, "anything")) == "first"


def test_tool_call_reply(store_env: Dict[str, str]) -> None:
    app = build(store_env)
    app.post_json(
        "/mokku/scenarios",
        {
            "match": {"contains": "book"},
            "reply": {"tool_call": {"name": "book_flight", "arguments": {"to": "Lima"}}},
            "times": 1,
        },
    )
    body = say(app, "book me a flight").json
    validate(body, "CreateChatCompletionResponse")
    (call,) = body["choices"][0]["message"]["tool_calls"]
    assert call["function"] == {
        "name": "book_flight",
        "arguments": json.dumps({"to": "Lima"}, separators=(",", ":")),
    }
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    responses = app.post_json("/v1/responses", {"model": "m", "input": "book"}).json
    assert responses["output"][0]["type"] == "message"  # times: 1 was used up


def test_fault_and_latency_replies(store_env: Dict[str, str]) -> None:
    app = build(store_env)
    app.post_json("/mokku/scenarios", {"match": {"contains": "fail"}, "reply": {"fault": "rate_limit:1500"}})
    failed = say(app, "please fail")
    assert failed.status_int == 429 and failed.headers["retry-after-ms"] == "1500"
    assert failed.headers["x-mokku-fault"] == "rate_limit"
    validate(failed.json, "ErrorResponse")
    embed = app.post_json("/v1/embeddings", {"model": "e", "input": "fail here"}, expect_errors=True)
    assert embed.status_int == 429


def test_journal_names_the_rule(store_env: Dict[str, str]) -> None:
    app = build(store_env, MOKKU_JOURNAL="1")
    rule = app.post_json("/mokku/scenarios", {"reply": {"content": "scripted"}}).json["data"][0]
    say(app, "x")
    assert app.get("/mokku/requests").json["data"][0]["scenario"] == rule["id"]


def test_clear(store_env: Dict[str, str]) -> None:
    app = build(store_env)
    app.post_json("/mokku/scenarios", {"reply": {"content": "scripted"}})
    app.delete("/mokku/scenarios")
    assert content(say(app, "echo me")) == "echo me"


def test_servers_sharing_a_state_file_see_each_others_rules_at_once(store_env: Dict[str, str]) -> None:
    one, two = build(store_env), build(store_env)  # two processes' apps on one MOKKU_STATE
    assert content(say(two, "hi")) == "hi"
    one.post_json("/mokku/scenarios", {"reply": {"content": "from one"}})
    assert content(say(two, "hi")) == "from one"
    one.delete("/mokku/scenarios")
    assert content(say(two, "hi")) == "hi"
    two.post_json("/mokku/scenarios", {"reply": {"content": "from two"}})
    assert content(say(one, "hi")) == "from two"


def test_state_files_are_removed_together(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    app = build(tmp_path)
    app.post_json("/mokku/scenarios", {"reply": {"content": "x"}})
    assert (tmp_path / "state.sqlite3-rules").exists()
    remove(str(state))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("rule", "param"),
    [
        ({}, "rule.reply"),
        ({"reply": {}}, "rule.reply.content"),
        ({"reply": {"content": 5}}, "rule.reply.content"),
        ({"reply": {"content": "a", "fault": "server_error"}}, "rule.reply"),
        ({"reply": {"fault": "meteor"}}, "rule.reply.fault"),
        ({"reply": {"tool_call": {}}}, "rule.reply.tool_call.name"),
        ({"reply": {"content": "a"}, "match": {"regex": "("}}, "rule.match.regex"),
        ({"reply": {"content": "a"}, "match": {"endpoint": "images"}}, "rule.match.endpoint"),
        ({"reply": {"content": "a"}, "match": {"nth": 0}}, "rule.match.nth"),
        ({"reply": {"content": "a"}, "match": {"colour": "red"}}, "rule.match.colour"),
        ({"reply": {"content": "a"}, "times": 0}, "rule.times"),
        ({"reply": {"latency": {"ttft_ms": -1}}}, "rule.reply.latency.ttft_ms"),
        # A misspelt key is refused, not dropped: "time" would make a one-off rule fire for ever.
        ({"reply": {"content": "once"}, "time": 1}, "rule.time"),
        ({"reply": {"latency": {"ttftms": 5}}}, "rule.reply.latency.ttftms"),
        ({"rules": [{"reply": {"content": "a"}}], "foo": 1}, "foo"),
        # A reply is told by its keys: one present is never null (else every match was a 500).
        ({"reply": {"content": None}}, "rule.reply.content"),
        ({"reply": {"flagged": None}}, "rule.reply.flagged"),
        ({"reply": {"latency": None}}, "rule.reply.latency"),
        ({"reply": {"content": "a", "latency": None}}, "rule.reply.latency"),
        ({"reply": {"tool_call": {"name": "f", "arguments": None}}}, "rule.reply.tool_call.arguments"),
    ],
)
def test_bad_rules_are_400(store_env: Dict[str, str], rule: Dict[str, Any], param: str) -> None:
    app = build(store_env)
    response = app.post_json("/mokku/scenarios", rule, status=400)
    validate(response.json, "ErrorResponse")
    assert response.json["error"]["param"] == param
    assert app.get("/mokku/scenarios").json["data"] == []


def test_a_listed_rule_can_be_sent_back(store_env: Dict[str, str]) -> None:
    app = build(store_env)
    app.post_json("/mokku/scenarios", {"reply": {"content": "a"}, "times": 2})
    (listed,) = app.get("/mokku/scenarios").json["data"]
    again = app.post_json("/mokku/scenarios", listed).json["data"][0]
    assert (again["reply"], again["times"]) == ({"content": "a"}, 2) and again["id"] != listed["id"]


def test_rules_file_at_startup(tmp_path: Path) -> None:
    from mokku.control.state import claim_state

    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([{"match": {"contains": "hi"}, "reply": {"content": "loaded"}}]))
    state = tmp_path / "state.sqlite3"
    settings = config.load({"MOKKU_STATE": str(state), "MOKKU_SCENARIOS": str(rules)})
    claim_state(settings)
    app = build(tmp_path)
    assert content(say(app, "hi there")) == "loaded"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"reply": {"fault": "meteor"}}]))
    with pytest.raises(config.ConfigError, match="MOKKU_SCENARIOS"):
        claim_state(config.load({"MOKKU_STATE": str(state), "MOKKU_SCENARIOS": str(bad)}))
    # A misspelt key: named with the rule it is in, the variable named once.
    bad.write_text(json.dumps([{"reply": {"content": "a"}}, {"reply": {"content": "b"}, "time": 1}]))
    with pytest.raises(config.ConfigError) as refused:
        claim_state(config.load({"MOKKU_STATE": str(state), "MOKKU_SCENARIOS": str(bad)}))
    assert str(refused.value).startswith("MOKKU_SCENARIOS: Invalid value: 'time'.")
    assert str(refused.value).endswith("(rules[1].time)") and str(refused.value).count("MOKKU_SCENARIOS") == 1


@pytest.mark.parametrize(
    ("rule", "param", "code"),
    [
        ({"reply": {"content": "a"}, "times": 10**30}, "rule.times", "integer_above_max_value"),
        ({"reply": {"content": "a"}, "times": 1e30}, "rule.times", "invalid_type"),  # a decimal that large
        ({"reply": {"content": "a"}, "match": {"nth": 10**12}}, "rule.match.nth", "integer_above_max_value"),
        ({"reply": {"content": "a" * 70_000}}, "rule", "rule_too_large"),
    ],
)
def test_rule_bounds(store_env: Dict[str, str], rule: Dict[str, Any], param: str, code: str) -> None:
    app = build(store_env)
    error = app.post_json("/mokku/scenarios", rule, status=400).json["error"]
    assert (error["param"], error["code"]) == (param, code)


def test_at_most_so_many_rules(store_env: Dict[str, str]) -> None:
    from mokku.control.scenarios import MAX_RULES

    app = build(store_env)
    rule = {"reply": {"content": "a"}}
    app.post_json("/mokku/scenarios", {"rules": [rule] * (MAX_RULES - 1)})
    error = app.post_json("/mokku/scenarios", {"rules": [rule, rule]}, status=400).json["error"]
    assert error["code"] == "too_many_rules"
    assert len(app.get("/mokku/scenarios").json["data"]) == MAX_RULES - 1  # all or none
    app.post_json("/mokku/scenarios", rule)
    too_long = app.post_json("/mokku/scenarios", {"rules": [rule] * (MAX_RULES + 1)}, status=400)
    assert too_long.json["error"]["code"] == "array_above_max_length"
    for empty, code in ((None, "missing_required_parameter"), ([], "empty_array")):
        error = app.post_json("/mokku/scenarios", {"rules": empty}, status=400).json["error"]
        assert (error["param"], error["code"]) == ("rules", code)


def test_matching_takes_no_lock(tmp_path: Path) -> None:
    """Another process holds the state file's write lock: calls that match no rule are answered at
    once; a call that matches waits only to count its hit."""
    import sqlite3
    import threading

    app = build(tmp_path)
    app.post_json("/mokku/scenarios", {"match": {"contains": "weather"}, "reply": {"content": "Sunny."}})
    holder = sqlite3.connect(tmp_path / "state.sqlite3", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    # Answered while the lock is held, with nothing set to let it go: a call that waited for the
    # lock would fail at the busy timeout.
    assert content(say(app, "unrelated")) == "unrelated"
    threading.Timer(0.5, lambda: holder.execute("COMMIT")).start()
    assert content(say(app, "weather?")) == "Sunny."  # after the holder lets go
    holder.close()


def test_a_symlinked_flag_file_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"\x00keep")
    (tmp_path / "state.sqlite3-rules").symlink_to(victim)
    app = build(tmp_path)
    app.post_json("/mokku/scenarios", {"reply": {"content": "scripted"}})
    assert content(say(app, "x")) == "scripted"
    app.delete("/mokku/scenarios")
    assert content(say(app, "x")) == "x"
    assert victim.read_bytes() == b"\x00keep"


def test_unreadable_rules_are_a_503(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    app = build(tmp_path)
    app.post_json("/mokku/scenarios", {"reply": {"content": "scripted"}})
    for suffix in ("", "-wal", "-shm"):
        Path(f"{state}{suffix}").unlink(missing_ok=True)
    state.write_bytes(b"garbage" * 1000)
    response = say(app, "x")
    assert response.status_int == 503
    validate(response.json, "ErrorResponse")
    error = response.json["error"]
    assert error["code"] == "state_unavailable" and error["type"] == "server_error"
    assert str(state) in error["message"]
    assert app.get("/mokku/scenarios", status=503).json["error"]["code"] == "state_unavailable"
    state.unlink()
    error = say(app, "x").json["error"]  # deleted: the rules are gone, and that says so too
    assert error["code"] == "state_unavailable"
    app.delete("/mokku/scenarios")
    assert content(say(app, "x")) == "x"
