"""The Responses API: ``POST /v1/responses``, ``GET`` and ``DELETE /v1/responses/{id}``.

The reply follows the chat rules: it echoes the last user message (or, after a
``function_call_output``, that output, so agent loops end), calls a function when function
tools are sent (see ``tools``), or answers JSON for ``text.format`` json_schema / json_object.
Streams send the real typed events, each ``event: <type>`` plus ``data: <json>`` with a
``sequence_number``. Responses created with ``store`` (the default) are kept, newest first, in a
bounded in-memory store of ``STORE_SIZE`` per worker process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

from mokku import errors
from mokku.api import generation, tools, validate
from mokku.api.ids import random_id
from mokku.api.tokens import TOKENS_PER_MESSAGE, TOKENS_PER_REPLY, count, tokenize
from mokku.server import stream
from mokku.server.http import Request, Response, json_response
from mokku.simulation import limits
from mokku.simulation.faults import Behaviour

STORE_SIZE = 1000
MESSAGE_ROLES = ("user", "assistant", "system", "developer")
FORMATS = ("text", "json_schema", "json_object")


def not_found(response_id: str) -> errors.APIError:
    return errors.APIError(404, f"Response with id '{response_id}' not found.", "invalid_request_error")


class Responses:
    """The endpoint family, with its store of created responses."""

    def __init__(self, size: int = STORE_SIZE) -> None:
        self._store: OrderedDict[str, Dict[str, Any]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def _keep(self, response: Dict[str, Any]) -> None:
        with self._lock:
            self._store[response["id"]] = response
            self._store.move_to_end(response["id"])
            while len(self._store) > self._size:
                self._store.popitem(last=False)

    def retrieve(self, request: Request, response_id: str) -> Response:
        with self._lock:
            stored = self._store.get(response_id)
        if stored is None:
            raise not_found(response_id)
        return json_response(stored)

    def delete(self, request: Request, response_id: str) -> Response:
        with self._lock:
            found = self._store.pop(response_id, None)
        if found is None:
            raise not_found(response_id)
        return json_response({"id": response_id, "object": "response", "deleted": True})

    def create(self, request: Request) -> Response:
        body, behaviour = generation.begin(request, "chat")
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
        text_format = read_text_format(body)
        functions = tools.read_functions(body, flat=True)

        input_tokens = TOKENS_PER_REPLY + sum(TOKENS_PER_MESSAGE + count(text) for _, text in items)
        if instructions:
            input_tokens += TOKENS_PER_MESSAGE + count(instructions)
        script = generation.scripted(request, behaviour, "responses", _echo(items))
        limits.check_context(request, model, input_tokens, max_output, behaviour.is_("context_length"))
        last_type, echo = items[-1][0], _echo(items)
        chosen = tools.choose(
            functions,
            _chat_choice(body.get("tool_choice")),
            body.get("parallel_tool_calls"),
            last_type,
            "tool_choice",
        )
        sampling = generation.Sampling(1, max_output, (), stream, False)
        if script is not None and "tool_call" in script:
            calls = [tools.scripted_call(script["tool_call"])]
            output = generation.Output([], "stop")
        elif script is not None and "content" in script:
            calls = []
            output = generation.complete(script["content"], sampling, behaviour)
        elif chosen and not behaviour.is_("content_filter"):
            calls = tools.make_calls(chosen, echo)
            output = generation.Output([], "stop")
        else:
            calls = []
            structured = tools.structured_content(text_format, echo, "text.format.schema")
            reply = structured if structured is not None else request.settings.echo_prefix + echo
            output = generation.complete(reply, sampling, behaviour)

        response_id = random_id("resp_", 48)
        incomplete = output.finish_reason in ("length", "content_filter")
        output_tokens = len(output.tokens) + tools.output_tokens(calls)
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
        if store:
            self._keep(final)
        finish_reasons = ["tool_calls" if calls else output.finish_reason]
        chat_usage = {"prompt_tokens": input_tokens, "completion_tokens": output_tokens}
        if stream:
            events = _stream(shell, final, output, calls, behaviour)
            return generation.respond(
                request, behaviour, response_id, chat_usage, finish_reasons, events=events
            )
        return generation.respond(request, behaviour, response_id, chat_usage, finish_reasons, body=final)


def _chat_choice(choice: Any) -> Any:
    """Responses name a forced function at the top level; chat nests it under ``function``."""
    if isinstance(choice, dict) and choice.get("type") == "function" and "name" in choice:
        return {"type": "function", "function": {"name": choice["name"]}}
    return choice


def read_input(body: Mapping[str, Any]) -> List[Tuple[str, str]]:
    """(item type or role, its text) for each input item; a string input is one user message."""
    value = validate.required(body, "input")
    if isinstance(value, str):
        return [("user", value)]
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
            role = validate.string(validate.required(item, "role", f"{param}.role"), f"{param}.role")
            if role not in MESSAGE_ROLES:
                raise validate.invalid_value(f"{param}.role", role, MESSAGE_ROLES)
            out.append(
                (
                    role,
                    _content_text(validate.required(item, "content", f"{param}.content"), f"{param}.content"),
                )
            )
        elif kind == "function_call_output":
            validate.string(validate.required(item, "call_id", f"{param}.call_id"), f"{param}.call_id")
            output = validate.required(item, "output", f"{param}.output")
            out.append(
                (
                    "function_call_output",
                    output if isinstance(output, str) else _content_text(output, f"{param}.output"),
                )
            )
        elif kind == "function_call":
            for field in ("call_id", "name", "arguments"):
                validate.string(validate.required(item, field, f"{param}.{field}"), f"{param}.{field}")
            out.append(("function_call", ""))
        else:
            out.append((kind, ""))  # other item types (reasoning, references, ...) are accepted as context
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
        kind = validate.string(
            validate.required(part, "type", f"{param}[{index}].type"), f"{param}[{index}].type"
        )
        if kind in ("input_text", "output_text", "text"):
            texts.append(
                validate.string(
                    validate.required(part, "text", f"{param}[{index}].text"), f"{param}[{index}].text"
                )
                or ""
            )
    return "\n".join(texts)


def _echo(items: List[Tuple[str, str]]) -> str:
    if items[-1][0] == "function_call_output":
        return items[-1][1]
    for kind, text in reversed(items):
        if kind == "user":
            return text
    return items[-1][1]


def read_text_format(body: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    text = validate.obj(body.get("text"), "text")
    if not text:
        return None
    fmt = validate.obj(text.get("format"), "text.format")
    if fmt is None:
        return None
    kind = validate.required(fmt, "type", "text.format.type")
    if kind not in FORMATS:
        raise validate.invalid_value("text.format.type", kind, FORMATS)
    if kind == "json_schema":
        validate.string(validate.required(fmt, "name", "text.format.name"), "text.format.name")
        validate.obj(validate.required(fmt, "schema", "text.format.schema"), "text.format.schema")
    return fmt


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
    created = generation.now()
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


def _output_items(
    output: generation.Output, calls: List[tools.Call], incomplete: bool
) -> List[Dict[str, Any]]:
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


def _stream(
    shell: Dict[str, Any],
    final: Dict[str, Any],
    output: generation.Output,
    calls: List[tools.Call],
    behaviour: Behaviour,
) -> Iterator[bytes]:
    """The typed events, in the real API's order, numbered from 0."""
    sequence = iter(range(1 << 62))

    def emit(kind: str, **fields: Any) -> bytes:
        return stream.typed_event(kind, {"type": kind, "sequence_number": next(sequence), **fields})

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
            for number, fragment in enumerate(tokenize(item["arguments"])):
                if number:
                    behaviour.between_tokens()
                yield emit(
                    "response.function_call_arguments.delta",
                    item_id=item_id,
                    output_index=output_index,
                    delta=fragment,
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
            for number, token in enumerate(output.tokens):
                if number:
                    behaviour.between_tokens()
                yield emit("response.output_text.delta", **where, delta=token, logprobs=[])
            text = "".join(output.tokens)
            yield emit("response.output_text.done", **where, text=text, logprobs=[])
            yield emit("response.content_part.done", **where, part=_text_part(text))
        yield emit("response.output_item.done", output_index=output_index, item=item)
    yield emit(
        "response.incomplete" if final["status"] == "incomplete" else "response.completed", response=final
    )
