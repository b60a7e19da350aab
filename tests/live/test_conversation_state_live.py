"""Conversation state through the official SDK, under gunicorn with two workers and ``python -m mokku``:
every stored object is answered the same by any worker, and none is lost or duplicated."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, List, Set

import openai
import pytest

from ..servers import LiveServer, request_json, run_python
from ..spec import validate

# Each request on a new connection, so that the two workers share the traffic.
NEW_CONNECTIONS = {"Connection": "close"}


@pytest.fixture(scope="module", params=[("gunicorn", 2), ("module", 1)], ids=["gunicorn-2-workers", "module"])
def server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    kind, workers = request.param
    live = LiveServer(kind, workers=workers)
    yield live
    live.close()


@pytest.fixture
def sdk(server: LiveServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=server.url + "/v1", api_key="sk-test", max_retries=0, default_headers=NEW_CONNECTIONS
    ) as client:
        yield client


def dump(model: object) -> dict:
    return model.model_dump(mode="json", exclude_unset=True)  # type: ignore[attr-defined]


def test_a_created_response_is_retrieved_from_any_worker(sdk: openai.OpenAI) -> None:
    created = sdk.responses.create(model="gpt-4o", input="remember me")
    for _ in range(50):
        found = sdk.responses.retrieve(created.id)
        assert found.id == created.id and found.output_text == "remember me"
    validate(dump(found), "Response")
    unstored = sdk.responses.create(model="gpt-4o", input="forget me", store=False)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(unstored.id)


def test_a_five_turn_chain_grows_its_input(sdk: openai.OpenAI) -> None:
    response = sdk.responses.create(model="gpt-4o", input="turn 0", instructions="Answer briefly.")
    tokens = [response.usage.input_tokens]  # type: ignore[union-attr]
    for turn in range(1, 5):
        response = sdk.responses.create(
            model="gpt-4o", input=f"turn {turn}", previous_response_id=response.id
        )
        assert response.output_text == f"turn {turn}" and response.instructions is None
        tokens.append(response.usage.input_tokens)  # type: ignore[union-attr]
    assert all(later > earlier for earlier, later in zip(tokens, tokens[1:]))
    texts = [
        item.content[0].text for item in sdk.responses.input_items.list(response.id, order="asc", limit=2)
    ]  # type: ignore[union-attr]
    assert texts == ["turn 0", "turn 0", "turn 1", "turn 1", "turn 2", "turn 2", "turn 3", "turn 3", "turn 4"]
    page = sdk.responses.input_items.list(response.id, limit=3)
    validate(dump(page), "ResponseItemList")
    assert page.has_more and page.first_id == page.data[0].id and page.data[0].content[0].text == "turn 4"  # type: ignore[union-attr]


def test_an_unknown_previous_response_is_refused(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.responses.create(model="gpt-4o", input="hi", previous_response_id="resp_unknown")
    assert caught.value.code == "previous_response_not_found" and caught.value.param == "previous_response_id"
    assert caught.value.body["message"] == "Previous response with id 'resp_unknown' not found."  # type: ignore[index]


def test_background_responses_are_polled_and_cancelled(sdk: openai.OpenAI) -> None:
    slow = {"X-Mokku-Latency-Ms": "600", "X-Mokku-Token-Ms": "300"}
    created = sdk.responses.create(model="gpt-4o", input="one two three", background=True, extra_headers=slow)
    assert created.status == "queued" and created.background
    seen = [created.status]
    deadline = time.monotonic() + 60
    while seen[-1] != "completed" and time.monotonic() < deadline:
        time.sleep(0.05)
        seen.append(sdk.responses.retrieve(created.id).status)  # type: ignore[arg-type]
    order = ["queued", "in_progress", "completed"]
    assert seen[-1] == "completed" and [order.index(s) for s in seen] == sorted(order.index(s) for s in seen)
    done = sdk.responses.retrieve(created.id)
    assert done.output_text == "one two three"
    validate(dump(done), "Response")

    waiting = sdk.responses.create(
        model="gpt-4o", input="never", background=True, extra_headers={"X-Mokku-Latency-Ms": "60000"}
    )
    cancelled = sdk.responses.cancel(waiting.id)
    assert cancelled.status == "cancelled"
    assert sdk.responses.retrieve(waiting.id).status == "cancelled"
    validate(dump(cancelled), "Response")


def test_a_background_stream_resumes_where_the_client_left(sdk: openai.OpenAI) -> None:
    events = list(
        sdk.responses.create(model="gpt-4o", input="alpha beta gamma", background=True, stream=True)
    )
    assert events[0].type == "response.created" and events[0].response.status == "queued"
    assert events[-1].type == "response.completed"
    cut = 5
    resumed = list(sdk.responses.retrieve(events[0].response.id, stream=True, starting_after=cut))
    assert [e.sequence_number for e in resumed] == [e.sequence_number for e in events[cut + 1 :]]
    assert [e.type for e in resumed] == [e.type for e in events[cut + 1 :]]
    text = "".join(e.delta for e in resumed if e.type == "response.output_text.delta")
    assert text in "alpha beta gamma" and resumed[-1].response.output_text == "alpha beta gamma"  # type: ignore[union-attr]


def test_an_open_background_stream_stops_when_its_response_is_cancelled(sdk: openai.OpenAI) -> None:
    words = " ".join(f"w{n}" for n in range(40))
    paced = {"X-Mokku-Latency-Ms": "100", "X-Mokku-Token-Ms": "100"}

    def until_cancelled(stream: Iterator[object], response_id: str = "") -> List[object]:
        seen: List[object] = []
        for event in stream:
            seen.append(event)
            response_id = response_id or event.response.id  # type: ignore[attr-defined]
            if event.type == "response.output_text.delta":  # type: ignore[attr-defined]
                assert sdk.responses.cancel(response_id).status == "cancelled"
                break
        seen.extend(stream)
        return seen

    created = sdk.responses.create(
        model="gpt-4o", input=words, background=True, stream=True, extra_headers=paced
    )
    first = until_cancelled(iter(created))
    response_id = first[0].response.id  # type: ignore[attr-defined]
    types = [e.type for e in first]  # type: ignore[attr-defined]
    assert "response.completed" not in types and types.count("response.output_text.delta") < 5
    assert sdk.responses.retrieve(response_id).status == "cancelled"

    queued = sdk.responses.create(model="gpt-4o", input=words, background=True, extra_headers=paced)
    resumed = until_cancelled(
        iter(sdk.responses.retrieve(queued.id, stream=True, starting_after=0)), queued.id
    )
    types = [e.type for e in resumed]  # type: ignore[attr-defined]
    assert "response.completed" not in types and types.count("response.output_text.delta") < 5
    assert sdk.responses.retrieve(queued.id).status == "cancelled"

    # Cancelled during its time to first token (60 s), a stream ends then, without the events that
    # would follow the wait (``response.in_progress`` first); a resumed one sends its headers at
    # once, its first event a wait away.
    waiting = {"X-Mokku-Latency-Ms": "60000"}
    for resume in (False, True):
        if resume:
            response_id = sdk.responses.create(
                model="gpt-4o", input=words, background=True, extra_headers=waiting
            ).id
            opened = iter(sdk.responses.retrieve(response_id, stream=True, starting_after=1))
        else:
            opened = iter(
                sdk.responses.create(
                    model="gpt-4o", input=words, background=True, stream=True, extra_headers=waiting
                )
            )
            for event in opened:
                if event.type == "response.queued":
                    response_id = event.response.id
                    break
        assert sdk.responses.cancel(response_id).status == "cancelled"
        assert [e.type for e in opened] == []
    journal = request_json("GET", str(sdk.base_url.join("/mokku/requests?limit=50")))[2]
    outcomes = [
        entry["stream"]["outcome"]
        for entry in journal["data"]  # type: ignore[index]
        if entry.get("stream") and entry["path"].startswith("/v1/responses")
    ]
    assert outcomes.count("cancelled") >= 4


def test_conversations_through_the_sdk(sdk: openai.OpenAI) -> None:
    conversation = sdk.conversations.create(
        items=[{"role": "user", "content": "hello"}], metadata={"run": "1"}
    )
    validate(dump(conversation), "ConversationResource")
    assert sdk.conversations.retrieve(conversation.id).metadata == {"run": "1"}
    updated = sdk.conversations.update(conversation.id, metadata={"run": "2"})
    assert updated.metadata == {"run": "2"}
    reply = sdk.responses.create(model="gpt-4o", input="what did I say?", conversation=conversation.id)
    assert reply.output_text == "what did I say?" and reply.conversation.id == conversation.id  # type: ignore[union-attr]
    added = sdk.conversations.items.create(conversation.id, items=[{"role": "user", "content": "later"}])
    validate(dump(added), "ConversationItemList")
    listed = list(sdk.conversations.items.list(conversation.id, order="asc", limit=2))
    texts = [item.content[0].text for item in listed]  # type: ignore[union-attr]
    assert texts == ["hello", "what did I say?", "what did I say?", "later"]
    one = sdk.conversations.items.retrieve(listed[-1].id, conversation_id=conversation.id)  # type: ignore[union-attr]
    assert one.id == listed[-1].id  # type: ignore[union-attr]
    sdk.conversations.items.delete(listed[-1].id, conversation_id=conversation.id)  # type: ignore[union-attr]
    assert len(list(sdk.conversations.items.list(conversation.id))) == 3
    deleted = sdk.conversations.delete(conversation.id)
    assert deleted.deleted and deleted.id == conversation.id
    with pytest.raises(openai.NotFoundError):
        sdk.conversations.retrieve(conversation.id)


def test_required_tool_choice_after_a_tool_result_ends_the_loop(sdk: openai.OpenAI) -> None:
    """pydantic-ai's loop on the Responses API: ``required`` every turn; its output tool ends it."""
    tools = [
        {"type": "function", "name": "lookup", "parameters": {"type": "object"}, "strict": False},
        {
            "type": "function",
            "name": "final_result",
            "parameters": {
                "type": "object",
                "properties": {"answer": {"type": "string"}},
                "required": ["answer"],
            },
            "strict": False,
        },
    ]
    response = sdk.responses.create(
        model="gpt-4o", input="capital of France", tools=tools, tool_choice="required"
    )  # type: ignore[arg-type]
    names = []
    for _ in range(5):
        (call,) = response.output
        assert call.type == "function_call"
        names.append(call.name)
        if call.name == "final_result":
            assert json.loads(call.arguments)["answer"]
            break
        output = {"type": "function_call_output", "call_id": call.call_id, "output": "Paris"}
        response = sdk.responses.create(
            model="gpt-4o",
            input=[output],
            previous_response_id=response.id,
            tools=tools,
            tool_choice="required",  # type: ignore[arg-type, list-item]
        )
    assert names == ["lookup", "final_result"]


# An Agents SDK agent with one tool, on the server named by the script's argument.
AGENT_SETUP = """
import asyncio, sys
from openai import AsyncOpenAI
from agents import Agent, Runner, OpenAIResponsesModel, SQLiteSession, function_tool, set_tracing_disabled
from agents.memory import OpenAIResponsesCompactionSession

set_tracing_disabled(True)
client = AsyncOpenAI(base_url=sys.argv[1], api_key="sk-test")

@function_tool
def weather(city: str) -> str:
    return f"Sunny in {city}"

agent = Agent(name="a", model=OpenAIResponsesModel("gpt-4o", client), tools=[weather])
"""

AGENT_SCRIPT = (
    AGENT_SETUP
    + """
async def main():
    first = await Runner.run(agent, "Oslo")
    second = await Runner.run(agent, "Bergen", previous_response_id=first.last_response_id)
    conversation = await client.conversations.create()
    third = await Runner.run(agent, "Tromso", conversation_id=conversation.id)
    fourth = await Runner.run(agent, "Narvik", conversation_id=conversation.id)
    items = [item async for item in client.conversations.items.list(conversation.id, order="asc")]
    print(first.final_output, second.final_output, third.final_output, fourth.final_output, sep="|")
    print(len(items))
    # each run's first request: the earlier turns count in its input
    print(*(run.raw_responses[0].usage.input_tokens for run in (first, second, third, fourth)))

asyncio.run(main())
"""
)


def test_the_agents_sdk_keeps_state_on_the_server(server: LiveServer) -> None:
    answers, count, tokens = run_python(AGENT_SCRIPT, server.url + "/v1").strip().splitlines()
    assert answers == "Sunny in Oslo|Sunny in Bergen|Sunny in Tromso|Sunny in Narvik"
    # two runs in the conversation, each: the user's input, the call, its output, the answer
    assert int(count) == 8
    first, second, third, fourth = map(int, tokens.split())
    assert second > first and fourth > third  # continued: the earlier turns are part of the input


def test_no_object_is_lost_or_duplicated_under_200_concurrent_requests(server: LiveServer) -> None:
    """Each request on its own connection (``request_json``), 200 at once, all in one conversation."""
    status, _, conversation = request_json("POST", server.url + "/v1/conversations", {})
    assert status == 200
    conversation_id = conversation["id"]  # type: ignore[index]

    def create(number: int) -> str:
        body = {"model": "gpt-4o", "input": f"message {number}", "conversation": conversation_id}
        status, _, answer = request_json("POST", server.url + "/v1/responses", body, timeout=120)
        assert status == 200, answer
        return answer["id"]  # type: ignore[index]

    with ThreadPoolExecutor(max_workers=200) as pool:
        ids = list(pool.map(create, range(200)))
    assert len(set(ids)) == 200

    def retrieve(response_id: str) -> str:
        status, _, answer = request_json("GET", server.url + f"/v1/responses/{response_id}", timeout=120)
        assert status == 200, answer
        return answer["output"][0]["content"][0]["text"]  # type: ignore[index]

    with ThreadPoolExecutor(max_workers=200) as pool:
        texts = list(pool.map(retrieve, ids))
    assert sorted(texts) == sorted(f"message {n}" for n in range(200))

    items: List[dict] = []
    query = "limit=100&order=asc"
    while True:
        status, _, page = request_json(
            "GET", server.url + f"/v1/conversations/{conversation_id}/items?{query}"
        )
        assert status == 200
        items += page["data"]  # type: ignore[index]
        if not page["has_more"]:  # type: ignore[index]
            break
        query = f"limit=100&order=asc&after={page['last_id']}"  # type: ignore[index]
    ids_seen: Set[str] = {item["id"] for item in items}
    assert len(items) == 400 and len(ids_seen) == 400  # each request's input and output, once
    inputs = [item["content"][0]["text"] for item in items if item["role"] == "user"]
    assert sorted(inputs) == sorted(f"message {n}" for n in range(200))


COMPACTION_SCRIPT = (
    AGENT_SETUP
    + """
session = OpenAIResponsesCompactionSession(
    "s", SQLiteSession("s"), client=client, model="gpt-4.1", should_trigger_compaction=lambda context: True
)

async def main():
    first = await Runner.run(agent, "Oslo", session=session)
    second = await Runner.run(agent, "Bergen", session=session)
    items = await session.get_items()
    print(first.final_output, second.final_output, sep="|")
    print(*(item.get("type", "message") + ":" + item.get("role", "") for item in items))

asyncio.run(main())
"""
)


def test_the_agents_sdk_compacts_its_session(server: LiveServer) -> None:
    answers, kinds = run_python(COMPACTION_SCRIPT, server.url + "/v1").strip().splitlines()
    assert answers == "Sunny in Oslo|Sunny in Bergen"
    # After each run the session is compacted: the user messages, then one compaction item.
    assert kinds.split() == ["message:user", "message:user", "compaction:"]


def test_stored_chat_completions_through_the_sdk_from_any_worker(sdk: openai.OpenAI) -> None:
    """Kept by one worker, listed, paged, updated and deleted through others."""
    tag = {"run": str(time.time_ns())}  # this test's completions, whatever else the server holds
    made = [
        sdk.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"kept {n}"}], store=True, metadata=tag
        )
        for n in range(3)
    ]
    streamed = sdk.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "kept 3"}],
        store=True,
        metadata=tag,
        stream=True,
    )
    made_ids = [c.id for c in made] + [next(iter(streamed)).id]
    for _ in streamed:
        pass
    listed = [c.id for c in sdk.chat.completions.list(metadata=tag, limit=2)]  # iterating follows the pages
    assert listed == made_ids
    found = sdk.chat.completions.retrieve(made_ids[3])
    assert found.choices[0].message.content == "kept 3"
    validate(dump(found), "CreateChatCompletionResponse")
    messages = sdk.chat.completions.messages.list(made_ids[0])
    assert [(m.id, m.content) for m in messages.data] == [(f"{made_ids[0]}-0", "kept 0")]
    updated = sdk.chat.completions.update(made_ids[0], metadata={**tag, "seen": "yes"})
    assert dump(updated)["metadata"] == {**tag, "seen": "yes"}
    assert [c.id for c in sdk.chat.completions.list(metadata={"seen": "yes", **tag})] == made_ids[:1]
    assert sdk.chat.completions.delete(made_ids[0]).deleted
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.retrieve(made_ids[0])
    assert [c.id for c in sdk.chat.completions.list(metadata=tag, order="desc")] == made_ids[:0:-1]
