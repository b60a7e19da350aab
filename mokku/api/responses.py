"""The Responses API: ``POST /v1/responses``, ``GET`` and ``DELETE /v1/responses/{id}``.

The reply follows the chat rules: it echoes the last user message (or, after a
``function_call_output``, that output, so agent loops end), calls a function when function
tools are sent (see ``tools``), or answers JSON for ``text.format`` json_schema / json_object.
Streams send the real typed events, each ``event: <type>`` plus ``data: <json>`` with a
``sequence_number``. Responses created with ``store`` (the default) are kept, encoded, in an
in-memory store per worker process, bounded in count, bytes and age (``STORE_*``).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from typing import Any, Dict, Iterator, List, Mapping, Optional, Set, Tuple

from mokku import errors
from mokku.api import render, tools, validate
from mokku.api.decide import (
    TOOL_RESULT,
    Generation,
    Message,
    Replies,
    conversation_tokens,
    echo_text,
)
from mokku.api.ids import random_id
from mokku.api.sampling import Output, Sampling
from mokku.api.tokens import tokenize
from mokku.server import stream
from mokku.server.http import Request, Response, dumps, encoded_json_response, json_response
from mokku.server.stream import Event, Token

# Top-level parameters of CreateResponse; others are refused only with MOKKU_STRICT.
KNOWN_PARAMS = frozenset(
    "background context_management conversation include input instructions max_output_tokens max_tool_calls "
    "metadata model moderation parallel_tool_calls previous_response_id prompt prompt_cache_key "
    "prompt_cache_options prompt_cache_retention reasoning safety_identifier service_tier store stream "
    "stream_options temperature text tool_choice tools top_logprobs top_p truncation user".split()
)
# The store of each worker process: at most this many responses, bytes (encoded) and seconds.
STORE_SIZE = 1000
STORE_BYTES = 64 * 1024 * 1024
STORE_SECONDS = 24 * 3600
MESSAGE_ROLES = ("user", "assistant", "system", "developer")


def not_found(response_id: str) -> errors.APIError:
    return errors.APIError(404, f"Response with id '{response_id}' not found.", "invalid_request_error")


class Store:
    """Created responses, encoded, newest last: bounded in count, bytes and age, oldest out first."""

    def __init__(
        self, size: int = STORE_SIZE, max_bytes: int = STORE_BYTES, max_age: float = STORE_SECONDS
    ) -> None:
        self._items: OrderedDict[str, Tuple[float, bytes]] = OrderedDict()
        self._size, self._max_bytes, self._max_age = size, max_bytes, max_age
        self._bytes = 0
        self._lock = threading.Lock()

    def keep(self, response_id: str, encoded: bytes) -> None:
        if len(encoded) > self._max_bytes:
            return  # larger than the whole store: not kept (a later retrieve answers 404)
        with self._lock:
            self._drop(response_id)
            self._items[response_id] = (time.monotonic(), encoded)
            self._bytes += len(encoded)
            while len(self._items) > self._size or self._bytes > self._max_bytes:
                self._drop(next(iter(self._items)))

    def get(self, response_id: str) -> Optional[bytes]:
        with self._lock:
            found = self._items.get(response_id)
            if found is not None and time.monotonic() - found[0] > self._max_age:
                self._drop(response_id)
                found = None
        return found[1] if found else None

    def pop(self, response_id: str) -> bool:
        with self._lock:
            return self._drop(response_id)

    def _drop(self, response_id: str) -> bool:
        found = self._items.pop(response_id, None)
        if found is not None:
            self._bytes -= len(found[1])
        return found is not None

    @property
    def bytes(self) -> int:
        return self._bytes


class Responses:
    """The endpoint family, with its store of created responses."""

    def __init__(self, replies: Replies, store: Optional[Store] = None) -> None:
        self.replies = replies
        self._store = store or Store()

    def retrieve(self, request: Request, response_id: str) -> Response:
        stored = self._store.get(response_id)
        if stored is None:
            raise not_found(response_id)
        return encoded_json_response(stored)

    def delete(self, request: Request, response_id: str) -> Response:
        if not self._store.pop(response_id):
            raise not_found(response_id)
        return json_response({"id": response_id, "object": "response", "deleted": True})

    def create(self, request: Request) -> Response:
        body, behaviour = self.replies.begin(request, "chat", KNOWN_PARAMS)
        model = behaviour.model
        items = read_input(body)
        instructions = validate.string(body.get("instructions"), "instructions")
        max_output = validate.integer(body.get("max_output_tokens"), "max_output_tokens", 16)
        validate.number(body.get("temperature"), "temperature", 0, 2)
        validate.number(body.get("top_p"), "top_p", 0, 1)
        validate.integer(body.get("top_logprobs"), "top_logprobs", 0, 20)
        validate.obj(body.get("metadata"), "metadata")
        validate.string(body.get("previous_response_id"), "previous_response_id")
        stream = bool(validate.boolean(body.get("stream"), "stream"))
        store = validate.boolean(body.get("store"), "store") is not False
        validate.boolean(body.get("parallel_tool_calls"), "parallel_tool_calls")
        text_format, output_format = read_text_format(body)
        functions, count = tools.read_functions(body, flat=True)
        given = tools.Choice(functions, count, items[-1].role == TOOL_RESULT, _called(body["input"]))
        choice = _chat_choice(body.get("tool_choice"))
        chosen = tools.choose(choice, given, body.get("parallel_tool_calls"), "tool_choice", none_alone=True)
        framing = [Message("developer", instructions)] if instructions else []
        if output_format is not None:
            instructing = [m.text for m in framing + items if m.role in ("system", "developer")]
            output_format = tools.instructed(output_format, instructing)
        generation = Generation(
            "responses",
            [echo_text(items)],
            [conversation_tokens(framing + items)],
            Sampling(max_tokens=max_output, stream=stream),
            chosen,
            output_format,
            input_param="input",
        )
        reply = self.replies.decide(request, behaviour, generation)
        output, calls = reply.outputs[0], reply.calls

        response_id = random_id("resp_", 48)
        incomplete = output.finish_reason in ("length", "content_filter")
        input_tokens, output_tokens = generation.prompt_tokens[0], reply.completion_tokens()
        usage = {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        }
        shell = _response_shell(response_id, model, body, instructions, max_output, text_format, store)
        items_out = _output_items(output, calls, incomplete)
        final = dict(
            shell,
            status="incomplete" if incomplete else "completed",
            completed_at=shell["created_at"],
            incomplete_details={
                "reason": "max_output_tokens" if output.finish_reason == "length" else "content_filter"
            }
            if incomplete
            else None,
            output=items_out,
            usage=usage,
        )
        encoded = dumps(final) if store or not stream else b""
        if store:
            self._store.keep(response_id, encoded)
        finish_reasons = ["tool_calls" if calls else output.finish_reason]
        chat_usage = {"prompt_tokens": input_tokens, "completion_tokens": output_tokens}
        if stream:
            emit = _Numbered()
            events = _stream(emit, shell, final, output)
            return render.respond(
                request,
                behaviour,
                response_id,
                chat_usage,
                finish_reasons,
                events=events,
                render_error=emit.error,
            )
        return render.respond(request, behaviour, response_id, chat_usage, finish_reasons, body=encoded)


def _called(items: Any) -> Set[str]:
    """The functions the input shows called already (its ``function_call`` items)."""
    if not isinstance(items, list):
        return set()
    return {
        item["name"]
        for item in items
        if isinstance(item, dict)
        and item.get("type") == "function_call"
        and isinstance(item.get("name"), str)
    }


def _chat_choice(choice: Any) -> Any:
    """Responses name a forced function at the top level; chat nests it under ``function``."""
    if isinstance(choice, dict) and choice.get("type") == "function" and "name" in choice:
        return {"type": "function", "function": {"name": choice["name"]}}
    return choice


def read_input(body: Mapping[str, Any]) -> List[Message]:
    """Each input item as a message: a role's message, a function's output as a tool result,
    other items (calls, reasoning, references...) as context without text."""
    value = validate.required(body, "input")
    if isinstance(value, str):
        return [Message("user", value)]
    items = validate.array(value, "input", 1)
    if items is None:
        raise validate.wrong_type("input", "a string or an array of input items", value)
    out = []
    for index, item in enumerate(items):
        param = f"input[{index}]"
        if not isinstance(item, dict):
            raise validate.wrong_type(param, "an object", item)
        kind = validate.string(item.get("type"), f"{param}.type") or "message"
        if kind == "message":
            role = validate.required_string(item, "role", f"{param}.role")
            if role not in MESSAGE_ROLES:
                raise validate.invalid_value(f"{param}.role", role, MESSAGE_ROLES)
            content = validate.required(item, "content", f"{param}.content")
            out.append(Message(role, _content_text(content, f"{param}.content")))
        elif kind == "function_call_output":
            validate.required_string(item, "call_id", f"{param}.call_id")
            output = validate.required(item, "output", f"{param}.output")
            text = output if isinstance(output, str) else _content_text(output, f"{param}.output")
            out.append(Message(TOOL_RESULT, text))
        elif kind == "function_call":
            for field in ("call_id", "name", "arguments"):
                validate.required_string(item, field, f"{param}.{field}")
            out.append(Message("function_call", ""))
        else:
            out.append(
                Message(kind, "")
            )  # other item types (reasoning, references, ...) are accepted as context
    return out


def _content_text(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise validate.wrong_type(param, "a string or an array of content parts", content)
    texts = []
    for index, part in enumerate(content):
        if not isinstance(part, dict):
            raise validate.wrong_type(f"{param}[{index}]", "an object", part)
        kind = validate.required_string(part, "type", f"{param}[{index}].type")
        if kind in ("input_text", "output_text", "text"):
            texts.append(validate.required_string(part, "text", f"{param}[{index}].text") or "")
    return "\n".join(texts)


def read_text_format(
    body: Mapping[str, Any],
) -> Tuple[Optional[Dict[str, Any]], Optional[tools.OutputFormat]]:
    """``text.format`` as sent (for the response object), and the structured output it asks for."""
    text = validate.obj(body.get("text"), "text")
    fmt = text.get("format") if text else None
    return fmt, tools.read_output_format(fmt, "text.format", nested=False)


def _response_shell(
    response_id: str,
    model: str,
    body: Mapping[str, Any],
    instructions: Optional[str],
    max_output: Optional[int],
    text_format: Optional[Dict[str, Any]],
    store: bool,
) -> Dict[str, Any]:
    """The response object as it stands before any output."""
    created = render.now()
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": "in_progress",
        "background": False,
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": instructions,
        "max_output_tokens": max_output,
        "max_tool_calls": None,
        "model": model,
        "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": store,
        "temperature": 1.0 if body.get("temperature") is None else body["temperature"],
        "text": {"format": text_format or {"type": "text"}},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "top_logprobs": body.get("top_logprobs") or 0,
        "top_p": 1.0 if body.get("top_p") is None else body["top_p"],
        "truncation": "disabled",
        "metadata": body.get("metadata") or {},
    }


def _output_items(output: Output, calls: List[tools.Call], incomplete: bool) -> List[Dict[str, Any]]:
    if calls:
        return [
            {
                "id": random_id("fc_", 48),
                "type": "function_call",
                "status": "completed",
                "call_id": call.id,
                "name": call.name,
                "arguments": call.arguments,
            }
            for call in calls
        ]
    return [
        {
            "id": random_id("msg_", 48),
            "type": "message",
            "status": "incomplete" if incomplete else "completed",
            "role": "assistant",
            "content": [_text_part("".join(output.tokens))],
        }
    ]


def _text_part(text: str) -> Dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


class _Numbered:
    """Typed events numbered from 0, an error event (a fault's, a failure's) included."""

    def __init__(self) -> None:
        self._sequence = itertools.count()

    def __call__(self, kind: str, **fields: Any) -> bytes:
        return stream.typed_event(kind, {"type": kind, "sequence_number": next(self._sequence), **fields})

    def error(self, error: errors.APIError) -> bytes:
        """The ``error`` event the Responses API sends when a stream fails."""
        return self("error", code=error.code or error.type, message=error.message, param=error.param)


def _stream(emit: _Numbered, shell: Dict[str, Any], final: Dict[str, Any], output: Output) -> Iterator[Event]:
    """The typed events, in the real API's order."""

    yield emit("response.created", response=shell)
    yield emit("response.in_progress", response=shell)
    for output_index, item in enumerate(final["output"]):
        item_id = item["id"]
        if item["type"] == "function_call":
            yield emit(
                "response.output_item.added",
                output_index=output_index,
                item=dict(item, status="in_progress", arguments=""),
            )
            for fragment in tokenize(item["arguments"]):
                yield Token(
                    emit(
                        "response.function_call_arguments.delta",
                        item_id=item_id,
                        output_index=output_index,
                        delta=fragment,
                    )
                )
            yield emit(
                "response.function_call_arguments.done",
                item_id=item_id,
                output_index=output_index,
                name=item["name"],
                arguments=item["arguments"],
            )
        else:
            yield emit(
                "response.output_item.added",
                output_index=output_index,
                item=dict(item, status="in_progress", content=[]),
            )
            where = {"item_id": item_id, "output_index": output_index, "content_index": 0}
            yield emit("response.content_part.added", **where, part=_text_part(""))
            for token in output.tokens:
                yield Token(emit("response.output_text.delta", **where, delta=token, logprobs=[]))
            text = "".join(output.tokens)
            yield emit("response.output_text.done", **where, text=text, logprobs=[])
            yield emit("response.content_part.done", **where, part=_text_part(text))
        yield emit("response.output_item.done", output_index=output_index, item=item)
    yield emit(
        "response.incomplete" if final["status"] == "incomplete" else "response.completed", response=final
    )
