"""Scripted replies against gunicorn with two workers: shared, exact under concurrency, usable by SDK loops."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import openai
import pytest

from ..servers import LiveServer, request_json


@pytest.fixture(scope="module", params=["gunicorn", "module"])
def two_workers(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """gunicorn with two workers (the rules must be shared), and python -m mokku."""
    server = LiveServer(request.param, env={"MOKKU_THREADS": "16"}, workers=2)
    yield server
    server.close()


def script(server: LiveServer, rule: dict) -> None:
    request_json("DELETE", server.url + "/mokku/scenarios")
    status, _, body = request_json("POST", server.url + "/mokku/scenarios", rule)
    assert status == 200, body


def test_times_are_exact_across_workers(two_workers: LiveServer) -> None:
    script(two_workers, {"match": {"contains": "count me"}, "reply": {"content": "scripted"}, "times": 10})

    def call(_: int) -> str:
        with openai.OpenAI(base_url=two_workers.url + "/v1", api_key="sk-x", max_retries=0) as client:
            reply = client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "count me"}]
            )
            return reply.choices[0].message.content or ""

    with ThreadPoolExecutor(max_workers=20) as pool:
        replies = list(pool.map(call, range(40)))
    assert replies.count("scripted") == 10
    assert replies.count("count me") == 30
    (rule,) = request_json("GET", two_workers.url + "/mokku/scenarios")[2]["data"]
    assert (rule["times_left"], rule["calls"]) == (0, 10)


def test_scripted_tool_call_drives_an_sdk_loop(two_workers: LiveServer) -> None:
    script(
        two_workers,
        {
            "match": {"contains": "refund"},
            "reply": {"tool_call": {"name": "refund", "arguments": {"order": 7}}},
            "times": 1,
        },
    )
    tools = [
        {
            "type": "function",
            "function": {
                "name": "refund",
                "parameters": {"type": "object", "properties": {"order": {"type": "integer"}}},
            },
        }
    ]
    with openai.OpenAI(base_url=two_workers.url + "/v1", api_key="sk-x", max_retries=0) as client:
        messages: list = [{"role": "user", "content": "please refund my order"}]
        first = client.chat.completions.create(model="m", messages=messages, tools=tools)
        call = (first.choices[0].message.tool_calls or [])[0]
        assert call.function.name == "refund" and json.loads(call.function.arguments) == {"order": 7}
        messages += [
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "Refunded."},
        ]
        second = client.chat.completions.create(model="m", messages=messages, tools=tools)
        assert second.choices[0].message.content == "Refunded."


def test_scripted_fault_through_the_sdk(two_workers: LiveServer) -> None:
    script(two_workers, {"match": {"model": "flaky"}, "reply": {"fault": "server_error"}, "times": 1})
    with openai.OpenAI(base_url=two_workers.url + "/v1", api_key="sk-x", max_retries=1) as client:
        # The first attempt meets the scripted 500; the SDK's retry gets the echo.
        reply = client.chat.completions.create(
            model="flaky", messages=[{"role": "user", "content": "retry me"}]
        )
    assert reply.choices[0].message.content == "retry me"
