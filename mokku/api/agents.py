"""Agents that speak to the model in text: the reply their system prompt lays out, one step at a time.

Most agents call tools through the API (``tools``). A few describe their tools in the system prompt
and read the model's text instead, so the echo would never call one and the agent would spend all
its steps. For these the reply is the step a model following the prompt would write: call the
first tool the prompt lists (every argument it takes, from its schema), then, once the tool's
observation is in the conversation, answer with it.

- LlamaIndex's ``ReActAgent``: ``Thought: ... Action: <tool> Action Input: {json}``, then
  ``Thought: I can answer ... Answer: <observation>``;
- smolagents' ``CodeAgent``: ``Thought: ...`` and a code block calling the tool and printing what
  it returns, then a code block calling ``final_answer`` with what was printed.

DSPy's ``ReAct`` asks for its steps as output fields; ``tools`` answers it.
"""

from __future__ import annotations

import json
import re
from typing import Any, List, Optional, Protocol, Sequence

from mokku.api.tools import hinted_document

# What a system prompt must hold to be read as one of these agents (a substring test per request).
_LLAMA_INDEX = "## Output Format"
_SMOLAGENTS = "The code sequence must be opened with '"
MAX_PROMPT_CHARS = 64 * 1024  # of the system prompt read for its tools


class _Message(Protocol):
    @property
    def role(self) -> str: ...

    @property
    def text(self) -> str: ...


def text_step(system: Optional[str], messages: Sequence[_Message]) -> Optional[str]:
    """The step an agent's text protocol asks for, or None when the system prompt (the dialect's
    own, else the conversation's first message if a system one) is no such agent's."""
    if system is None and messages and messages[0].role in ("system", "developer"):
        system = messages[0].text
    if not system or not messages:
        return None
    if _LLAMA_INDEX in system and "Action Input:" in system:  # its tools come before its format
        return _react_step(system[:MAX_PROMPT_CHARS], messages)
    if _SMOLAGENTS in system and "final_answer" in system:
        return _code_step(system[:MAX_PROMPT_CHARS], messages)
    return None


def _last_user(messages: Sequence[_Message]) -> str:
    return next((m.text for m in reversed(messages) if m.role == "user"), messages[-1].text)


# LlamaIndex's ReAct prompt lists each tool as "> Tool Name: x", "Tool Description: ...", then
# "Tool Args: <its JSON Schema>" on one line; each tool's answer comes back as "Observation: ...".
_TOOL_NAME = re.compile(r"^> Tool Name: (.+)$", re.M)
_TOOL_ARGS = "\nTool Args: "
_OBSERVATION = "Observation:"
_ANSWERED = (
    "Thought: I can answer without using any more tools. I'll use the user's language to answer\nAnswer: "
)


def _react_step(system: str, messages: Sequence[_Message]) -> str:
    last = messages[-1]
    if last.role != "assistant" and last.text.startswith(_OBSERVATION):
        return _ANSWERED + last.text[len(_OBSERVATION) :].strip()
    text = _last_user(messages)
    listed = _TOOL_NAME.search(system)
    if listed is None:
        return _ANSWERED + text
    name = listed.group(1).strip()
    schema: Any = {"type": "object"}
    start = system.find(_TOOL_ARGS, listed.end())
    if start >= 0:
        try:
            schema, _ = json.JSONDecoder().raw_decode(system, start + len(_TOOL_ARGS))
        except (ValueError, RecursionError):
            pass
    arguments = hinted_document(schema, text) or {}
    return (
        "Thought: The current language of the user is: English. I need to use a tool to help me answer "
        f"the question.\nAction: {name}\nAction Input: {json.dumps(arguments, ensure_ascii=False)}"
    )


# smolagents lists its tools as Python signatures ("def get_weather(city: string) -> string:"),
# ``final_answer`` among them; each step's printed output comes back as "Observation: ...".
_TAGS = re.compile(r"opened with '([^'\n]{1,40})', and closed with '([^'\n]{1,40})'")
_SIGNATURE = re.compile(r"^def (\w+)\(([^)\n]*)\) ->", re.M)
# A value for each type a signature names: JSON Schema's (a tool's), or Python's (a managed agent's).
_VALUES = {"integer": "1", "number": "1.0", "boolean": "True", "array": "[]", "object": "{}", "null": "None",
           "int": "1", "float": "1.0", "bool": "True", "list": "[]", "dict": "{}", "None": "None"}  # fmt: skip
_NEW_TASK = "New task:"
_LOGS = "Execution logs:"
_LAST_OUTPUT = "Last output from code snippet:"


def _code_step(system: str, messages: Sequence[_Message]) -> str:
    tags = _TAGS.search(system)
    opening, closing = (tags.group(1), tags.group(2)) if tags is not None else ("<code>", "</code>")
    # The task is the last one given (an agent may be run again); only its observations count.
    # (smolagents joins a new task to the message before it: the last step's observation).
    tasks = [i for i, m in enumerate(messages) if m.role == "user" and _NEW_TASK in m.text]
    start = tasks[-1] if tasks else -1
    task = messages[start].text.rpartition(_NEW_TASK)[2].strip() if tasks else _last_user(messages)
    observed = [
        m.text for m in messages[start + 1 :] if m.role != "assistant" and m.text.startswith(_OBSERVATION)
    ]
    if observed:
        answer = _printed(observed[-1][len(_OBSERVATION) :])
        return f"Thought: I now have the final answer.\n{opening}\nfinal_answer({answer!r})\n{closing}"
    tools = [found for found in _SIGNATURE.finditer(system) if found.group(1) != "final_answer"]
    if not tools:
        return f"Thought: I can answer directly.\n{opening}\nfinal_answer({task!r})\n{closing}"
    name, parameters = tools[0].group(1), tools[0].group(2)
    named = [p for p in _top_level(parameters) if p.partition(":")[0].strip().isidentifier()]
    call = f"{name}({', '.join(_argument(p, task) for p in named)})"
    return f"Thought: I will use `{name}` and print what it returns.\n{opening}\nprint({call})\n{closing}"


def _argument(parameter: str, task: str) -> str:
    """``name=value`` for one parameter of a signature (``city: string``), by its type."""
    name, _, kind = parameter.partition(":")
    base = kind.split("|")[0].split("[")[0].strip()  # ``dict[str, Any]``, ``string | null``
    return f"{name.strip()}={_VALUES.get(base, repr(task))}"


def _top_level(parameters: str) -> List[str]:
    """A signature's parameters, split at the commas outside brackets (``a: dict[str, Any], b: int``)."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(parameters):
        depth += (char in "[(") - (char in "])")
        if char == "," and depth == 0:
            parts.append(parameters[start:index])
            start = index + 1
    return [*parts, parameters[start:]]


def _printed(observation: str) -> str:
    """What a step printed (its execution logs), else its last output."""
    logs, _, last = observation.partition(_LAST_OUTPUT)
    printed = logs.strip().removeprefix(_LOGS).strip()
    return printed or last.strip()
