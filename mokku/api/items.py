"""Items: what Responses and Conversations keep of a conversation, as the real API lists them.

An input item is checked and stored as its listed form (``ItemResource``, ``ConversationItem``):
with an ``id`` and a ``status``, a message's string content as one text part. A response's output
items are already in that form, so a conversation (a stored response's items and output, or a
conversation's items) reads back into the neutral messages the reply is decided from. Lists are
answered in the real list shape, in pages (``limit`` 1 to 100, ``order`` newest first by default).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import parse_qs

from mokku import errors
from mokku.api import validate
from mokku.api.decide import TOOL_RESULT, Message, message_text, tool_answer
from mokku.api.ids import random_id
from mokku.control import objects, statedb
from mokku.server.http import Request, dumps

MESSAGE_ROLES = ("assistant", "system", "developer", "user")  # in the order the API lists them
# The input item types the API takes, in its words' order; any other is a 400 naming the item.
ITEM_TYPES = (
    "additional_tools", "agent_message", "apply_patch_call", "apply_patch_call_output",
    "code_interpreter_call", "compaction", "compaction_trigger", "computer_call", "computer_call_output",
    "custom_tool_call", "custom_tool_call_output", "file_search_call", "function_call",
    "function_call_output", "image_generation_call", "item_reference", "local_shell_call",
    "local_shell_call_output", "mcp_approval_request", "mcp_approval_response", "mcp_call", "mcp_list_tools",
    "message", "multi_agent_call", "multi_agent_call_output", "program", "program_output", "reasoning",
    "shell_call", "shell_call_output", "tool_search_call", "tool_search_output", "web_search_call",
)  # fmt: skip
# Content part types: every one the API knows, and those each side of a conversation may send.
PART_TYPES = (
    "input_text", "input_image", "input_audio", "output_text", "refusal", "input_file",
    "computer_screenshot", "summary_text", "encrypted_content",
)  # fmt: skip
USER_PARTS = ("input_text", "input_image", "input_file", "scoped_content", "input_audio")
ASSISTANT_PARTS = ("output_text", "refusal")
OUTPUT_PARTS = ("input_text", "input_image", "input_file")  # a function's output as parts
ORDERS = ("asc", "desc")
MAX_PAGE = 100
# Items that point at other items: they add nothing a listing shows.
REFERENCES = ("item_reference",)
INPUT_TYPES = "one of a string or array of input items"  # ``input``, as type errors name it
OPAQUE = (*REFERENCES, "compaction")  # items standing for others the server does not read back
_ID_PREFIXES = {
    "message": "msg_",
    "function_call": "fc_",
    "function_call_output": "fco_",
    "reasoning": "rs_",
    "custom_tool_call": "ctc_",
    "web_search_call": "ws_",
    "file_search_call": "fs_",
}
TOOL_OUTPUTS = ("function_call_output", "custom_tool_call_output")


def _summary_part(part: Any, param: str) -> Any:
    """A reasoning summary's part (``SummaryTextContent``)."""
    validate.obj(part, param)
    if validate.required_string(part, "type", f"{param}.type") != "summary_text":
        raise validate.invalid_value(f"{param}.type", part["type"], ("summary_text",))
    return validate.required_string(part, "text", f"{param}.text")


# The field an item kept as context must have, as its schema requires (and the listing shows), and
# its check.
_REQUIRED: Dict[str, Tuple[str, validate.Check]] = {
    "reasoning": ("summary", validate.array_of(_summary_part)),
    "web_search_call": ("action", validate.obj),
}
IMAGE_DETAILS = ("low", "high", "auto", "original")

Item = Dict[str, Any]


def read(value: Any, param: str) -> List[Item]:
    """Input items as stored and listed (a string is one user message); 400 naming the field that
    is wrong. ``item_reference`` items are kept (they point at context), never listed."""
    if isinstance(value, str):
        return [_message("user", value)]
    items = validate.array(value, param, 1, expected=INPUT_TYPES)
    if items is None:
        raise validate.wrong_type(param, INPUT_TYPES, value)
    out = []
    for index, item in enumerate(items):
        where = f"{param}[{index}]"
        if not isinstance(item, dict):
            raise validate.wrong_type(where, "an input item", item)
        kind = item.get("type")
        if kind is None:  # its type is optional
            kind = "item_reference" if "id" in item and "role" not in item else "message"
        elif kind not in ITEM_TYPES:
            raise validate.invalid_value(where, kind if isinstance(kind, str) else "", ITEM_TYPES)
        validate.identifier(item.get("id"), f"{where}.id")
        if kind == "message":
            role = item.get("role")
            if role not in MESSAGE_ROLES:
                raise validate.invalid_value(where, role if isinstance(role, str) else "", MESSAGE_ROLES)
            content = validate.required(item, "content", f"{where}.content")
            _check_content(
                content, f"{where}.content", ASSISTANT_PARTS if role == "assistant" else USER_PARTS
            )
            stored = dict(item, type="message", content=_parts(role, content))
        elif kind in TOOL_OUTPUTS:
            validate.required_string(item, "call_id", f"{where}.call_id")
            output = validate.required(item, "output", f"{where}.output")
            if not isinstance(output, str):
                _check_content(output, f"{where}.output", OUTPUT_PARTS)
            stored = dict(item)
        elif kind == "function_call":
            for field in ("call_id", "name", "arguments"):
                validate.required_string(item, field, f"{where}.{field}")
            stored = dict(item)
        elif kind == "item_reference":
            validate.required_string(item, "id", f"{where}.id")
            stored = dict(item, type="item_reference")
        elif kind in _REQUIRED:
            field, check = _REQUIRED[kind]
            check(validate.required(item, field, f"{where}.{field}"), f"{where}.{field}")
            stored = dict(item)
        else:
            stored = dict(item)  # other item types (reasoning, hosted tool calls...) are kept as context
        if kind not in REFERENCES:
            stored.setdefault("id", random_id(_ID_PREFIXES.get(kind, "item_"), 48))
            stored.setdefault("status", "completed")
        out.append(stored)
    return out


def _message(role: str, text: str) -> Item:
    return {
        "id": random_id("msg_", 48),
        "type": "message",
        "status": "completed",
        "role": role,
        "content": _parts(role, text),
    }


# What a part the spec's schema requires a field of is listed with when sent without it.
_PART_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "output_text": {"annotations": [], "logprobs": []},
    "input_image": {"detail": "auto"},
}


def _with_defaults(part: Dict[str, Any]) -> Dict[str, Any]:
    """A part with the default of each field its schema requires that was sent missing or null."""
    defaults = _PART_DEFAULTS.get(part["type"])
    if not defaults:
        return part
    return dict(part, **{name: value for name, value in defaults.items() if part.get(name) is None})


def _parts(role: str, content: Any) -> List[Dict[str, Any]]:
    """A message's content as parts, as the API lists them: a string is one text part, and a part
    sent without a field its schema requires has the field's default."""
    if not isinstance(content, str):
        return [_with_defaults(part) for part in content]
    if role == "assistant":
        return [{"type": "output_text", "text": content, "annotations": [], "logprobs": []}]
    return [{"type": "input_text", "text": content}]


def _check_content(content: Any, param: str, allowed: Sequence[str]) -> None:
    """Content parts of the types the API knows, each of a type its side may send (a chat-style
    ``text`` or ``image_url`` part is the real API's 400)."""
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise validate.wrong_type(param, "a string or an array of content parts", content)
    for index, part in enumerate(content):
        where = f"{param}[{index}]"
        if not isinstance(part, dict):
            raise validate.wrong_type(where, "an object", part)
        kind = validate.required_string(part, "type", f"{where}.type")
        if kind not in PART_TYPES and kind not in allowed:
            raise validate.invalid_value(f"{where}.type", kind, PART_TYPES)
        if kind not in allowed:
            raise validate.invalid_value(where, kind, allowed)
        if kind in ("input_text", "output_text"):
            validate.required_string(part, "text", f"{where}.text")
            for name in ("annotations", "logprobs"):  # objects (an annotation of a type), as listed
                for number, entry in enumerate(validate.array(part.get(name), f"{where}.{name}") or ()):
                    if not isinstance(entry, dict):
                        raise validate.wrong_type(f"{where}.{name}[{number}]", "an object", entry)
                    if name == "annotations":
                        validate.required_string(entry, "type", f"{where}.{name}[{number}].type")
        elif kind == "input_image":
            detail = validate.string(part.get("detail"), f"{where}.detail")
            if detail is not None and detail not in IMAGE_DETAILS:
                raise validate.invalid_value(f"{where}.detail", detail, IMAGE_DETAILS)
        elif kind == "refusal":
            validate.required_string(part, "refusal", f"{where}.refusal")


def messages(items: Sequence[Item]) -> List[Message]:
    """The neutral messages of a conversation: a message's text, a function's output as a tool
    result (a handoff's as the handoff), other items (calls, reasoning, references...) as context
    without text."""
    out: List[Message] = []
    functions: Dict[Any, str] = {}  # the name of each function call, by its call id
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            out.append(Message(item["role"], message_text(item["content"])))
        elif kind in TOOL_OUTPUTS:  # a function's or a custom tool's: the reply answers from it
            output = item["output"]
            result = Message(TOOL_RESULT, output if isinstance(output, str) else message_text(output))
            out.append(tool_answer(functions.get(item.get("call_id"), ""), result, out))
        else:
            if kind == "function_call":
                functions[item.get("call_id")] = str(item.get("name"))
            out.append(Message(kind, ""))
    return out


def called(items: Sequence[Item]) -> List[str]:
    """The functions the conversation shows called, in order (its ``function_call`` items)."""
    return [
        item["name"]
        for item in items
        if item.get("type") == "function_call" and isinstance(item.get("name"), str)
    ]


def check_calls(items: Sequence[Item], param: str = "input") -> None:
    """Function calls and their outputs paired as the API checks them, in its words: every
    ``function_call_output`` answers a ``function_call`` the conversation holds, and a call the
    conversation moves on from (a new message not the assistant's) is answered, there or later:
    clients that continue a stored response may send the user's turn again before the outputs.
    A conversation with ``item_reference`` or ``compaction`` items is not checked: what they stand
    for is not read here."""
    if any(item.get("type") in OPAQUE for item in items):
        return
    calls = {item.get("call_id") for item in items if item.get("type") == "function_call"}
    answered = {item.get("call_id") for item in items if item.get("type") == "function_call_output"}
    unanswered: Dict[Any, None] = {}  # the calls never answered, in order
    for item in items:
        kind = item.get("type")
        if kind == "function_call":
            if item.get("call_id") not in answered:
                unanswered[item.get("call_id")] = None
        elif kind == "function_call_output":
            if item["call_id"] not in calls:
                raise errors.invalid_request(
                    f"No tool call found for function call output with call_id {item['call_id']}.", param
                )
        elif unanswered and kind == "message" and item.get("role") != "assistant":
            raise errors.invalid_request(
                f"No tool output found for function call {next(iter(unanswered))}.", param
            )


def listed(items: Sequence[Item]) -> List[Item]:
    """The items a listing shows (references left out)."""
    return [item for item in items if item.get("type") not in REFERENCES]


def encoded(items: Sequence[Item]) -> List[Tuple[str, bytes]]:
    """Listed items as (id, encoded) pairs, for storing one by one."""
    return [(item["id"], dumps(item)) for item in listed(items)]


# What ``include`` may ask a response (or a conversation's items) to carry.
INCLUDABLE = (
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "reasoning.encrypted_content",
    "message.output_text.logprobs",
)


def check_included(request: Request) -> None:
    """``include`` in the query (``include[]=...``, as the SDKs send it), each value one the API knows."""
    query = request.environ.get("QUERY_STRING", "")
    if "include" not in query:
        return
    parsed = parse_qs(query, keep_blank_values=True)
    for index, value in enumerate([*parsed.get("include", ()), *parsed.get("include[]", ())]):
        if value not in INCLUDABLE:
            raise validate.invalid_value(f"include[{index}]", value, INCLUDABLE)


class ListQuery:
    """A list endpoint's query: ``after`` (and ``before``), ``limit``, ``order`` (newest first unless the
    endpoint says otherwise); ``query`` holds every parameter, for the filters an endpoint has."""

    __slots__ = ("after", "before", "limit", "newest_first", "query")

    def __init__(self, request: Request, default_order: str = "desc") -> None:
        query = parse_qs(request.environ.get("QUERY_STRING", ""), keep_blank_values=True)

        def one(name: str) -> Optional[str]:
            values = query.get(name)
            return values[-1] if values else None

        self.query = query
        self.after, self.before = one("after"), one("before")
        raw = one("limit")
        limit = 20
        if raw is not None:
            try:
                limit = int(raw)
            except ValueError:
                raise validate.wrong_type("limit", "an integer", raw) from None
            validate.integer(limit, "limit", 1, MAX_PAGE)
        self.limit = limit
        order = one("order") or default_order
        if order not in ORDERS:
            raise validate.invalid_value("order", order, ORDERS)
        self.newest_first = order == "desc"

    def page(self, items: Sequence[Item]) -> Tuple[List[Item], bool]:
        """A page of ``items`` (oldest first as given), in the order asked, after ``after`` and
        before ``before`` (ids; an unknown ``before`` is no bound)."""
        ordered = list(reversed(items)) if self.newest_first else list(items)
        ids = [item.get("id") for item in ordered]
        start = 0
        if self.after is not None:
            if self.after not in ids:
                raise unknown_after(self.after)
            start = ids.index(self.after) + 1
        end = ids.index(self.before) if self.before in ids else len(ordered)
        chosen = ordered[start:end]
        return chosen[: self.limit], len(chosen) > self.limit

    @contextlib.contextmanager
    def paged(self) -> Iterator[None]:
        """Around reading a page from the store: an ``after`` it never held answers 400."""
        try:
            yield
        except objects.UnknownCursor:
            raise unknown_after(self.after or "") from None


def unknown_after(after: str) -> errors.APIError:
    """400: a cursor names no object of the list (one deleted since is still a place to go on from)."""
    return errors.invalid_request(
        f"Invalid 'after': '{after}' is not the id of an object in this list.", "after", "invalid_value"
    )


def list_body(data: Sequence[Any], has_more: bool) -> Dict[str, Any]:
    """The list shape of ``ResponseItemList`` and ``ConversationItemList``."""
    first = data[0].get("id") if data else None
    last = data[-1].get("id") if data else None
    return {"object": "list", "data": list(data), "first_id": first, "last_id": last, "has_more": has_more}


def decoded(stored: Sequence[bytes]) -> List[Item]:
    return [json.loads(item) for item in stored]


@contextlib.contextmanager
def writing(stored: objects.Objects, param: str, duplicate_param: Optional[str] = None) -> Iterator[None]:
    """Around the use of stored objects: a state file that cannot be used answers 503; a write past
    the store's bound 400 naming ``param``; an item id a conversation holds already 400 naming
    ``duplicate_param`` (``param`` when not given)."""
    try:
        with statedb.answered(stored.name):
            yield
    except objects.TooLarge as exc:
        raise too_large(str(exc), param) from None
    except objects.Duplicate as exc:
        raise duplicate(exc.item_id, duplicate_param or param) from None


def duplicate(item_id: str, param: str) -> errors.APIError:
    """400: a conversation holds each item id once."""
    return errors.invalid_request(
        f"Duplicate item found with id {item_id}. Remove duplicate items from your input and try again.",
        param,
        "duplicate_item",
    )


def too_large(reason: str, param: str) -> errors.APIError:
    """400: storing this would pass a bound of the store (docs/limits.md)."""
    return errors.invalid_request(f"Invalid '{param}': {reason}.", param, "invalid_value")


def replace_metadata(
    request: Request,
    stored: objects.Objects,
    key: str,
    find: Callable[[], bytes],
    param: str,
    missing: Callable[[], errors.APIError],
) -> bytes:
    """``POST`` of a stored conversation (or chat completion) with ``metadata``: checked first (a 400
    before a 404), then the object found, its metadata replaced and written back; ``missing()`` when
    it went in between. The object as written."""
    body = request.json()
    validate.required(body, "metadata")
    replaced = metadata(body) or {}
    encoded = dumps(dict(json.loads(find()), metadata=replaced))
    with writing(stored, param):
        if not stored.replace_conversation(key, encoded):
            raise missing()
    return encoded


def metadata(body: Mapping[str, Any], param: str = "metadata") -> Optional[Dict[str, Any]]:
    """``metadata``: at most 16 string values, keys up to 64 characters, values up to 512."""
    value = body.get(param)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise validate.wrong_type(param, "a metadata object", value)
    if len(value) > 16:
        raise errors.invalid_request(
            f"Invalid '{param}': too many properties. Expected an object with at most 16 properties, "
            f"but got an object with {len(value)} properties instead.",
            param,
            "object_above_max_properties",
        )
    for key, item in value.items():
        if len(key) > 64:
            raise errors.invalid_request(
                f"Invalid property name in '{param}': '{validate.abbreviated(key)}' is too long. Expected a "
                f"string with maximum length 64, but got a string with length {len(key)} instead.",
                f"{param}.{key}",
                "property_name_above_max_length",
            )
        if not isinstance(item, str):
            raise validate.wrong_type(f"{param}.{key}", "a string", item)
        if len(item) > 512:
            raise validate.too_long(f"{param}.{key}", 512, len(item))
    return value
