"""Conversation state in-process: the store's bounds, previous_response_id, input items, background
responses, Conversations and Responses logprobs, every object checked against the official schemas."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest
import webtest

from mokku import config
from mokku.api.conversations import Conversations
from mokku.api.decide import Replies
from mokku.api.responses import Responses
from mokku.control.objects import DEFAULT_BOUNDS, Bounds, Duplicate, Objects, TooLarge, UnknownCursor
from mokku.server.app import App
from mokku.server.routing import Route
from mokku.simulation.faults import Simulator

from .clock import FakeClock
from .spec import validate

URL = "/v1/responses"


def create(app: webtest.TestApp, headers: Any = None, **body: Any) -> Dict[str, Any]:
    body.setdefault("model", "gpt-4o")
    result = app.post_json(URL, body, headers=headers or {}).json
    validate(result, "Response")
    return result


def text(response: Dict[str, Any]) -> str:
    return response["output"][0]["content"][0]["text"]


def sse(raw: bytes) -> List[Dict[str, Any]]:
    out = []
    for frame in raw.split(b"\n\n")[:-1]:
        kind, data = frame.split(b"\n")
        event = json.loads(data[len(b"data: ") :])
        assert kind == b"event: " + event["type"].encode()
        validate(event, "ResponseStreamEvent")
        out.append(event)
    return out


# The store, embedded and in Redis


@pytest.fixture
def objects(store_env: Dict[str, str]) -> Callable[..., Any]:
    """The store each backend gives, with the test's bounds and clock."""

    def make(bounds: Bounds = DEFAULT_BOUNDS, clock: Callable[[], float] = time.time) -> Any:
        if not store_env["MOKKU_STATE"].startswith("redis://"):
            return Objects(store_env["MOKKU_STATE"], bounds, clock)
        from mokku.store.redis import Redis
        from mokku.store.redis_objects import RedisObjects

        return RedisObjects(Redis(store_env["MOKKU_STATE"], store_env["MOKKU_STATE_PREFIX"]), bounds, clock)

    return make


def test_responses_are_bounded_in_count_bytes_and_age(objects: Callable[..., Any]) -> None:
    clock = FakeClock(1_000_000.0)
    bounds = Bounds(responses=3, response_bytes=100, response_seconds=60)
    store = objects(bounds, clock)
    for number in range(4):
        store.keep_response(f"r{number}", b"x" * 10, b"[]")
    assert store.response("r0") is None and store.response("r3") is not None  # the oldest out by count
    store.keep_response("big", b"y" * 80, b"[]")
    assert store.response("r1") is None and store.response("big") is not None  # out by bytes
    with pytest.raises(TooLarge):
        store.keep_response("huge", b"z" * 101, b"[]")
    clock.advance(61)
    assert store.response("big") is None  # too old
    store.keep_response("new", b"n", b"[]")  # the old ones are pruned as new ones come
    assert store.delete_response("new") and not store.delete_response("new")


def test_conversations_are_bounded_oldest_out_and_one_conversation_in_bytes(
    objects: Callable[..., Any],
) -> None:
    store = objects(Bounds(conversations=2, conversation_bytes=300, one_conversation_bytes=200))
    for number in range(3):
        store.create_conversation(f"c{number}", b"{}", [(f"i{number}", b"x" * 10)])
    assert store.conversation("c0") is None and store.items("c2") == [b"x" * 10]
    assert store.add_items("c2", [("more", b"y" * 150)])
    with pytest.raises(TooLarge):
        store.add_items("c2", [("past", b"z" * 100)])
    store.create_conversation("c3", b"{}", [("big", b"w" * 150)])
    assert store.conversation("c1") is None and store.conversation("c2") is None  # bytes: oldest out
    assert store.items("c3") == [b"w" * 150]
    assert store.delete_item("c3", "big") and store.items("c3") == []
    assert not store.add_items("gone", [("a", b"a")])
    with pytest.raises(Duplicate):
        store.add_items("c3", [("twice", b"a"), ("twice", b"b")])
    assert store.add_items("c3", [(f"n{n}", b"%d" % n) for n in range(5)])
    page = store.page_items("c3", "n1", 2, False)
    assert page.items == [b"2", b"3"] and page.has_more
    assert store.page_items("c3", None, 10, True).items == [b"4", b"3", b"2", b"1", b"0"]
    assert store.item("c3", "n4") == b"4" and store.item("c3", "nothing") is None
    assert (
        store.replace_conversation("c3", b'{"metadata":{}}')
        and store.conversation("c3") == b'{"metadata":{}}'
    )
    assert store.delete_conversation("c3") and store.items("c3") is None


# previous_response_id


def test_a_chain_continues_the_stored_conversation(app: webtest.TestApp) -> None:
    first = create(app, input="first question", instructions="Be brief.")
    tokens = [first["usage"]["input_tokens"]]
    previous = first
    for turn in range(4):
        previous = create(app, input=f"question {turn}", previous_response_id=previous["id"])
        assert text(previous) == f"question {turn}" and previous["previous_response_id"] is not None
        assert previous["instructions"] is None  # not carried over
        tokens.append(previous["usage"]["input_tokens"])
    assert tokens == sorted(tokens) and len(set(tokens)) == 5
    items = app.get(f"{URL}/{previous['id']}/input_items?order=asc&limit=100").json
    validate(items, "ResponseItemList")
    roles = [item["role"] for item in items["data"]]
    assert roles == ["user", "assistant"] * 4 + ["user"]
    assert items["data"][0]["content"][0]["text"] == "first question"


def test_a_tool_result_after_a_previous_response_is_echoed(app: webtest.TestApp) -> None:
    tool = {"type": "function", "name": "lookup", "parameters": {"type": "object"}, "strict": False}
    called = create(app, input="look it up", tools=[tool])
    call = called["output"][0]
    assert call["type"] == "function_call"
    output = {"type": "function_call_output", "call_id": call["call_id"], "output": "42 degrees"}
    answered = create(app, input=[output], previous_response_id=called["id"], tools=[tool])
    assert text(answered) == "42 degrees"


def test_an_unknown_or_unstored_previous_response_is_a_400(app: webtest.TestApp) -> None:
    unstored = create(app, input="forget me", store=False)
    for missing in ("resp_nothing", unstored["id"]):
        error = app.post_json(
            URL, {"model": "m", "input": "x", "previous_response_id": missing}, status=400
        ).json
        assert error == {
            "error": {
                "message": f"Previous response with id '{missing}' not found.",
                "type": "invalid_request_error",
                "param": "previous_response_id",
                "code": "previous_response_not_found",
            }
        }
    conversation = app.post_json("/v1/conversations", {}).json
    both = {
        "model": "m",
        "input": "x",
        "previous_response_id": unstored["id"],
        "conversation": conversation["id"],
    }
    assert app.post_json(URL, both, status=400).json["error"]["code"] == "mutually_exclusive_parameters"


@pytest.mark.parametrize(
    "path, body, param",
    [
        (URL, {"input": "x", "previous_response_id": "resp_\ud800"}, "previous_response_id"),
        (URL, {"input": "x", "conversation": "conv_\ud800"}, "conversation"),
        (URL, {"input": "x", "conversation": {"id": "\ud800"}}, "conversation.id"),
        (
            "/v1/conversations",
            {"items": [{"type": "message", "id": "\ud800", "role": "user", "content": "x"}]},
            "items[0].id",
        ),
        (
            "{conversation}/items",
            {"items": [{"type": "message", "id": "m\udfff", "role": "user", "content": "x"}]},
            "items[0].id",
        ),
    ],
)
def test_an_id_with_a_lone_surrogate_is_a_400(
    store_env: Dict[str, str], path: str, body: Dict[str, Any], param: str
) -> None:
    """Valid JSON (``\\ud800``), but no id the stores can hold: a 400 naming it, on either store."""
    app = webtest.TestApp(App(config.load(store_env)))
    conversation = app.post_json("/v1/conversations", {}).json["id"]
    raw = json.dumps({"model": "gpt-4o", **body}).encode()  # ensure_ascii: the escapes as a client sends them
    path = path.replace("{conversation}", f"/v1/conversations/{conversation}")
    error = app.post(path, raw, headers={"Content-Type": "application/json"}, status=400).json["error"]
    assert (error["param"], error["code"], error["type"]) == (param, "invalid_value", "invalid_request_error")
    assert "lone surrogate" in error["message"]


def test_a_cursor_deleted_or_evicted_goes_on_from_where_it_was(objects: Callable[..., Any]) -> None:
    """Paging while deleting (or while the store evicts) neither starts over nor skips; a cursor the
    store never held is refused; where things were is itself bounded."""
    store = objects(Bounds(conversations=6, gone_positions=2))
    store.create_conversation("c", b"{}", [])

    def ids(page: Any) -> List[str]:
        return [json.loads(item)["n"] for item in page.items]

    store.create_conversation("d", b"{}", [(f"i{n}", b'{"n":"i%d"}' % n) for n in range(6)])
    assert store.delete_item("d", "i2") and store.delete_item("d", "i3")
    assert ids(store.page_items("d", "i2", 2, False)) == ["i4", "i5"]
    assert ids(store.page_items("d", "i3", 2, True)) == ["i1", "i0"]
    with pytest.raises(UnknownCursor):
        store.page_items("d", "never", 2, False)
    with pytest.raises(UnknownCursor):
        store.page_items("c", "i2", 2, False)  # deleted from another conversation, not this one
    assert store.page_items("gone", "i2", 2, False) is None
    for number in range(5):  # the seventh evicts "c"
        store.create_conversation(f"p{number}", b"{}", [])
    store.delete_conversation("p1")
    listed = [conversation for conversation, _ in store.conversations_after("p", "p1", 10, False)]
    assert listed == ["p2", "p3", "p4"]
    assert [conversation for conversation, _ in store.conversations_after("p", "p1", 10, True)] == ["p0"]
    for number in range(5, 8):  # evicts "d" and p0
        store.create_conversation(f"p{number}", b"{}", [])
    assert store.conversation("p0") is None
    listed = [conversation for conversation, _ in store.conversations_after("p", "p0", 10, False)]
    assert listed == ["p2", "p3", "p4", "p5", "p6", "p7"]
    with pytest.raises(UnknownCursor):  # of six places (i2, i3, c, p1, d, p0) the last two are kept
        store.conversations_after("p", "p1", 10, False)
    store.create_conversation("d", b"{}", [(f"i{n}", b"{}") for n in range(2)])
    with pytest.raises(UnknownCursor):  # a new conversation of the same id holds none of the old places
        store.page_items("d", "i3", 2, False)


# input_items


def test_input_items_page_both_ways(app: webtest.TestApp) -> None:
    inputs = [{"role": "user", "content": f"message {n}"} for n in range(7)]
    response = create(app, input=inputs)
    seen: List[str] = []
    after = None
    while True:
        query = "limit=3" + (f"&after={after}" if after else "")
        page = app.get(f"{URL}/{response['id']}/input_items?{query}").json
        validate(page, "ResponseItemList")
        seen += [item["content"][0]["text"] for item in page["data"]]
        assert page["first_id"] == page["data"][0]["id"] and page["last_id"] == page["data"][-1]["id"]
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert seen == [f"message {n}" for n in reversed(range(7))]  # newest first by default
    ascending = app.get(f"{URL}/{response['id']}/input_items?order=asc&limit=2").json
    assert [item["content"][0]["text"] for item in ascending["data"]] == ["message 0", "message 1"]
    before = app.get(f"{URL}/{response['id']}/input_items?order=asc&before={ascending['data'][1]['id']}").json
    assert [item["content"][0]["text"] for item in before["data"]] == ["message 0"]
    unknown = app.get(f"{URL}/{response['id']}/input_items?after=msg_none", status=400).json["error"]
    assert unknown == {
        "message": "Invalid 'after': 'msg_none' is not the id of an object in this list.",
        "type": "invalid_request_error",
        "param": "after",
        "code": "invalid_value",
    }
    for query, param in (
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=x", "limit"),
        ("order=up", "order"),
    ):
        error = app.get(f"{URL}/{response['id']}/input_items?{query}", status=400).json["error"]
        assert error["param"] == param
    app.get(f"{URL}/resp_missing/input_items", status=404)


# background


def _app_with_clock(clock: FakeClock, tmp_path: Path) -> webtest.TestApp:
    settings = config.load({})
    stored = Objects(str(tmp_path / "state"))
    responses = Responses(Replies(settings, Simulator(settings)), stored, clock)
    conversations = Conversations(stored)
    routes = [
        Route("POST", URL, responses.create),
        Route("GET", URL + "/{response_id}", responses.retrieve),
        Route("POST", URL + "/{response_id}/cancel", responses.cancel),
        Route("POST", "/v1/conversations", conversations.create),
        Route("GET", "/v1/conversations/{conversation_id}/items", conversations.list_items),
    ]
    return webtest.TestApp(App(settings, routes))


def test_a_background_response_moves_from_queued_to_completed(tmp_path: Path) -> None:
    clock = FakeClock(1_700_000_000.0)
    app = _app_with_clock(clock, tmp_path)
    pace = {"X-Mokku-Latency-Ms": "2000", "X-Mokku-Token-Ms": "1000"}
    created = create(app, pace, input="one two three", background=True)
    assert created["status"] == "queued" and created["background"] is True and created["output"] == []
    assert created["created_at"] == 1_700_000_000 and created["completed_at"] is None
    assert app.get(f"{URL}/{created['id']}").json["status"] == "queued"
    clock.advance(2.5)
    running = app.get(f"{URL}/{created['id']}").json
    validate(running, "Response")
    assert running["status"] == "in_progress" and running["output"] == []
    clock.advance(1.4)  # the last of three tokens is due at 2 + 2 x 1 s
    assert app.get(f"{URL}/{created['id']}").json["status"] == "in_progress"
    clock.advance(0.1)
    done = app.get(f"{URL}/{created['id']}").json
    validate(done, "Response")
    assert (
        done["status"] == "completed"
        and text(done) == "one two three"
        and done["usage"]["output_tokens"] == 3
        and done["completed_at"] == 1_700_000_004
    )
    # a finished background response is answered as it is; a synchronous one cannot be cancelled
    assert app.post(f"{URL}/{created['id']}/cancel").json == done
    plain = create(app, input="now")
    error = app.post(f"{URL}/{plain['id']}/cancel", status=400).json["error"]
    assert error["message"] == "Cannot cancel a synchronous response."
    app.post(f"{URL}/resp_missing/cancel", status=404)


def test_cancelling_a_queued_background_response(tmp_path: Path) -> None:
    clock = FakeClock(1_700_000_000.0)
    app = _app_with_clock(clock, tmp_path)
    created = create(app, {"X-Mokku-Latency-Ms": "5000"}, input="stop me", background=True)
    cancelled = app.post(f"{URL}/{created['id']}/cancel").json
    validate(cancelled, "Response")
    assert cancelled["status"] == "cancelled" and cancelled["output"] == []
    clock.advance(60)
    assert app.get(f"{URL}/{created['id']}").json["status"] == "cancelled"
    assert app.post(f"{URL}/{created['id']}/cancel").json["status"] == "cancelled"  # again: the same
    replayed = sse(app.get(f"{URL}/{created['id']}?stream=true").body)
    assert [event["type"] for event in replayed] == ["response.created", "response.queued"]


def test_a_cancelled_background_response_leaves_no_answer_in_its_conversation(tmp_path: Path) -> None:
    """The next turn of the conversation must not see (nor be billed for) an answer never given."""
    app = _app_with_clock(FakeClock(1_700_000_000.0), tmp_path)
    conversation = app.post_json("/v1/conversations", {}).json["id"]
    created = create(
        app, {"X-Mokku-Latency-Ms": "5000"}, input="stop me", background=True, conversation=conversation
    )
    app.post(f"{URL}/{created['id']}/cancel")
    kept = app.get(f"/v1/conversations/{conversation}/items?order=asc").json["data"]
    assert [(item["type"], item.get("role")) for item in kept] == [("message", "user")]


def unpadded(events: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The events without their random ``obfuscation``, which each stream draws anew."""
    return [{name: value for name, value in event.items() if name != "obfuscation"} for event in events]


def test_a_background_stream_resumes_after_a_sequence_number(app: webtest.TestApp) -> None:
    raw = app.post_json(
        URL, {"model": "gpt-4o", "input": "one two three", "background": True, "stream": True}
    ).body
    first = sse(raw)
    assert [e["type"] for e in first[:3]] == ["response.created", "response.queued", "response.in_progress"]
    assert first[0]["response"]["status"] == "queued" and first[-1]["type"] == "response.completed"
    assert [e["sequence_number"] for e in first] == list(range(len(first)))
    response_id = first[0]["response"]["id"]
    resumed = sse(app.get(f"{URL}/{response_id}?stream=true&starting_after=5").body)
    assert unpadded(resumed) == unpadded(first[6:])
    replayed = sse(app.get(f"{URL}/{response_id}?stream=true").body)
    assert unpadded(replayed) == unpadded(first) and "obfuscation" in replayed[-5]  # a text delta's own
    plain_replay = sse(app.get(f"{URL}/{response_id}?stream=true&include_obfuscation=false").body)
    assert plain_replay == unpadded(first)
    plain = create(app, input="not in the background")
    assert app.get(f"{URL}/{plain['id']}?stream=true", status=400).json["error"]["param"] == "stream"
    bad = app.get(f"{URL}/{response_id}?stream=true&starting_after=x", status=400).json["error"]
    assert bad["param"] == "starting_after"
    error = app.post_json(
        URL, {"model": "m", "input": "x", "background": True, "store": False}, status=400
    ).json
    assert error["error"]["param"] == "store"


def test_a_resumed_background_stream_ends_when_its_response_does(app: webtest.TestApp) -> None:
    """Skipped events are not time saved: the last event comes when the stored response is done, so
    reading it back right after finds it completed, as the stream said."""
    words = " ".join(["word"] * 12)
    paced = {"X-Mokku-Latency-Ms": "1000", "X-Mokku-Token-Ms": "100"}
    queued = create(app, paced, input=words, background=True)
    assert queued["status"] == "queued"
    resumed = sse(app.get(f"{URL}/{queued['id']}?stream=true&starting_after=14").body)
    assert resumed[0]["sequence_number"] == 15 and resumed[-1]["type"] == "response.completed"
    assert app.get(f"{URL}/{queued['id']}").json == resumed[-1]["response"]


# Conversations


def test_conversations_crud_and_items(app: webtest.TestApp) -> None:
    made = app.post_json(
        "/v1/conversations", {"items": [{"role": "user", "content": "hello"}], "metadata": {"topic": "demo"}}
    ).json
    validate(made, "ConversationResource")
    assert made["id"].startswith("conv_") and made["metadata"] == {"topic": "demo"}
    url = f"/v1/conversations/{made['id']}"
    assert app.get(url).json == made
    updated = app.post_json(url, {"metadata": {"topic": "changed"}}).json
    assert updated["metadata"] == {"topic": "changed"} and app.get(url).json == updated
    added = app.post_json(
        url + "/items",
        {"items": [{"role": "user", "content": "again"}, {"role": "assistant", "content": "sure"}]},
    ).json
    validate(added, "ConversationItemList")
    assert [item["role"] for item in added["data"]] == ["user", "assistant"]
    listed = app.get(url + "/items").json
    validate(listed, "ConversationItemList")
    assert [item["content"][0]["text"] for item in listed["data"]] == ["sure", "again", "hello"]
    one = app.get(url + f"/items/{added['data'][0]['id']}").json
    validate(one, "ConversationItem")
    assert one == added["data"][0]
    after_delete = app.delete(url + f"/items/{added['data'][0]['id']}").json
    validate(after_delete, "ConversationResource")
    app.get(url + f"/items/{added['data'][0]['id']}", status=404)
    app.delete(url + f"/items/{added['data'][0]['id']}", status=404)
    more = app.post_json(url + "/items", {"items": [{"role": "user", "content": str(n)} for n in range(4)]})
    kept = [item["id"] for item in app.get(url + "/items", {"order": "asc"}).json["data"]]
    first = app.get(url + "/items", {"order": "asc", "limit": 3}).json
    app.delete(url + f"/items/{first['last_id']}")  # deleted while paging: the next page goes on after it
    rest = app.get(url + "/items", {"order": "asc", "after": first["last_id"]}).json
    validate(rest, "ConversationItemList")
    assert [item["id"] for item in rest["data"]] == kept[3:] == [item["id"] for item in more.json["data"][1:]]
    refused = app.get(url + "/items", {"after": "msg_never"}, status=400).json["error"]
    assert (refused["param"], refused["code"]) == ("after", "invalid_value")
    deleted = app.delete(url).json
    validate(deleted, "DeletedConversationResource")
    assert deleted == {"id": made["id"], "object": "conversation.deleted", "deleted": True}
    for method in (app.get, app.delete):
        assert (
            method(url, status=404).json["error"]["message"]
            == f"Conversation with id '{made['id']}' not found."
        )
    app.get(url + "/items", status=404)


def test_responses_in_a_conversation_read_and_append_its_items(app: webtest.TestApp) -> None:
    conversation = app.post_json("/v1/conversations", {"items": [{"role": "user", "content": "start"}]}).json
    first = create(app, input="turn one", conversation=conversation["id"])
    assert first["conversation"] == {"id": conversation["id"]}
    second = create(
        app, input=[{"role": "developer", "content": "no user here"}], conversation={"id": conversation["id"]}
    )
    assert text(second) == "turn one"  # the last user message of the whole conversation
    assert second["usage"]["input_tokens"] > first["usage"]["input_tokens"]
    listed = app.get(f"/v1/conversations/{conversation['id']}/items?order=asc").json
    assert [(item["role"], item["content"][0]["text"]) for item in listed["data"]] == [
        ("user", "start"),
        ("user", "turn one"),
        ("assistant", "turn one"),
        ("developer", "no user here"),
        ("assistant", "turn one"),
    ]
    error = app.post_json(URL, {"model": "m", "input": "x", "conversation": "conv_missing"}, status=404).json
    assert error["error"] == {
        "message": "Conversation with id 'conv_missing' not found.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


@pytest.mark.parametrize(
    "body, param",
    [
        ({"items": "hi"}, "items"),
        ({"items": [{"role": "robot", "content": "x"}]}, "items[0]"),
        ({"items": [{"type": "bogus"}]}, "items[0]"),
        (
            {"items": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]},
            "items[0].content[0].type",
        ),
        ({"items": [{"role": "user", "content": "x"}] * 21}, "items"),
        ({"metadata": {f"k{n}": "v" for n in range(17)}}, "metadata"),
        ({"metadata": {"k": 1}}, "metadata.k"),
        ({"metadata": {"k": "v" * 513}}, "metadata.k"),
    ],
)
def test_conversation_validation(app: webtest.TestApp, body: Dict[str, Any], param: str) -> None:
    error = app.post_json("/v1/conversations", body, status=400).json
    validate(error, "ErrorResponse")
    assert error["error"]["param"] == param


# logprobs


def test_responses_logprobs_follow_include(app: webtest.TestApp) -> None:
    plain = create(app, input="one two", top_logprobs=2)
    assert plain["output"][0]["content"][0]["logprobs"] == []
    asked = create(app, input="one two", top_logprobs=2, include=["message.output_text.logprobs"])
    entries = asked["output"][0]["content"][0]["logprobs"]
    chat = app.post_json(
        "/v1/chat/completions",
        {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "one two"}],
            "logprobs": True,
            "top_logprobs": 2,
        },
    ).json
    assert entries == chat["choices"][0]["logprobs"]["content"]  # the same deterministic figures
    raw = app.post_json(
        URL,
        {
            "model": "gpt-4o",
            "input": "one two",
            "stream": True,
            "top_logprobs": 2,
            "include": ["message.output_text.logprobs"],
        },
    ).body
    deltas = [e for e in sse(raw) if e["type"] == "response.output_text.delta"]
    assert [d["logprobs"][0]["token"] for d in deltas] == [e["token"] for e in entries]
    assert deltas[0]["logprobs"][0]["logprob"] == entries[0]["logprob"]
    error = app.post_json(URL, {"model": "m", "input": "x", "include": ["nothing"]}, status=400).json
    assert error["error"]["param"] == "include[0]"


def test_a_function_tool_without_strict_is_answered_strict(app: webtest.TestApp) -> None:
    """The real API lists a function tool's ``strict`` (default true): the official schema requires it."""
    tool = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}
    response = create(app, input="x", tools=[tool], tool_choice="none")
    assert response["tools"] == [dict(tool, strict=True)]


def test_a_conversation_holds_each_item_id_once(app: webtest.TestApp) -> None:
    item = {"id": "msg_mine", "type": "message", "role": "user", "content": "hi"}
    conversation = app.post_json("/v1/conversations", {"items": [item]}).json
    url = f"/v1/conversations/{conversation['id']}/items"
    for body in ({"items": [item]}, {"items": [dict(item, id="msg_twice"), dict(item, id="msg_twice")]}):
        error = app.post_json(url, body, status=400).json["error"]
        assert error["code"] == "duplicate_item" and error["param"] == "items"
    again = {"model": "gpt-4o", "input": [item], "conversation": conversation["id"]}
    assert app.post_json(URL, again, status=400).json["error"]["param"] == "input"
    assert len(app.get(url).json["data"]) == 1
    other = app.post_json("/v1/conversations", {"items": [item]}).json  # another conversation may hold it
    assert app.get(f"/v1/conversations/{other['id']}/items/msg_mine").json["content"][0]["text"] == "hi"


def test_a_chain_is_bounded_as_one_conversation(tmp_path: Path) -> None:
    settings = config.load({})
    stored = Objects(str(tmp_path / "state"), Bounds(one_conversation_bytes=4000))
    responses = Responses(Replies(settings, Simulator(settings)), stored)
    app = webtest.TestApp(App(settings, [Route("POST", URL, responses.create)]))
    first = create(app, input="x" * 1000)
    turn = {"model": "m", "input": "x" * 1000}
    second = app.post_json(URL, dict(turn, previous_response_id=first["id"])).json  # three items: 3.3 kB
    error = app.post_json(URL, dict(turn, previous_response_id=second["id"]), status=400).json["error"]
    assert error["param"] == "previous_response_id" and "4000 bytes" in error["message"]


def test_a_conversation_past_its_bound_names_the_conversation(tmp_path: Path) -> None:
    from mokku.api.conversations import Conversations

    settings = config.load({})
    stored = Objects(str(tmp_path / "state"), Bounds(one_conversation_bytes=4000))
    responses = Responses(Replies(settings, Simulator(settings)), stored)
    routes = [
        Route("POST", URL, responses.create),
        Route("POST", "/v1/conversations", Conversations(stored).create),
    ]
    app = webtest.TestApp(App(settings, routes))
    conversation = app.post_json("/v1/conversations", {}).json["id"]
    turn = {"model": "m", "input": "x" * 1500, "conversation": conversation}
    app.post_json(URL, turn)
    error = app.post_json(URL, turn, status=400).json["error"]
    assert error["param"] == "conversation" and "4000 bytes" in error["message"]
