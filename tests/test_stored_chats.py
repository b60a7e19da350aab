"""Stored chat completions in-process, on each store: ``store: true`` keeps a completion (streamed
or not), and the list, retrieve, update, delete and messages endpoints answer as the API does,
every object checked against the official schemas."""

from __future__ import annotations

from typing import Any, Callable, Dict, List

import pytest
import webtest

from mokku.api.stored_chats import NAMESPACE
from mokku.control.objects import UnknownCursor

from .spec import validate
from .sse import content, parse
from .test_conversation_state import objects  # noqa: F401  (the store fixture, each backend)

URL = "/v1/chat/completions"


@pytest.fixture
def app(make_app: Callable[..., webtest.TestApp], store_env: Dict[str, str]) -> webtest.TestApp:
    """An app on a store of its own: the lists see only this test's completions."""
    return make_app(store_env)


def stored(app: webtest.TestApp, text: str, **body: Any) -> Dict[str, Any]:
    body.setdefault("model", "gpt-4o-mini")
    body.setdefault("messages", [{"role": "user", "content": text}])
    return app.post_json(URL, {"store": True, **body}).json


def ids(listing: Dict[str, Any]) -> List[str]:
    if listing["data"]:  # an empty list has no first and last ids: null, as the API's other lists
        validate(listing, "ChatCompletionList")
    return [completion["id"] for completion in listing["data"]]


def test_the_store_walks_one_prefix_past_other_conversations(objects: Callable[..., Any]) -> None:  # noqa: F811
    store = objects()
    for number in range(300):  # more than one walk's batch between the ones asked for
        store.create_conversation(f"conv_{number}", b"{}", [])
        if number % 100 == 0:
            store.create_conversation(f"p/{number}", b'{"n":%d}' % number, [])
    assert [id for id, _ in store.conversations_after("p/", None, 10, False)] == ["p/0", "p/100", "p/200"]
    assert store.conversations_after("p/", "p/0", 1, False) == [("p/100", b'{"n":100}')]
    assert [id for id, _ in store.conversations_after("p/", "p/200", 10, True)] == ["p/100", "p/0"]
    with pytest.raises(UnknownCursor):
        store.conversations_after("p/", "p/never", 10, True)
    assert store.conversations_after("q/", None, 10, False) == []


def test_a_stored_completion_is_retrieved_as_answered_with_its_metadata(app: webtest.TestApp) -> None:
    answer = stored(app, "keep me", metadata={"team": "a"})
    found = app.get(f"{URL}/{answer['id']}").json
    validate(found, "CreateChatCompletionResponse")
    assert found == {**answer, "metadata": {"team": "a"}}
    unstored = app.post_json(URL, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
    assert app.get(f"{URL}/{unstored.json['id']}", status=404).json["error"] == {
        "message": f"Chat completion with id '{unstored.json['id']}' not found.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    off = app.post_json(
        URL, {"model": "gpt-4o-mini", "store": False, "messages": [{"role": "user", "content": "x"}]}
    )
    app.get(f"{URL}/{off.json['id']}", status=404)


def test_a_streamed_completion_is_stored_whole(app: webtest.TestApp) -> None:
    raw = app.post_json(
        URL,
        {
            "model": "gpt-4o-mini",
            "store": True,
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "streamed and kept"}],
        },
    ).body
    chunks = parse(raw)
    text = content(chunks)
    found = app.get(f"{URL}/{chunks[0]['id']}").json
    validate(found, "CreateChatCompletionResponse")
    assert found["choices"][0]["message"]["content"] == text == "streamed and kept"
    assert found["usage"] == chunks[-1]["usage"]


def test_the_list_pages_both_ways_and_filters_by_model_and_metadata(app: webtest.TestApp) -> None:
    made = [
        stored(
            app,
            f"n{number}",
            model="gpt-4.1" if number == 2 else "gpt-4o-mini",
            metadata={"odd": str(number % 2)},
        )
        for number in range(5)
    ]
    every = [completion["id"] for completion in made]
    assert ids(app.get(URL).json) == every  # oldest first unless asked
    assert ids(app.get(URL, {"order": "desc"}).json) == every[::-1]
    first = app.get(URL, {"limit": 2}).json
    assert ids(first) == every[:2] and first["has_more"] and first["last_id"] == every[1]
    rest = app.get(URL, {"limit": 2, "after": first["last_id"]}).json
    assert ids(rest) == every[2:4] and rest["has_more"]
    last = app.get(URL, {"limit": 2, "after": rest["last_id"]}).json
    assert ids(last) == every[4:] and not last["has_more"]
    assert ids(app.get(URL, {"model": "gpt-4.1"}).json) == [every[2]]
    assert ids(app.get(URL, {"metadata[odd]": "1"}).json) == [every[1], every[3]]
    assert ids(app.get(URL, {"metadata[odd]": "0", "model": "gpt-4o-mini", "order": "desc"}).json) == [
        every[4],
        every[0],
    ]
    assert app.get(URL, {"metadata[none]": "x"}).json == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }


def test_messages_list_what_the_completion_was_asked_with(app: webtest.TestApp) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look "},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                {"type": "text", "text": "here"},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "done"},
    ]
    answer = stored(app, "", messages=messages)
    listing = app.get(f"{URL}/{answer['id']}/messages").json
    listed = listing["data"]
    assert [m["id"] for m in listed] == [f"{answer['id']}-{n}" for n in range(4)]
    assert [m["role"] for m in listed] == ["system", "user", "assistant", "tool"]
    assert listed[0] == {
        "id": f"{answer['id']}-0",
        "role": "system",
        "content": "be brief",
        "name": None,
        "content_parts": None,
    }
    assert listed[1]["content"] == "look here" and listed[1]["content_parts"] == messages[1]["content"]
    assert listed[2]["tool_calls"] == messages[2]["tool_calls"] and listed[2]["content"] is None
    assert listed[3]["tool_call_id"] == "call_1"
    assert listing["first_id"] == listed[0]["id"] and listing["last_id"] == listed[3]["id"]
    page = app.get(
        f"{URL}/{answer['id']}/messages", {"limit": 1, "order": "desc", "after": listed[2]["id"]}
    ).json
    assert [m["id"] for m in page["data"]] == [listed[1]["id"]] and page["has_more"]
    app.get(f"{URL}/chatcmpl-none/messages", status=404)


def test_a_client_deleting_what_it_pages_through_sees_each_completion_once(app: webtest.TestApp) -> None:
    every = [stored(app, f"number {number}")["id"] for number in range(5)]
    seen: List[str] = []
    query: Dict[str, Any] = {"limit": 2}
    while True:
        page = app.get(URL, query).json
        seen += ids(page)
        app.delete(f"{URL}/{page['last_id']}")  # the cursor of the next page
        if not page["has_more"]:
            break
        query["after"] = page["last_id"]
    assert seen == every and ids(app.get(URL).json) == [every[0], every[2]]
    refused = app.get(URL, {"after": "chatcmpl-never"}, status=400).json["error"]
    assert refused == {
        "message": "Invalid 'after': 'chatcmpl-never' is not the id of an object in this list.",
        "type": "invalid_request_error",
        "param": "after",
        "code": "invalid_value",
    }
    answer = stored(app, "hi")["id"]
    assert app.get(f"{URL}/{answer}/messages", {"after": "x"}, status=400).json["error"] == {
        **refused,
        "message": "Invalid 'after': 'x' is not the id of an object in this list.",
    }


def test_update_sets_the_metadata_and_delete_removes_it(app: webtest.TestApp) -> None:
    answer = stored(app, "change me", metadata={"a": "1"})
    updated = app.post_json(f"{URL}/{answer['id']}", {"metadata": {"b": "2"}}).json
    validate(updated, "CreateChatCompletionResponse")
    assert updated["metadata"] == {"b": "2"} and app.get(f"{URL}/{answer['id']}").json == updated
    assert ids(app.get(URL, {"metadata[b]": "2"}).json) == [answer["id"]]
    missing = app.post_json(f"{URL}/{answer['id']}", {}, status=400).json["error"]
    assert missing["param"] == "metadata"
    deleted = app.delete(f"{URL}/{answer['id']}").json
    validate(deleted, "ChatCompletionDeleted")
    assert deleted == {"object": "chat.completion.deleted", "id": answer["id"], "deleted": True}
    for method in (app.get, app.delete):
        method(f"{URL}/{answer['id']}", status=404)
    app.post_json(f"{URL}/{answer['id']}", {"metadata": {}}, status=404)
    assert ids(app.get(URL).json) == []


@pytest.mark.parametrize(
    "body, param",
    [
        ({"store": "yes"}, "store"),
        ({"store": True, "metadata": ["a"]}, "metadata"),
        ({"store": True, "metadata": {"k": 1}}, "metadata.k"),
        ({"store": True, "metadata": {f"k{n}": "v" for n in range(17)}}, "metadata"),
        ({"metadata": {"k": "v"}}, "metadata"),  # the API keeps metadata only on a stored completion
        ({"store": False, "metadata": {"k": "v"}}, "metadata"),
    ],
)
def test_bad_store_and_metadata_are_400s(app: webtest.TestApp, body: Dict[str, Any], param: str) -> None:
    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], **body}
    error = app.post_json(URL, request, status=400).json["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
    if "store" not in body:
        assert error["message"] == "The 'metadata' parameter is only allowed when 'store' is enabled."
    assert ids(app.get(URL).json) == []


def test_empty_or_null_metadata_needs_no_store(app: webtest.TestApp) -> None:
    for metadata in ({}, None):
        request = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "x"}],
            "metadata": metadata,
        }
        assert app.post_json(URL, request).json["object"] == "chat.completion"


@pytest.mark.parametrize(
    "query, param",
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"order": "up"}, "order"),
    ],
)
def test_bad_list_queries_are_400s(app: webtest.TestApp, query: Dict[str, str], param: str) -> None:
    answer = stored(app, "x")
    for path in (URL, f"{URL}/{answer['id']}/messages"):
        assert app.get(path, query, status=400).json["error"]["param"] == param


def test_a_stored_completion_is_no_conversation(app: webtest.TestApp) -> None:
    answer = stored(app, "not a conversation")
    app.get(f"/v1/conversations/{NAMESPACE}{answer['id']}", status=404)
    body = {"model": "gpt-4o", "input": "x", "conversation": NAMESPACE + answer["id"]}
    assert app.post_json("/v1/responses", body, status=404).json["error"]["param"] is None
    assert app.get(f"{URL}/{answer['id']}").json["id"] == answer["id"]


def test_ids_stay_unique_when_the_caller_seeds_the_random_module(app: webtest.TestApp) -> None:
    """A test suite that seeds ``random`` before each test (pytest-randomly, Hypothesis) shares the
    module with an in-process server: the same id twice was a 503 from the store."""
    import random

    random.seed(42)
    first = stored(app, "one")
    random.seed(42)
    second = stored(app, "two")
    assert first["id"] != second["id"]
    random.seed(42)
    one = app.post_json(
        "/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}
    )
    random.seed(42)
    two = app.post_json(
        "/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}
    )
    assert one.headers["x-request-id"] != two.headers["x-request-id"]
