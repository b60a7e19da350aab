"""Agents that read their steps from the model's text (LlamaIndex's ReActAgent, smolagents'
CodeAgent), in-process: each gets the step its prompt lays out, a tool called, then its answer."""

from __future__ import annotations

import ast
import json
import re
from typing import Any, Dict, List

import jsonschema
import pytest
import webtest

from .spec import validate

# LlamaIndex's ReActAgent (its system header, shortened around what it asks for).
WEATHER_ARGS = {
    "properties": {"city": {"title": "City", "type": "string"}, "days": {"type": "integer", "minimum": 1}},
    "required": ["city", "days"],
    "type": "object",
}
LLAMA_INDEX = f"""You are designed to help with a variety of tasks, from answering questions to providing summaries to other types of analyses.

## Tools

You have access to the following tools:
> Tool Name: weather
Tool Description: weather(city: str, days: int) -> str
Get weather for a city
Tool Args: {json.dumps(WEATHER_ARGS)}

> Tool Name: multiply
Tool Description: multiply(a: int, b: int) -> int
Tool Args: {{"properties": {{"a": {{"type": "integer"}}, "b": {{"type": "integer"}}}}, "required": ["a", "b"], "type": "object"}}


## Output Format

Please answer in the same language as the question and use the following format:

```
Thought: The current language of the user is: (user's language). I need to use a tool to help me answer the question.
Action: tool name (one of weather, multiply) if using a tool.
Action Input: the input to the tool, in a JSON format representing the kwargs (e.g. {{"input": "hello world", "num_beams": 5}})
```

If this format is used, the tool will respond in the following format:

```
Observation: tool response
```

At that point, you MUST respond in one of the following two formats:

```
Thought: I can answer without using any more tools. I'll use the user's language to answer
Answer: [your answer here (In the same language as the user's question)]
```

## Current Conversation

Below is the current conversation consisting of interleaving human and assistant messages."""
# smolagents' CodeAgent (its system prompt, shortened around what it asks for).
SMOLAGENTS = """You are an expert assistant who can solve any task using code blobs.
At each step, in the 'Thought:' sequence, you should first explain your reasoning towards solving the task and the tools that you want to use.
Then in the Code sequence you should write the code in simple Python. The code sequence must be opened with '<code>', and closed with '</code>'.
These print outputs will then appear in the 'Observation:' field, which will be available as input for the next step.
In the end you have to return a final answer using the `final_answer` tool.

Here are a few examples using notional tools:
---
Task: "What is the result of the following operation: 5 + 3 + 1294.678?"

Thought: I will use Python code to compute the result of the operation and then return the final answer using the `final_answer` tool.
<code>
result = 5 + 3 + 1294.678
final_answer(result)
</code>

Above examples were using notional tools that might not exist for you. On top of performing computations in the Python code snippets that you create, you only have access to these tools, behaving like regular python functions:
<code>
def get_weather(city: string, days: integer, metric: boolean) -> string:
    \"\"\"Get weather for a city.

    Args:
        city: the city name
        days: how many days
        metric: in degrees Celsius
    \"\"\"

def final_answer(answer: any) -> any:
    \"\"\"Provides a final answer to the given problem.

    Args:
        answer: The final answer to the problem
    \"\"\"

</code>

Now Begin!"""
URL = "/v1/chat/completions"


def answer(app: webtest.TestApp, path: str, system: str, conversation: List[Dict[str, str]]) -> str:
    """The reply's text, the system prompt sent as each API sends it."""
    if path == "/v1/messages":
        body: Dict[str, Any] = {"model": "claude-haiku-4-5", "max_tokens": 1024, "system": system}
        reply = app.post_json(
            path, dict(body, messages=conversation), headers={"anthropic-version": "2023-06-01"}
        )
        return str(reply.json["content"][0]["text"])
    if path == "/v1/responses":
        reply = app.post_json(path, {"model": "gpt-4o", "instructions": system, "input": conversation})
        return str(reply.json["output"][0]["content"][0]["text"])
    reply = app.post_json(
        path, {"model": "gpt-4o", "messages": [{"role": "system", "content": system}, *conversation]}
    )
    validate(reply.json, "CreateChatCompletionResponse")
    return str(reply.json["choices"][0]["message"]["content"])


PATHS = ["/v1/chat/completions", "/v1/responses", "/v1/messages"]


@pytest.mark.parametrize("path", PATHS)
def test_llama_index_react_calls_the_first_tool_then_answers(app: webtest.TestApp, path: str) -> None:
    asked = [{"role": "user", "content": "weather in Oslo"}]
    step = answer(app, path, LLAMA_INDEX, asked)
    found = re.fullmatch(r"Thought: .+\nAction: (\w+)\nAction Input: (\{.*\})", step, re.S)
    assert found is not None and found.group(1) == "weather"
    arguments = json.loads(found.group(2))
    jsonschema.validate(arguments, WEATHER_ARGS)
    observed = [
        *asked,
        {"role": "assistant", "content": step},
        {"role": "user", "content": "Observation: Sunny"},
    ]
    assert answer(app, path, LLAMA_INDEX, observed).endswith("\nAnswer: Sunny")


@pytest.mark.parametrize("path", PATHS)
def test_smolagents_code_agent_calls_the_first_tool_then_its_final_answer(
    app: webtest.TestApp, path: str
) -> None:
    asked = [{"role": "user", "content": "New task:\nweather in 'Oslo'"}]
    step = answer(app, path, SMOLAGENTS, asked)
    code = re.fullmatch(r"Thought: .+\n<code>\n(.*)\n</code>", step, re.S)
    assert code is not None
    call = ast.parse(code.group(1)).body[0].value.args[0]  # type: ignore[attr-defined]
    assert call.func.id == "get_weather"
    values = {keyword.arg: ast.literal_eval(keyword.value) for keyword in call.keywords}
    assert values == {"city": "weather in 'Oslo'", "days": 1, "metric": True}
    logs = 'Observation:\nExecution logs:\nSunny "today"\nLast output from code snippet:\nNone'
    observed = [*asked, {"role": "assistant", "content": step}, {"role": "user", "content": logs}]
    final = re.fullmatch(
        r"Thought: .+\n<code>\nfinal_answer\((.*)\)\n</code>", answer(app, path, SMOLAGENTS, observed), re.S
    )
    assert final is not None and ast.literal_eval(final.group(1)) == 'Sunny "today"'


@pytest.mark.parametrize(
    "system",
    [
        LLAMA_INDEX.replace(json.dumps(WEATHER_ARGS), "{not json"),
        LLAMA_INDEX.replace(
            json.dumps(WEATHER_ARGS), '{"type": "object", "properties": {"x": {"$ref": "#/nowhere"}}}'
        ),
        LLAMA_INDEX.split("> Tool Name")[0] + "## Output Format\nAction Input:",
        SMOLAGENTS.replace("def get_weather", "def get_weather(((("),
        SMOLAGENTS.replace(
            "def get_weather(city: string, days: integer, metric: boolean)", "def get_weather()"
        ),
        "## Output Format Action Input: " * 10_000,
    ],
)
def test_odd_agent_prompts_are_answered_in_their_format(app: webtest.TestApp, system: str) -> None:
    """A prompt that cannot be fully read still gets a step (no arguments, or the answer), never an error."""
    for path in PATHS:
        step = answer(app, path, system, [{"role": "user", "content": "hi"}])
        assert step.startswith("Thought: ")


MANAGER = SMOLAGENTS.replace(
    "def get_weather(city: string, days: integer, metric: boolean) -> string:",
    "def weather_agent(task: str, additional_args: dict[str, Any]) -> str:",
)


def code_call(step: str) -> Dict[str, Any]:
    """The keyword arguments of the call a CodeAgent step prints."""
    code = re.fullmatch(r"Thought: .+\n<code>\nprint\((.*)\)\n</code>", step, re.S)
    assert code is not None
    call = ast.parse(code.group(1)).body[0].value  # type: ignore[attr-defined]
    return {keyword.arg: ast.literal_eval(keyword.value) for keyword in call.keywords}


def test_a_code_agent_calls_for_its_task_whatever_came_since(app: webtest.TestApp) -> None:
    """A managed agent (Python type names, a bracketed type) is called with a value of each type; the
    task is the last ``New task:`` (not a planning step's prompt, not an error after a failed step),
    and only the observations since it count."""
    first = [{"role": "user", "content": "New task:\nweather in Oslo"}]
    assert code_call(answer(app, URL, MANAGER, first)) == {"task": "weather in Oslo", "additional_args": {}}
    planned = [
        *first,
        {"role": "assistant", "content": "1. Look it up"},
        {"role": "user", "content": "Now proceed and carry out this plan."},
    ]
    assert code_call(answer(app, URL, SMOLAGENTS, planned))["city"] == "weather in Oslo"
    done = [
        *first,
        {"role": "assistant", "content": "..."},
        {"role": "user", "content": "Observation:\nExecution logs:\nSunny\n"},
    ]
    # A second task, alone or as smolagents sends it: joined to the first run's last observation.
    for second in ("New task:\nweather in Rome", "Observation:\nSunny\nNew task:\nweather in Rome"):
        again = [
            *done,
            {"role": "assistant", "content": "final_answer('Sunny')"},
            {"role": "user", "content": second},
        ]
        assert code_call(answer(app, URL, SMOLAGENTS, again))["city"] == "weather in Rome"


def test_a_long_tool_list_is_read_and_requests_with_tools_are_no_text_agents(app: webtest.TestApp) -> None:
    """LlamaIndex lists its tools before its output format: a prompt past 64 KiB still gets its step.
    A request that sends its tools calls them through the API: their arguments are the echo's."""
    many = LLAMA_INDEX.replace(
        "> Tool Name: weather", "> Tool Name: weather\nTool Description: " + "x" * 80_000, 1
    )
    step = answer(app, URL, many, [{"role": "user", "content": "Oslo"}])
    assert "\nAction: weather\nAction Input: " in step
    weather = {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_ARGS}}
    asked = [{"role": "system", "content": LLAMA_INDEX}, {"role": "user", "content": "Oslo"}]
    reply = app.post_json(URL, {"model": "gpt-4o", "messages": asked, "tools": [weather]}).json
    arguments = json.loads(reply["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"])
    assert arguments["city"] == "Oslo"
