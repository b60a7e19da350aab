"""Tool calls: which functions the "model" calls, and with what arguments.

The rule: when ``tools`` (or the legacy ``functions``) are sent and the choice is not ``none``,
the reply calls a function instead of echoing, unless the last message is a tool (or function)
result, which is echoed as text, so that agent loops end. ``auto`` and ``required`` call the
first function; a named choice calls that one; with ``parallel_tool_calls: true`` sent
explicitly and several functions, each is called once, in order. Arguments are generated from
the function's ``parameters`` schema (see ``schemagen``), strings filled with the echo text.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any, Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from mokku import errors
from mokku.api import schemagen, strict, validate
from mokku.api.ids import random_id
from mokku.api.tokens import count, tokenize

EMPTY_PARAMETERS = {"type": "object", "properties": {}}


class Function(NamedTuple):
    name: str
    parameters: Dict[str, Any]
    param: str  # where it was declared, for error messages
    description: str = ""  # read only for what a handoff may hand to


class OutputFormat(NamedTuple):
    """Structured output: ``json_object``, ``json_schema`` (with its schema), ``enum`` (a schema
    whose value is answered bare, as Gemini's ``text/x.enum``), ``prompted`` (a schema only the
    prompt gives: a document when one fits it, else plain text) or ``fields`` (DSPy's ChatAdapter:
    the fields its prompt lays out, each under its header)."""

    kind: str
    schema: Optional[Dict[str, Any]]
    param: str  # where the schema was given, for errors


FORMATS = ("text", "json_object", "json_schema")
# As each endpoint lists them when refusing another: chat's response_format, the Responses API's text.format.
_LISTED_FORMATS = {
    True: ("json_object", "json_schema", "text"),
    False: ("json_object", "text", "json_schema"),
}


class Call(NamedTuple):
    id: str
    name: str
    arguments: str  # a JSON document, as the API sends it; its beginning when ``cut``
    cut: bool = False  # the token limit came while the arguments were being written


MAX_CHAT_TOOLS = 128  # the real API's 400 past it


def read_functions(body: Mapping[str, Any], flat: bool = False) -> Tuple[List[Function], int]:
    """The function tools of ``tools``, and how many tools there are in all; other tool types are
    accepted but never called.

    Chat nests a function under ``function`` (``{"type": "function", "function": {"name": ...}}``)
    and takes at most ``MAX_CHAT_TOOLS``; the Responses API puts it at the top level (``flat``).
    """
    functions = []
    # Chat refuses an empty list; the Responses API takes one.
    tools = (
        validate.array(
            body.get("tools"),
            "tools",
            0 if flat else 1,
            None if flat else MAX_CHAT_TOOLS,
            "an array of tools" if flat else "an array of objects",
        )
        or []
    )
    for index, tool in enumerate(tools):
        param = f"tools[{index}]"
        if not isinstance(tool, dict):
            raise validate.wrong_type(param, "an object", tool)
        kind = validate.required_string(tool, "type", f"{param}.type")
        if flat:
            check_typed(tool, param, RESPONSES_TOOLS)
            validate.string(tool.get("description"), f"{param}.description")
            validate.fields(tool, param, (), TOOL_OPTIONS.get(kind, {}))
            if kind != "function":
                continue
            definition, where = tool, param
        else:
            if kind not in ("function", "custom"):
                raise validate.invalid_value(f"{param}.type", kind, ("function", "custom"))
            where = f"{param}.{kind}"
            definition = validate.obj(validate.required(tool, kind, where), where) or {}
            validate.string(definition.get("description"), f"{where}.description")
            if kind == "custom" and "format" in definition:
                _chat_custom_format(definition["format"], f"{where}.format")
        name = validate.function_name(validate.required(definition, "name", f"{where}.name"), f"{where}.name")
        if kind == "function":
            parameters = _parameters(definition, name, where)
            functions.append(Function(name, parameters, f"{where}.parameters", described(definition)))
    return functions, len(tools)


def described(definition: Mapping[str, Any]) -> str:
    """A tool's ``description`` when it is a string, else ""."""
    description = definition.get("description")
    return description if isinstance(description, str) else ""


def _container(value: Any, param: str) -> Any:
    """A code interpreter's ``container``: its id, or the object that makes one."""
    if not isinstance(value, (str, dict)):
        raise validate.wrong_type(param, "one of a string or an object", value)
    return value


_TEXT, _LIST = validate.string, validate.array
# The Responses API's tool types (``Tool``), each with the fields it requires besides its type, and
# the check of each.
RESPONSES_TOOLS: Dict[str, Dict[str, validate.Check]] = {
    "function": {"name": _TEXT},
    "file_search": {"vector_store_ids": validate.array_of(_TEXT)},
    "computer": {},
    "computer_use_preview": {
        "environment": _TEXT,
        "display_width": validate.integer,
        "display_height": validate.integer,
    },
    "web_search": {},
    "web_search_2025_08_26": {},
    "mcp": {"server_label": _TEXT},
    "code_interpreter": {"container": _container},
    "programmatic_tool_calling": {},
    "image_generation": {},
    "local_shell": {},
    "shell": {},
    "custom": {"name": _TEXT},
    "namespace": {"name": _TEXT, "description": _TEXT, "tools": _LIST},
    "tool_search": {},
    "web_search_preview": {},
    "web_search_preview_2025_03_11": {},
    "apply_patch": {},
}
_WEB_SEARCH = {
    "search_context_size": validate.one_of("low", "medium", "high"),
    "user_location": validate.obj,
    "filters": validate.obj,
}
_SYNTAX = validate.one_of("lark", "regex")


def _custom_format(value: Any, param: str) -> Any:
    """A custom tool's input format, as the Responses API takes it: text, or a grammar."""
    if validate.obj(value, param) is not None:
        check_typed(value, param, {"text": {}, "grammar": {"syntax": _SYNTAX, "definition": _TEXT}})
    return value


def _chat_custom_format(value: Any, param: str) -> Any:
    """A custom tool's input format, as chat takes it: text, or a grammar in its own object."""
    if validate.obj(value, param) is not None and check_typed(value, param, _CHAT_FORMATS) == "grammar":
        validate.fields(value["grammar"], f"{param}.grammar", ("definition", "syntax"), _GRAMMAR)
    return value


_GRAMMAR = {"definition": _TEXT, "syntax": _SYNTAX}
_CHAT_FORMATS: Dict[str, Dict[str, validate.Check]] = {"text": {}, "grammar": {"grammar": validate.obj}}
# The optional fields of the Responses API's tools that are checked, by type.
TOOL_OPTIONS: Dict[str, Dict[str, validate.Check]] = {
    "web_search": _WEB_SEARCH,
    "web_search_2025_08_26": _WEB_SEARCH,
    "web_search_preview": _WEB_SEARCH,
    "web_search_preview_2025_03_11": _WEB_SEARCH,
    "custom": {"format": _custom_format},
}
# Its ``tool_choice`` object types (``ToolChoiceParam``), likewise.
RESPONSES_CHOICES: Dict[str, Dict[str, validate.Check]] = {
    "allowed_tools": {},  # its mode and tools are read where it is obeyed
    "file_search": {},
    "web_search_preview": {},
    "computer": {},
    "computer_use_preview": {},
    "computer_use": {},
    "web_search_preview_2025_03_11": {},
    "image_generation": {},
    "code_interpreter": {},
    "function": {"name": _TEXT},
    "mcp": {},  # server_label too, by the spec; openai-agents and the AI SDK send it without
    "custom": {"name": _TEXT},
    "programmatic_tool_calling": {},
    "apply_patch": {},
    "shell": {},
    # Not in the spec's enum, yet what openai-agents and the AI SDK send to force these tools.
    "web_search": {},
    "web_search_2025_08_26": {},
    "tool_search": {},
    "local_shell": {},
}


def check_typed(
    value: Mapping[str, Any], param: str, known: Mapping[str, Mapping[str, validate.Check]]
) -> str:
    """A tool or tool choice of a ``known`` type, with the fields its type requires, each of its
    type: 400 naming the field that is not. Its type."""
    kind = validate.required_string(value, "type", f"{param}.type")
    if kind not in known:
        raise validate.invalid_value(f"{param}.type", kind, tuple(known))
    for field, check in known[kind].items():
        check(validate.required(value, field, f"{param}.{field}"), f"{param}.{field}")
    return kind


# The forced tools the spec's enum lacks, as a response lists them: the same tool by its listed name.
_LISTED_CHOICES = {
    "web_search": "web_search_preview",
    "web_search_2025_08_26": "web_search_preview",
    "local_shell": "shell",
}


def listed_choice(choice: Any, given: Iterable[Any]) -> Any:
    """``tool_choice`` as a response lists it: a form only the agent SDKs send, in a form of the
    spec's (a bare ``mcp`` with the first MCP server's label, a tool search as ``required``)."""
    if not isinstance(choice, dict):
        return choice or "auto"
    kind = choice.get("type")
    if kind in _LISTED_CHOICES:
        return {"type": _LISTED_CHOICES[kind]}
    if kind == "mcp" and "server_label" not in choice:
        labels = [
            tool.get("server_label") for tool in given if isinstance(tool, dict) and tool.get("type") == "mcp"
        ]
        return (
            {"type": "mcp", "server_label": labels[0]}
            if labels and isinstance(labels[0], str)
            else "required"
        )
    return "required" if kind == "tool_search" else choice


def check_responses_choice(choice: Any, given: Any = ()) -> None:
    """A ``tool_choice`` object of a type the Responses API knows, with the fields its type requires,
    forcing (or allowing) tools that ``given`` holds (None: tools not all known here): else 400 in
    the real API's words."""
    if not isinstance(choice, dict):
        return
    kind = check_typed(choice, "tool_choice", RESPONSES_CHOICES)
    if given is None:
        return
    listed = given if isinstance(given, list) else []
    wanted = choice.get("tools") if kind == "allowed_tools" else [choice]
    for entry in wanted if isinstance(wanted, list) else ():
        if isinstance(entry, dict) and (kind == "allowed_tools" or entry.get("type") != "function"):
            missing = _not_given(entry, listed)
            if missing is not None:
                raise errors.invalid_request(
                    f"Tool choice '{missing}' not found in 'tools' parameter.", "tool_choice"
                )


_WEB_SEARCHES = ("web_search", "web_search_2025_08_26", "web_search_preview", "web_search_preview_2025_03_11")
_SHELLS = ("shell", "local_shell")
# The tool types a forced hosted tool is given as (web search by any of its names).
_GIVEN_AS: Dict[str, Tuple[str, ...]] = {
    **{name: _WEB_SEARCHES for name in _WEB_SEARCHES},
    **{name: _SHELLS for name in _SHELLS},
    **{name: (name,) for name in ("file_search", "image_generation", "code_interpreter", "apply_patch")},
}


def _not_given(entry: Dict[str, Any], given: List[Any]) -> Optional[str]:
    """How the error names a forced tool that ``given`` lacks; None when it is there (or when
    which tools stand for it is not known here)."""
    kind = entry.get("type")
    tools = [tool for tool in given if isinstance(tool, dict)]
    namespaced = [  # a namespace's own functions, with the namespace's name
        (tool.get("name"), inner)
        for tool in tools
        if tool.get("type") == "namespace" and isinstance(tool.get("tools"), list)
        for inner in tool["tools"]
        if isinstance(inner, dict)
    ]
    tools += [inner for _, inner in namespaced]
    if kind in ("function", "custom"):
        name = entry.get("name")
        found = any(tool.get("type") == kind and tool.get("name") == name for tool in tools) or any(
            f"{space}.{inner.get('name')}" == name
            for space, inner in namespaced  # by its qualified name
        )
        return None if found else str(name)
    if kind == "mcp":
        label = entry.get("server_label")
        found = any(tool.get("type") == "mcp" and label in (None, tool.get("server_label")) for tool in tools)
        return None if found else str(label or kind)
    if kind in _GIVEN_AS:
        return None if any(tool.get("type") in _GIVEN_AS[kind] for tool in tools) else str(kind)
    return None


def _parameters(definition: Mapping[str, Any], name: str, where: str) -> Dict[str, Any]:
    """A function's parameters, a strict function's checked as strict mode checks them."""
    parameters = validate.obj(definition.get("parameters"), f"{where}.parameters")
    if validate.boolean(definition.get("strict"), f"{where}.strict") and parameters is not None:
        strict.check(parameters, "function", name, f"{where}.parameters", "invalid_function_parameters")
    return parameters or EMPTY_PARAMETERS


def read_legacy_functions(body: Mapping[str, Any]) -> List[Function]:
    functions = []
    for index, definition in enumerate(
        validate.array(
            body.get("functions"), "functions", 1, MAX_CHAT_TOOLS, "an array of function definitions"
        )
        or []
    ):
        param = f"functions[{index}]"
        if not isinstance(definition, dict):
            raise validate.wrong_type(param, "an object", definition)
        name = validate.function_name(validate.required(definition, "name", f"{param}.name"), f"{param}.name")
        validate.string(definition.get("description"), f"{param}.description")
        functions.append(Function(name, _parameters(definition, name, param), f"{param}.parameters"))
    return functions


# A call an agent wrote out in its text ("Calling tools: [{'name': 'get_weather', ...}]", as
# smolagents keeps its history): what it names counts as called, so a loop moves on.
_NAMED_IN_TEXT = re.compile(r"""["']name["']\s*:\s*["']([^"'\s]{1,64})["']""")


def named_in_text(text: str) -> List[str]:
    """The functions an assistant's text names as called."""
    return _NAMED_IN_TEXT.findall(text)


# Handoff tools: openai-agents' and LangGraph's ``transfer_to_<agent>``, LlamaIndex's ``handoff``
# (``handOff`` in TypeScript).
HANDOFF = re.compile(r"transfer_to_\w+$|hand_?off$", re.IGNORECASE)
# LangGraph's supervisor: the agent handed to gives the request back with its answer, in a message of
# its own words beside the call (``HAND_BACK_TEXT``), which is no answer.
HAND_BACK = re.compile(r"transfer_back_to_\w+$")
HAND_BACK_TEXT = re.compile(r"Transferring back to \w+$")
# autogen's Swarm hands over in a user message of its own: the agent handed to takes up the request.
HANDED_OVER_TEXT = re.compile(r"Transferred to (\w+), adopting the role of \1 immediately\.")


class Choice(NamedTuple):
    """What a reply's ``tool_choice`` (or legacy ``function_call``) decides among, besides the value."""

    functions: List[Function]  # the tools a reply can call
    tools: int  # every tool given, hosted and custom ones too
    after_result: bool  # the conversation ends with a tool's (or function's) result
    called: Sequence[str]  # the functions the conversation has called, in order (each call once)
    after_handoff: bool = False  # the conversation ends with a handoff: the new agent takes the request up


def choose(
    choice: Any, given: Choice, parallel: Any, choice_param: str, none_alone: bool = False
) -> List[Function]:
    """The functions this reply calls (none: answer with text), as the real API obeys ``tool_choice``.

    ``auto`` (or nothing) calls the first function (each, with ``parallel_tool_calls: true``), and
    answers with text after a tool result, so that agent loops end. ``required`` and a named function
    always call, after a result too: once the conversation has called a function, ``required``
    prefers one not called yet (an agent's final-output tool, say), else the one called longest ago,
    so that a loop that needs a call still moves on. ``none`` answers text;
    without any tools it is refused, unless ``none_alone`` (the Responses API takes it).
    """
    modes = ("none", "auto") if choice_param == "function_call" else ("none", "auto", "required")
    if choice is not None and not isinstance(choice, (str, dict)):
        raise validate.wrong_type(
            choice_param,
            "one of an object or 'none', 'auto', or 'required'"  # the Responses API's words
            if none_alone
            else f"one of one of {validate.either(modes)} or object",
            choice,
        )
    if choice is not None and not given.tools and not (choice == "none" and none_alone):
        raise errors.invalid_request(
            f"Invalid value for '{choice_param}': '{choice_param}' is only allowed when "
            f"'{'tools' if choice_param == 'tool_choice' else 'functions'}' are specified.",
            choice_param,
        )
    functions = given.functions
    if given.after_handoff:  # the agent handed to acts on the request, and does not hand it back
        functions = [function for function in functions if not HANDOFF.match(function.name)]
        given = given._replace(functions=functions)
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        mode, allowed = _allowed(choice, functions, choice_param)
        return choose(mode, given._replace(functions=allowed), parallel, choice_param, none_alone)
    if isinstance(choice, dict):
        return _named(choice, functions, choice_param)
    if choice is not None and choice not in modes:
        raise validate.invalid_value(choice_param, choice, modes)
    if choice == "none" or not functions or (given.after_result and choice != "required"):
        return []
    if given.after_result or (choice == "required" and given.called):
        return [_least_recent(functions, given.called)]
    return functions if parallel is True and len(functions) > 1 else functions[:1]


def _least_recent(functions: List[Function], called: Sequence[str]) -> Function:
    """The first function not called yet, else the one whose last call is the oldest: a loop that
    must call moves on to its output tool, on a later turn of the conversation too."""
    last = {name: index for index, name in enumerate(called)}
    return min(functions, key=lambda function: last.get(function.name, -1))


_check_mode = validate.one_of("auto", "required")


def _allowed(
    choice: Dict[str, Any], functions: List[Function], choice_param: str
) -> Tuple[str, List[Function]]:
    """``allowed_tools``: its mode, and the functions it lets the reply call. Chat nests them
    (``{"allowed_tools": {"mode", "tools": [{"function": {"name"}}]}}``), Responses do not."""
    nested = "allowed_tools" in choice
    where = f"{choice_param}.allowed_tools" if nested else choice_param
    spec = validate.obj(choice.get("allowed_tools"), where) if nested else choice
    if spec is None:
        raise validate.missing(where)
    mode = _check_mode(validate.required(spec, "mode", f"{where}.mode"), f"{where}.mode")
    listed = validate.array(validate.required(spec, "tools", f"{where}.tools"), f"{where}.tools") or []
    names = set()
    for index, tool in enumerate(listed):
        if not isinstance(tool, dict):
            raise validate.wrong_type(f"{where}.tools[{index}]", "an object", tool)
        named: Dict[str, Any] = tool["function"] if isinstance(tool.get("function"), dict) else tool
        names.add(named.get("name"))
    return mode, [function for function in functions if function.name in names]


def _named(choice: Dict[str, Any], functions: List[Function], choice_param: str) -> List[Function]:
    if choice_param == "function_call":
        name = choice.get("name")
    else:
        name = (validate.obj(choice.get("function"), f"{choice_param}.function") or {}).get("name")
    if choice_param == "tool_choice" and choice.get("type") not in ("function", None):
        if choice.get("type") == "custom":
            return []  # a custom tool forced: no function (the Responses API calls the custom tool)
        return functions[:1]  # a hosted tool forced: the first function
    if not isinstance(name, str):
        raise validate.missing(
            f"{choice_param}.function.name" if choice_param == "tool_choice" else f"{choice_param}.name"
        )
    for function in functions:
        if function.name == name:
            return [function]
    raise errors.invalid_request(
        f"Invalid value for '{choice_param}': no function named '{name}' was specified.", choice_param
    )


# LlamaIndex's ``handoff`` tool lists the agents it may hand to in its description, as a dict of
# their names and descriptions; its ``to_agent`` must be one of them.
_AGENTS = re.compile(r"Currently available agents:\s*\{(.*?)\}", re.DOTALL)
_AGENT_NAME = re.compile(r"""['"]([^'"\n]{1,128})['"]\s*:""")
# agno's team leader delegates with ``member_id``, one of the ids its system prompt lists in
# <team_members>: ``<member id="weather" name="weather">``.
_MEMBER = re.compile(r'<member id="([^"\n]{1,128})"')
MAX_DESCRIPTION_CHARS = 16 * 1024
_PLAIN = {"type", "description", "title"}  # a string schema no agent's name could fail


def _handed_to(function: Function, instructions: Callable[[], str]) -> Dict[str, Any]:
    """A handoff's parameters with the agent it names (a plain string) held to the agents listed,
    so that its call names one (the first), as a model does: LlamaIndex's ``to_agent`` from its
    description, agno's ``member_id`` from the system prompt; any other function's as given."""
    properties = function.parameters.get("properties")
    if not isinstance(properties, dict):
        return function.parameters
    if HANDOFF.match(function.name):
        field = "to_agent"
        listed = _AGENTS.search(function.description[:MAX_DESCRIPTION_CHARS])
        names = _AGENT_NAME.findall(listed.group(1)) if listed else []
    elif _says_team_members(properties.get("member_id")):
        field = "member_id"
        names = _MEMBER.findall(instructions()[:MAX_DESCRIPTION_CHARS])
    else:
        return function.parameters
    target = properties.get(field)
    if not isinstance(target, dict) or target.get("type", "string") != "string" or target.keys() - _PLAIN:
        return function.parameters
    if not names:
        return function.parameters
    return dict(function.parameters, properties=dict(properties, **{field: dict(target, enum=names)}))


def _says_team_members(schema: Any) -> bool:
    description = schema.get("description") if isinstance(schema, dict) else None
    return isinstance(description, str) and "<team_members>" in description[:1024]


def make_calls(
    functions: Sequence[Function], text: str, instructions: Callable[[], str] = lambda: ""
) -> List[Call]:
    """Calls of ``functions`` with arguments from ``text``; ``instructions`` gives the system
    prompt, read only when a call must name something it lists."""
    calls = []
    budget = schemagen.Budget()
    for function in functions:
        try:
            arguments = schemagen.generate(_handed_to(function, instructions), text, budget)
            budget = budget.next_document()
        except schemagen.SchemaError as exc:
            raise errors.invalid_request(
                f"Invalid schema for function '{function.name}': mokku cannot make arguments for it ({exc}).",
                function.param,
            ) from None
        calls.append(Call(random_id("call_", 24), function.name, _compact(arguments)))
    return calls


def output_tokens(calls: List[Call]) -> int:
    """What calls cost as completion tokens: their names and arguments."""
    return sum(count(call.name) + count(call.arguments) for call in calls)


def within(calls: List[Call], limit: Optional[int]) -> Tuple[List[Call], bool]:
    """The calls a reply of at most ``limit`` tokens holds, as a model stopped by its token limit
    leaves them: the whole calls, then the one it was writing with its arguments cut; and whether
    the limit cut the reply."""
    if limit is None or output_tokens(calls) <= limit:
        return calls, False
    kept = []
    for call in calls:
        left = limit - count(call.name)
        if left < 0:
            break
        arguments = tokenize(call.arguments)
        if len(arguments) > left:
            kept.append(call._replace(arguments="".join(arguments[:left]), cut=True))
            break
        kept.append(call)
        limit = left - len(arguments)
    return kept, True


def whole(calls: List[Call]) -> List[Call]:
    """The calls written to their end: what a dialect whose calls carry parsed arguments can show."""
    return [call for call in calls if not call.cut]


def scripted_call(spec: Mapping[str, Any]) -> Call:
    """A call a scenario scripted: its function name and arguments as given."""
    return Call(random_id("call_", 24), str(spec["name"]), _compact(spec.get("arguments") or {}))


def read_output_format(value: Any, param: str, nested: bool) -> Optional[OutputFormat]:
    """The structured output asked for (None: plain text), from chat's ``response_format`` (the
    schema ``nested`` under ``json_schema``, where it is optional) or the Responses API's
    ``text.format`` (flat, the schema required)."""
    fmt = validate.obj(value, param)
    if fmt is None:
        return None
    kind = validate.required(fmt, "type", f"{param}.type")
    if kind not in FORMATS:
        raise validate.invalid_value(f"{param}.type", kind, _LISTED_FORMATS[nested])
    if kind == "text":
        return None
    if kind == "json_object":
        return OutputFormat(kind, None, param)
    if nested:
        param = f"{param}.json_schema"
        fmt = validate.obj(validate.required(fmt, "json_schema", param), param) or {}
    name = validate.function_name(validate.required_string(fmt, "name", f"{param}.name"), f"{param}.name")
    schema = fmt.get("schema") if nested else validate.required(fmt, "schema", f"{param}.schema")
    validate.obj(schema, f"{param}.schema")
    if validate.boolean(fmt.get("strict"), f"{param}.strict") and schema is not None:  # chat's: no code
        where, code = ("response_format", None) if nested else (f"{param}.schema", "invalid_json_schema")
        strict.check(schema, "response_format", name, where, code)
    return OutputFormat(kind, schema, f"{param}.schema")


# The models without Structured Outputs (before gpt-4o-2024-08-06, gpt-4o-mini and o1-2024-12-17),
# and their fine-tunes (``ft:gpt-3.5-turbo-0125:org::id``): json_schema is refused, where json_object
# is taken.
NO_STRUCTURED_OUTPUTS = re.compile(
    r"(ft:)?(gpt-3\.5-turbo(-\w+)*"
    r"|gpt-4(-0314|-0613|-32k(-\w+)*|-turbo(-\w+)*|-\d{4}-preview|(-1106)?-vision-preview)?"
    r"|gpt-4o-2024-05-13|o1-(mini|preview)(-2024-09-12)?)(:.*)?"
)


def check_structured_outputs(model: str, output_format: Optional[OutputFormat], param: str) -> None:
    """400 for a ``json_schema`` format asked of a model that has no Structured Outputs, in the real
    API's words (``param``: ``response_format``, ``text.format``)."""
    if (
        output_format is not None
        and output_format.kind == "json_schema"
        and NO_STRUCTURED_OUTPUTS.fullmatch(model)
    ):
        raise errors.invalid_request(
            f"Invalid parameter: '{param}' of type 'json_schema' is not supported with this model.", param
        )


# JSON Schema found in a prompt: where to look, and how far (in each message, and in all of them).
_FENCE = "```"
_SCHEMA_KEYS = ("properties", "$defs", "definitions", "anyOf", "oneOf", "allOf", "$schema")
MAX_INSTRUCTION_CHARS = 64 * 1024
MAX_INSTRUCTIONS_CHARS = 4 * MAX_INSTRUCTION_CHARS
MAX_SCHEMA_CANDIDATES = 50


def check_json_named(output_format: OutputFormat, messages: Sequence[Any], message: str, param: str) -> None:
    """JSON mode (``json_object``) is refused unless the messages say "json", as the real API refuses
    it: a model not told to write JSON could write whitespace until its limit."""
    if output_format.kind == "json_object" and not any("json" in m.text.lower() for m in messages):
        raise errors.invalid_request(message, param)


def instructed(output_format: Optional[OutputFormat], instructions: Sequence[str]) -> Optional[OutputFormat]:
    """JSON mode as prompt-instructed clients use it (instructor's JSON modes, DSPy's JSON adapter):
    ``json_object`` with a JSON Schema in a system or developer message, inline or in a fenced block,
    answers a document valid against that schema."""
    if output_format is None or output_format.kind != "json_object" or output_format.schema is not None:
        return output_format
    schema = _prompt_schema(instructions)
    return output_format if schema is None else OutputFormat("json_object", schema, output_format.param)


def prompted(instructions: Sequence[str], param: str) -> Optional[OutputFormat]:
    """JSON asked for in the prompt alone, with no format parameter (instructor's ANTHROPIC_JSON,
    pydantic-ai's PromptedOutput): a system prompt that says "json" and holds a JSON Schema gets a
    document valid against it. Not a ReAct prompt's: its schemas are its tools' inputs, which the
    agent writes after "Action Input:" (LlamaIndex, LangChain), not its answer's."""
    for text in instructions:
        fields = _fields_schema(text[:MAX_INSTRUCTION_CHARS])
        if fields is not None:
            return OutputFormat("fields", fields, param)
    if any(REACT_MARK in text[:MAX_INSTRUCTION_CHARS] for text in instructions):
        return None
    schema = _prompt_schema(instructions, says_json=True)
    return None if schema is None else OutputFormat("prompted", schema, param)


REACT_MARK = "Action Input"
# DSPy's ChatAdapter: a system prompt listing the output fields, then the reply's layout, each field
# under its header ("[[ ## answer ## ]]") with its name in braces and a note on its type, ended by
# the "[[ ## completed ## ]]" marker. Its answer is laid out the same way.
COMPLETED_MARK = "[[ ## completed ## ]]"
_OUTPUT_FIELDS = re.compile(r"^Your output fields are:\n(.*?)(?:^All interactions|\Z)", re.M | re.S)
_LISTED_FIELD = re.compile(r"^\s*\d+\. `(\w+)`", re.M)
_LAID_OUT = re.compile(r"^\[\[ ## (\w+) ## \]\]\n(\{\w+\}[^\n]*)", re.M)
_FIELD_HEADER = re.compile(r"\[\[ ## \w+ ## \]\]")
_RESPOND = "Respond with the corresponding output fields"


def _fields_schema(text: str) -> Optional[Dict[str, Any]]:
    """The output fields a DSPy ChatAdapter prompt lays out, as an object schema (each field's type
    from its note), or None when ``text`` is not one."""
    if COMPLETED_MARK not in text:
        return None
    listed = _OUTPUT_FIELDS.search(text)
    names = _LISTED_FIELD.findall(listed.group(1)) if listed is not None else []
    if not names:
        return None
    placeholders = dict(_LAID_OUT.findall(text))
    properties: Dict[str, Any] = {}
    for name in names:
        found = _PLACEHOLDER.match(placeholders.get(name, ""))
        properties[name] = _noted_type((found.group(2) or "") if found is not None else "")
    return _react_steps(properties, text)


# DSPy's ReAct: each step names a tool and its arguments; the tools are listed in the instructions,
# "(1) search, whose description is <desc>...</desc>. It takes arguments {'query': {...}}.", the
# last of them ``finish``; the steps so far come in the input, each tool's answer as an observation.
_REACT_FIELDS = ("next_tool_name", "next_tool_args")
_REACT_FINISH = "finish"
_TAKES = ". It takes arguments "
_OBSERVED = "[[ ## observation_"


def _every_property(properties: Dict[str, Any]) -> Dict[str, Any]:
    """An object of exactly ``properties``, each required."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _react_steps(properties: Dict[str, Any], text: str) -> Dict[str, Any]:
    """The object schema of ``properties``; for a ReAct step, ``anyOf`` two: a call of the first
    tool listed with every argument it takes, then ``finish`` (``react_step`` picks one)."""
    whole = _every_property(properties)
    names = properties.get(_REACT_FIELDS[0], {}).get("enum")
    if _REACT_FIELDS[1] not in properties or not isinstance(names, list) or _REACT_FINISH not in names:
        return whole

    def step(name: str, arguments: Dict[str, Any]) -> Dict[str, Any]:
        chosen = {_REACT_FIELDS[0]: {"enum": [name]}, _REACT_FIELDS[1]: arguments}
        return dict(whole, properties={**properties, **chosen})

    finish = step(_REACT_FINISH, {"type": "object", "properties": {}, "additionalProperties": False})
    tools = [name for name in names if name != _REACT_FINISH]
    if not tools:
        return {"anyOf": [finish, finish]}
    return {"anyOf": [step(tools[0], _react_arguments(tools[0], text)), finish]}


def _react_arguments(name: str, text: str) -> Dict[str, Any]:
    """The schema of what the listed tool ``name`` takes (a Python literal of each argument's
    schema), every argument required; any object when the listing cannot be read."""
    anything: Dict[str, Any] = {"type": "object"}
    listed = re.search(rf"^[ \t]*\(\d+\) {re.escape(name)}(?=[,.])", text, re.M)
    if listed is None:
        return anything
    line_end = text.find("\n", listed.end())
    line = text[listed.end() : line_end if line_end >= 0 else None]
    start = line.rfind(_TAKES)
    try:
        arguments = ast.literal_eval(line[start + len(_TAKES) :].rstrip().removesuffix("."))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return anything
    if (
        start < 0
        or not isinstance(arguments, dict)
        or not all(isinstance(v, dict) for v in arguments.values())
    ):
        return anything
    schema = _every_property(arguments)
    try:
        schemagen.generate(schema, "")
    except schemagen.SchemaError:  # a reference to definitions the listing leaves out, ...
        return anything
    return schema


def react_step(schema: Optional[Mapping[str, Any]], text: str) -> Optional[Mapping[str, Any]]:
    """A ReAct step's schema (``_react_steps``): the tool's call until the input holds its
    observation, then ``finish``; any other schema as it is."""
    steps = schema.get("anyOf") if schema is not None and len(schema) == 1 else None
    if (
        not isinstance(steps, list)
        or len(steps) != 2
        or _REACT_FIELDS[0] not in steps[0].get("properties", ())
    ):
        return schema
    return steps[1] if _OBSERVED in text else steps[0]


def _laid_out(document: Mapping[str, Any]) -> str:
    """A ChatAdapter answer: each field under its header, then the completed marker."""
    fields = [
        f"[[ ## {name} ## ]]\n{value if isinstance(value, str) else _compact(value)}"
        for name, value in document.items()
    ]
    return "\n\n".join([*fields, COMPLETED_MARK])


def _field_text(text: str) -> str:
    """What a ChatAdapter prompt's last message says, for its text fields: its input fields' values,
    without their headers (a header in a field would end it) or the closing instructions."""
    cut = text.find(_RESPOND)
    kept = [line for line in text[: cut if cut >= 0 else None].splitlines() if not _FIELD_HEADER.search(line)]
    return "\n".join(kept).strip() or "…"


def _prompt_schema(instructions: Sequence[str], says_json: bool = False) -> Optional[Dict[str, Any]]:
    """The first JSON Schema the instructions hold, in the first ``MAX_INSTRUCTION_CHARS`` of each
    and ``MAX_INSTRUCTIONS_CHARS`` of all (``says_json``: of one that also says "json")."""
    left = MAX_INSTRUCTIONS_CHARS
    for text in instructions:
        if left <= 0:
            break
        head = text[: min(MAX_INSTRUCTION_CHARS, left)]
        left -= len(head)
        if not says_json or "json" in head.lower():
            schema = _schema_in(head)
            if schema is not None:
                return schema
    return None


def _schema_in(text: str) -> Optional[Dict[str, Any]]:
    """The first JSON object in ``text`` that reads as a JSON Schema (a fenced block first), else
    the schema of the first field template (``_template_schema``)."""
    decoder = json.JSONDecoder()
    starts = [index for index, char in enumerate(text) if char == "{"][:MAX_SCHEMA_CANDIDATES]
    template = None
    for chunk in [*_fenced(text), *(text[start:] for start in starts)]:
        try:
            value, _ = decoder.raw_decode(chunk.strip())
        except (ValueError, RecursionError):  # not JSON, or nested past what the decoder takes
            continue
        if isinstance(value, dict) and (
            any(key in value for key in _SCHEMA_KEYS) or value.get("type") == "object"
        ):
            return value
        if template is None and isinstance(value, dict):
            template = _template_schema(value, text)
    return template


def _fenced(text: str) -> List[str]:
    """What fenced blocks (a ``` line, or ```json, to the next ```) hold, the first
    ``MAX_SCHEMA_CANDIDATES``: one pass over ``text``, whatever fences it holds."""
    blocks: List[str] = []
    start = text.find(_FENCE)
    while start != -1 and len(blocks) < MAX_SCHEMA_CANDIDATES:
        line_end = text.find("\n", start)
        if line_end == -1:
            break
        if text[start + len(_FENCE) : line_end].strip() not in ("", "json"):  # another language's
            start = text.find(_FENCE, start + len(_FENCE))
            continue
        end = text.find(_FENCE, line_end)
        if end == -1:
            break
        blocks.append(text[line_end + 1 : end])
        start = text.find(_FENCE, end + len(_FENCE))
    return blocks


# A field of DSPy's JSON template: its name in braces, then a note on its type.
_PLACEHOLDER = re.compile(r"\{(\w+)\}(?:\s*# note: the value you produce (.*))?\Z", re.DOTALL)
_ONE_OF = re.compile(
    r"(?:must be one of|must exactly match \(no extra characters\) one of): (.*)\Z", re.DOTALL
)
_ADHERES = "must adhere to the JSON schema: "
_NOTED_TYPES = {
    "must be True or False": {"type": "boolean"},
    "must be a single int value": {"type": "integer"},
    "must be a single float value": {"type": "number"},
}


def _template_schema(template: Mapping[str, Any], instructions: str) -> Optional[Dict[str, Any]]:
    """The schema a field template describes: DSPy's JSON adapter without a schema it can send
    (``{"answer": "{answer}", "n": "{n}        # note: the value you produce must be a single int
    value"}``), each value its field's name in braces and a note on the field's type."""
    properties: Dict[str, Any] = {}
    for name, text in template.items():
        found = _PLACEHOLDER.match(text) if isinstance(text, str) else None
        if found is None or found.group(1) != name:
            return None
        properties[name] = _noted_type(found.group(2) or "")
    if not properties:
        return None
    return _react_steps(properties, instructions)


def _noted_type(note: str) -> Any:
    """The schema of a template's field from its note (none: a string)."""
    if note in _NOTED_TYPES:
        return _NOTED_TYPES[note]
    one_of = _ONE_OF.match(note)
    if one_of is not None:
        return {"enum": [value.strip() for value in one_of.group(1).split(";")]}
    if note.startswith(_ADHERES):
        try:
            schema = json.loads(note[len(_ADHERES) :])
        except ValueError:
            schema = None
        if isinstance(schema, dict):
            return schema
    return {"type": "string"}


def hinted_document(schema: Optional[Mapping[str, Any]], text: str) -> Optional[Dict[str, Any]]:
    """The document a schema found in the prompt asks for, when it is an object: the schema is only a
    hint (agno's field map reads as one, a text agent's tool schema may not be one), so anything
    else is None."""
    if schema is None:
        return None
    try:
        document = schemagen.generate(schema, text)
    except schemagen.SchemaError:
        return None
    return document if isinstance(document, dict) else None


def structured_content(
    kind: str, schema: Optional[Mapping[str, Any]], text: str, param: str
) -> Optional[str]:
    """The reply for ``json_schema`` / ``json_object`` output (a schema found in the prompt guides
    ``json_object``; when no document fits it, the plain ``{"echo": ...}``); for ``prompted``, the
    document, or None (the plain text) when none fits."""
    if kind in ("fields", "prompted", "json_object"):
        schema = react_step(schema, text)
    if kind == "fields":
        document = hinted_document(schema, _field_text(text))
        return None if document is None else _laid_out(document)
    if kind in ("prompted", "json_object"):
        document = hinted_document(schema, text)
        if document is not None:
            return _compact(document)
        return None if kind == "prompted" else _compact({"echo": text})  # JSON mode still answers JSON
    try:
        value = schemagen.generate(schema or {"type": "object"}, text)
    except schemagen.SchemaError as exc:
        named = param.removesuffix(".schema").removesuffix(".json_schema")  # response_format, text.format...
        raise errors.invalid_request(f"Invalid schema for {named}: {exc}.", param) from None
    if kind == "enum" and isinstance(value, str):
        return value  # Gemini's text/x.enum answers the chosen value itself, not its JSON
    return _compact(value)


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
