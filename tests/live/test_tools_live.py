"""Agent-style use through the official SDK: tool loops, stream helpers, parse() into Pydantic models."""

from __future__ import annotations

import enum
import json
from typing import List, Optional

import openai
import pydantic

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
                "required": ["city", "unit"],
                "additionalProperties": False,
            },
            "strict": True,
        },
    },
    {
        "type": "function",
        "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
    },
]


def test_tool_loop_ends(client: openai.OpenAI) -> None:
    messages: list = [{"role": "user", "content": "What is the weather in Oslo?"}]
    first = client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "What is the weather in Oslo?", "unit": "c"}
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "It is 4 degrees."},
    ]
    second = client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "It is 4 degrees."


def test_forced_choice(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "now"}],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert [c.function.name for c in completion.choices[0].message.tool_calls or []] == ["get_time"]


def test_stream_helper_reassembles_tool_calls(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(
        model="gpt-4o", messages=[{"role": "user", "content": "Rome"}], tools=TOOLS, parallel_tool_calls=True
    ) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[0].function.arguments)["city"] == "Rome"
    assert final.choices[0].finish_reason == "tool_calls"


class Kind(str, enum.Enum):
    CITY = "city"
    TOWN = "town"


class Place(pydantic.BaseModel):
    name: str
    kind: Kind
    population: int
    nickname: Optional[str]


class Trip(pydantic.BaseModel):
    title: str
    stops: List[Place]
    budget: float


def test_parse_into_pydantic_models(client: openai.OpenAI) -> None:
    completion = client.chat.completions.parse(
        model="gpt-4o", messages=[{"role": "user", "content": "Plan a trip"}], response_format=Trip
    )
    trip = completion.choices[0].message.parsed
    assert isinstance(trip, Trip)
    assert trip.title == "Plan a trip"
    assert trip.stops and isinstance(trip.stops[0].kind, Kind)


def test_parse_tool_arguments(client: openai.OpenAI) -> None:
    class Lookup(pydantic.BaseModel):
        query: str
        limit: int

    completion = client.chat.completions.parse(
        model="gpt-4o",
        messages=[{"role": "user", "content": "find cats"}],
        tools=[openai.pydantic_function_tool(Lookup)],
    )
    call = (completion.choices[0].message.tool_calls or [])[0]
    assert isinstance(call.function.parsed_arguments, Lookup)
    assert call.function.parsed_arguments.query == "find cats"


def test_logprobs_through_the_sdk(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "a b"}], logprobs=True, top_logprobs=2
    )
    content = completion.choices[0].logprobs.content  # type: ignore[union-attr]
    assert [entry.token for entry in content or []] == ["a", " b"]
    assert all(len(entry.top_logprobs) == 2 for entry in content or [])


def test_a_loop_that_requires_a_tool_call_ends_on_its_output_tool(client: openai.OpenAI) -> None:
    """As pydantic-ai drives it: ``tool_choice: required`` on every turn, the answer comes as a call
    to its output tool, which the model calls once the other tool has given its result."""
    tools: List[openai.types.chat.ChatCompletionToolParam] = [
        {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}},
        {
            "type": "function",
            "function": {
                "name": "final_result",
                "parameters": {
                    "type": "object",
                    "properties": {"answer": {"type": "string"}},
                    "required": ["answer"],
                },
            },
        },
    ]
    messages: List[openai.types.chat.ChatCompletionMessageParam] = [
        {"role": "user", "content": "capital of France"}
    ]
    for _ in range(5):
        reply = client.chat.completions.create(
            model="gpt-4o", messages=messages, tools=tools, tool_choice="required"
        )
        (call,) = reply.choices[0].message.tool_calls or []
        assert call.type == "function"
        if call.function.name == "final_result":
            assert json.loads(call.function.arguments)["answer"]
            break
        messages += [
            reply.choices[0].message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": "Paris"},
        ]
    else:
        raise AssertionError("the loop did not end")
    assert len(messages) == 3  # one lookup, then the output tool


class Stop(pydantic.BaseModel):
    city: str
    nights: int


class Itinerary(pydantic.BaseModel):
    traveller: str
    stops: List[Stop]


def test_json_mode_parses_into_a_nested_model_as_instructor_asks(client: openai.OpenAI) -> None:
    """instructor's Mode.JSON: the model's schema in the system message, ``json_object`` output."""
    schema = json.dumps(Itinerary.model_json_schema(), indent=2)
    system = (
        "As a genius expert, your task is to understand the content and provide the parsed objects in json "
        f"that match the following json_schema:\n\n{schema}\n\nMake sure to return an instance of the JSON, "
        "not the schema itself"
    )
    reply = client.chat.completions.create(
        model="gpt-4o",
        response_format={"type": "json_object"},
        messages=[
            {"role": "system", "content": system},
            {"role": "user", "content": "Ada: Paris, then Rome"},
        ],
    )
    itinerary = Itinerary.model_validate_json(reply.choices[0].message.content or "")
    assert itinerary.traveller == "Ada: Paris, then Rome" and itinerary.stops
