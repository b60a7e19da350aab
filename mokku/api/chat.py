"""``POST /v1/chat/completions``: echo the last user message, whole or as an SSE stream."""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Mapping, NamedTuple, Optional

from mokku import errors, telemetry
from mokku.api import generation, logprobs, tokens, tools, validate
from mokku.api.ids import random_id
from mokku.api.tokens import TOKENS_PER_MESSAGE, TOKENS_PER_REPLY, count
from mokku.server import stream
from mokku.server.http import JSONTemplate, Request, Response
from mokku.simulation import limits
from mokku.simulation.faults import Behaviour

# Top-level parameters of CreateChatCompletionRequest; others are refused only with MOKKU_STRICT.
KNOWN_PARAMS = frozenset(
    "audio frequency_penalty function_call functions logit_bias logprobs max_completion_tokens max_tokens "
    "messages metadata modalities model moderation n parallel_tool_calls prediction presence_penalty "
    "prompt_cache_key prompt_cache_options prompt_cache_retention reasoning_effort response_format "
    "safety_identifier seed service_tier stop store stream stream_options temperature tool_choice tools "
    "top_logprobs top_p user verbosity web_search_options".split()
)

# What make_reply reads: a request with none of them gets the plain echo.
OUTPUT_OPTIONS = frozenset(
    "logprobs top_logprobs response_format tools tool_choice parallel_tool_calls functions function_call".split()
)
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
# Content part types each role may send in an array content.
PART_TYPES: Dict[str, tuple] = {
    "system": ("text",),
    "developer": ("text",),
    "user": ("text", "image_url", "input_audio", "file"),
    "assistant": ("text", "refusal"),
    "tool": ("text",),
}
# The field each part type must carry, and that field's JSON type.
_PART_FIELDS = {
    "text": ("text", str, "a string"),
    "refusal": ("refusal", str, "a string"),
    "image_url": ("image_url", dict, "an object"),
    "input_audio": ("input_audio", dict, "an object"),
    "file": ("file", dict, "an object"),
}
RESPONSE_FORMATS = ("text", "json_object", "json_schema")


class Reply(NamedTuple):
    """What every choice answers: text (``output``), or calls to functions (``calls``)."""

    output: generation.Output
    calls: List[tools.Call]
    legacy: bool  # the calls use the old ``function_call`` form
    top_logprobs: Optional[int]  # logprobs asked for: how many alternatives per token


def create(request: Request) -> Response:
    body, behaviour = generation.begin(request, "chat", KNOWN_PARAMS)
    model = behaviour.model
    messages = read_messages(body)
    sampling = generation.read_sampling(body, ("max_completion_tokens", "max_tokens"), None)
    script = generation.scripted(request, behaviour, "chat.completions", echo_text(messages))
    prompt_tokens = prompt_token_count(messages)
    limits.check_context(request, model, prompt_tokens, sampling.max_tokens, behaviour.is_("context_length"))
    reply = make_reply(request, body, messages, sampling, behaviour, script)

    per_choice = len(reply.output.tokens) + tools.output_tokens(reply.calls)
    usage = generation.usage(prompt_tokens, per_choice * sampling.n)
    completion_id = random_id("chatcmpl-")
    created = generation.now()
    finish = reply.output.finish_reason
    if reply.calls:
        finish = "function_call" if reply.legacy else "tool_calls"
    finish_reasons = [finish] * sampling.n
    if request.span is not None:  # the reply's message is built only for a span that may record it
        telemetry.record_messages(request.span, messages, _message(reply, finish))
    if sampling.stream:
        events = _stream(
            completion_id,
            created,
            behaviour,
            reply,
            finish,
            sampling,
            usage if sampling.include_usage else None,
        )
        return generation.respond(request, behaviour, completion_id, usage, finish_reasons, events=events)
    if sampling.n == 1 and not reply.calls and reply.top_logprobs is None:
        # The common answer: one text choice, from a template encoded once.
        counts = usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]
        text = "".join(reply.output.tokens)
        encoded = _TEXT_ANSWER.render(completion_id, created, model, text, finish, *counts)
        return generation.respond(request, behaviour, completion_id, usage, finish_reasons, body=encoded)
    choices = [
        _choice(index, _message(reply, finish), _logprobs(reply.output.tokens, reply.top_logprobs), finish)
        for index in range(sampling.n)
    ]
    result = _completion(completion_id, created, model, choices, usage)
    return generation.respond(request, behaviour, completion_id, usage, finish_reasons, body=result)


def _completion(
    completion_id: str, created: int, model: str, choices: List[Dict[str, Any]], usage: Dict[str, Any]
) -> Dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage,
        "service_tier": generation.SERVICE_TIER,
        "system_fingerprint": generation.SYSTEM_FINGERPRINT,
    }


def _choice(index: int, message: Dict[str, Any], logprobs: Any, finish: str) -> Dict[str, Any]:
    return {"index": index, "message": message, "logprobs": logprobs, "finish_reason": finish}


def _text_message(content: Optional[str]) -> Dict[str, Any]:
    return {"role": "assistant", "content": content, "refusal": None, "annotations": []}


_SLOT: Any = JSONTemplate.SLOT
# Slots: id, created, model, content, finish reason, prompt / completion / total tokens.
_TEXT_ANSWER = JSONTemplate(
    _completion(
        _SLOT,
        _SLOT,
        _SLOT,
        [_choice(0, _text_message(_SLOT), None, _SLOT)],
        {**generation.usage(0, 0), "prompt_tokens": _SLOT, "completion_tokens": _SLOT, "total_tokens": _SLOT},
    )
)


def make_reply(
    request: Request,
    body: Mapping[str, Any],
    messages: List[Dict[str, Any]],
    sampling: generation.Sampling,
    behaviour: Behaviour,
    script: Optional[Dict[str, Any]] = None,
) -> Reply:
    """Validate the output options and decide the reply: scripted, calls, structured JSON, or the echo."""
    if script is None and body.keys().isdisjoint(OUTPUT_OPTIONS):
        text = request.settings.echo_prefix + echo_text(messages)  # nothing asked but text: the echo
        return Reply(generation.complete(text, sampling, behaviour), [], False, None)
    wants_logprobs = validate.boolean(body.get("logprobs"), "logprobs")
    top_logprobs = validate.integer(body.get("top_logprobs"), "top_logprobs", 0, 20)
    if top_logprobs is not None and not wants_logprobs:
        raise errors.invalid_request(
            "Invalid value for 'top_logprobs': 'logprobs' must be set to true when 'top_logprobs' is used.",
            "top_logprobs",
        )
    response_format = validate.obj(body.get("response_format"), "response_format")
    if response_format is not None:
        kind = validate.required(response_format, "type", "response_format.type")
        if kind not in RESPONSE_FORMATS:
            raise validate.invalid_value("response_format.type", kind, RESPONSE_FORMATS)
        if kind == "json_schema":
            schema = validate.required(response_format, "json_schema", "response_format.json_schema")
            schema = validate.obj(schema, "response_format.json_schema") or {}
            validate.string(
                validate.required(schema, "name", "response_format.json_schema.name"),
                "response_format.json_schema.name",
            )
            validate.obj(schema.get("schema"), "response_format.json_schema.schema")
    functions = tools.read_functions(body)
    validate.boolean(body.get("parallel_tool_calls"), "parallel_tool_calls")
    text = echo_text(messages)
    last_role = messages[-1]["role"]
    chosen = tools.choose(
        functions, body.get("tool_choice"), body.get("parallel_tool_calls"), last_role, "tool_choice"
    )
    legacy = False
    if not chosen and "functions" in body:
        legacy_functions = tools.read_legacy_functions(body)
        chosen = tools.choose(legacy_functions, body.get("function_call"), None, last_role, "function_call")
        legacy = True
    top = (top_logprobs or 0) if wants_logprobs else None
    if script is not None and "content" in script:
        return Reply(generation.complete(script["content"], sampling, behaviour), [], False, top)
    if script is not None and "tool_call" in script:
        return Reply(generation.Output([], "stop"), [tools.scripted_call(script["tool_call"])], False, top)
    if chosen and not behaviour.is_("content_filter"):
        return Reply(generation.Output([], "stop"), tools.make_calls(chosen, text), legacy, top)
    structured = tools.structured_content(response_format, text, "response_format.json_schema.schema")
    reply_text = structured if structured is not None else request.settings.echo_prefix + text
    return Reply(generation.complete(reply_text, sampling, behaviour), [], False, top)


def _message(reply: Reply, finish: str) -> Dict[str, Any]:
    if not reply.calls:
        return _text_message("".join(reply.output.tokens))
    message = _text_message(None)
    if reply.legacy:
        call = reply.calls[0]
        message["function_call"] = {"name": call.name, "arguments": call.arguments}
    else:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in reply.calls
        ]
    return message


def _logprobs(token_list: List[str], top: Optional[int]) -> Optional[Dict[str, Any]]:
    if top is None:
        return None
    return {"content": [logprobs.token_entry(token, top) for token in token_list], "refusal": None}


class _LogprobChunks:
    """Renders one choice's token chunks, each with that token's logprobs."""

    def __init__(self, chunk: Callable[..., Dict[str, Any]], index: int, top: int) -> None:
        self.chunk, self.index, self.top = chunk, index, top

    def render(self, token: str) -> bytes:
        return stream.event(self.chunk(self.index, {"content": token}, logprobs=_logprobs([token], self.top)))


def _stream(
    completion_id: str,
    created: int,
    behaviour: Behaviour,
    reply: Reply,
    finish: str,
    sampling: generation.Sampling,
    usage: Optional[Dict[str, Any]],
) -> Iterator[bytes]:
    """Per choice: a role chunk, one chunk per token (or per call and argument fragment), a finish
    chunk; then usage and [DONE]."""
    base = generation.chunk_base(
        "chat.completion.chunk",
        completion_id,
        created,
        behaviour.model,
        usage is not None,
        service_tier=generation.SERVICE_TIER,
    )

    def chunk(
        index: int, delta: Any, finish_reason: Optional[str] = None, logprobs: Any = None
    ) -> Dict[str, Any]:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}
        return {**base, "choices": [choice]}

    # Events ready at the same moment (the role chunks and the first token; the finish chunks, usage
    # and [DONE]) go out in one write: the same bytes, fewer system calls (a streamed echo's 12
    # writes become 10). Paced tokens are never held back. A stream fault counts events, so a
    # stream with one writes each event on its own.
    together = behaviour.stream_fault is None
    choices = range(sampling.n)
    if reply.calls:
        for index in choices:
            yield from _call_chunks(chunk, index, reply, behaviour)
    else:
        openings = [
            stream.event(chunk(i, {"role": "assistant", "content": "", "refusal": None})) for i in choices
        ]
        renderers: List[generation.TokenEvents]
        if reply.top_logprobs is None:
            renderers = [
                stream.EventTemplate(chunk(i, {"content": stream.EventTemplate.SLOT})) for i in choices
            ]
        else:
            renderers = [_LogprobChunks(chunk, i, reply.top_logprobs) for i in choices]
        tokens = generation.interleave(
            renderers, [reply.output.tokens] * sampling.n, behaviour.between_tokens
        )
        if together:
            yield b"".join(openings) + next(tokens, b"")
        else:
            yield from openings
        yield from tokens
    closing = [stream.event(chunk(index, {}, finish)) for index in choices]
    closing.extend(generation.stream_end(base, usage))
    if together:
        yield b"".join(closing)
    else:
        yield from closing


def _call_chunks(
    chunk: Callable[..., Dict[str, Any]], index: int, reply: Reply, behaviour: Behaviour
) -> Iterator[bytes]:
    """A call's header (id, type, name, empty arguments), then its arguments in fragments."""
    for position, call in enumerate(reply.calls):
        if reply.legacy:
            head: Dict[str, Any] = {"function_call": {"name": call.name, "arguments": ""}}
        else:
            head = {
                "tool_calls": [
                    {
                        "index": position,
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": ""},
                    }
                ]
            }
        if position == 0:
            head = {"role": "assistant", "content": None, **head, "refusal": None}
        yield stream.event(chunk(index, head))
        for fragment in tokens.tokenize(call.arguments):
            behaviour.between_tokens()
            if reply.legacy:
                delta: Dict[str, Any] = {"function_call": {"arguments": fragment}}
            else:
                delta = {"tool_calls": [{"index": position, "function": {"arguments": fragment}}]}
            yield stream.event(chunk(index, delta))


def read_messages(body: Mapping[str, Any]) -> List[Dict[str, Any]]:
    messages = validate.array(validate.required(body, "messages"), "messages", 1) or []
    for index, message in enumerate(messages):
        _check_message(message, f"messages[{index}]")
    return messages


def _check_message(message: Any, param: str) -> None:
    if not isinstance(message, dict):
        raise validate.wrong_type(param, "an object", message)
    role = validate.string(validate.required(message, "role", f"{param}.role"), f"{param}.role")
    if role not in ROLES:
        raise validate.invalid_value(f"{param}.role", role, ROLES)
    validate.string(message.get("name"), f"{param}.name")
    content = message.get("content")
    if role == "assistant":
        # Content may be left out only when the message carries a call or audio instead.
        calls = validate.array(message.get("tool_calls"), f"{param}.tool_calls")
        function_call = validate.obj(message.get("function_call"), f"{param}.function_call")
        audio = validate.obj(message.get("audio"), f"{param}.audio")
        if content is None and calls is None and function_call is None and audio is None:
            raise validate.missing(f"{param}.content")
    elif role == "function":
        validate.string(validate.required(message, "name", f"{param}.name"), f"{param}.name")
        validate.string(content, f"{param}.content")
        return
    elif content is None:
        raise validate.missing(f"{param}.content")
    if role == "tool":
        validate.string(
            validate.required(message, "tool_call_id", f"{param}.tool_call_id"), f"{param}.tool_call_id"
        )
    if content is not None and not isinstance(content, str):
        _check_parts(content, f"{param}.content", PART_TYPES[role])


def _check_parts(content: Any, param: str, allowed: tuple) -> None:
    if not isinstance(content, list):
        raise validate.wrong_type(param, "a string or an array of content parts", content)
    validate.array(content, param, 1)
    for index, part in enumerate(content):
        part_param = f"{param}[{index}]"
        if not isinstance(part, dict):
            raise validate.wrong_type(part_param, "an object", part)
        kind = validate.string(validate.required(part, "type", f"{part_param}.type"), f"{part_param}.type")
        if kind not in allowed:
            raise validate.invalid_value(f"{part_param}.type", kind, allowed)
        field, field_type, expected = _PART_FIELDS[kind]
        value = validate.required(part, field, f"{part_param}.{field}")
        if not isinstance(value, field_type):
            raise validate.wrong_type(f"{part_param}.{field}", expected, value)


def message_text(message: Mapping[str, Any]) -> str:
    """A message's text: its string content, or its text parts joined by newlines."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part["text"] for part in content if part.get("type") == "text")
    return ""


def echo_text(messages: List[Dict[str, Any]]) -> str:
    """The last user message's text; with no user message, the last message's. After a tool
    (or function) result, that result's text, so that an agent loop ends."""
    if messages[-1]["role"] in ("tool", "function"):
        return message_text(messages[-1])
    for message in reversed(messages):
        if message["role"] == "user":
            return message_text(message)
    return message_text(messages[-1])


def prompt_token_count(messages: List[Dict[str, Any]]) -> int:
    total = TOKENS_PER_REPLY
    for message in messages:
        total += TOKENS_PER_MESSAGE + count(message_text(message))
        if message.get("name"):
            total += 1
    return total
