"""``POST /v1/chat/completions``: echo the last user message, whole or as an SSE stream."""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Mapping, Optional

from . import errors, generation, limits, sse, telemetry, validate
from .faults import Behaviour
from .http import Request, Response
from .ids import random_id
from .tokens import TOKENS_PER_MESSAGE, TOKENS_PER_REPLY, count

# Top-level parameters of CreateChatCompletionRequest; others are refused only with MOKKU_STRICT.
KNOWN_PARAMS = frozenset(
    "audio frequency_penalty function_call functions logit_bias logprobs max_completion_tokens max_tokens "
    "messages metadata modalities model moderation n parallel_tool_calls prediction presence_penalty "
    "prompt_cache_key prompt_cache_options prompt_cache_retention reasoning_effort response_format "
    "safety_identifier seed service_tier stop store stream stream_options temperature tool_choice tools "
    "top_logprobs top_p user verbosity web_search_options".split()
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


def create(request: Request) -> Response:
    body = request.json()
    if request.settings.strict:
        validate.reject_unknown(body, KNOWN_PARAMS)
    model = validate.string(validate.required(body, "model"), "model")
    telemetry.record_request(request.span, "chat", model, body)
    behaviour = request.simulator.decide(request, model)
    model = behaviour.model
    messages = read_messages(body)
    sampling = generation.read_sampling(body, ("max_completion_tokens", "max_tokens"), None)
    read_output_options(body)
    prompt_tokens = prompt_token_count(messages)
    limits.check_context(request, model, prompt_tokens, sampling.max_tokens, behaviour.is_("context_length"))

    output = generation.complete(echo_text(messages), sampling, behaviour)
    usage = generation.usage(prompt_tokens, len(output.tokens) * sampling.n)
    completion_id = random_id("chatcmpl-")
    created = generation.now()
    finish_reasons = [output.finish_reason] * sampling.n
    if sampling.stream:
        events = _stream(
            completion_id, created, behaviour, output, sampling, usage if sampling.include_usage else None
        )
        return generation.respond(request, behaviour, completion_id, usage, finish_reasons, events=events)
    content = "".join(output.tokens)
    choices = [
        {
            "index": index,
            "message": {"role": "assistant", "content": content, "refusal": None, "annotations": []},
            "logprobs": None,
            "finish_reason": output.finish_reason,
        }
        for index in range(sampling.n)
    ]
    result = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage,
        "service_tier": generation.SERVICE_TIER,
        "system_fingerprint": generation.SYSTEM_FINGERPRINT,
    }
    return generation.respond(request, behaviour, completion_id, usage, finish_reasons, body=result)


def _stream(
    completion_id: str,
    created: int,
    behaviour: Behaviour,
    output: generation.Output,
    sampling: generation.Sampling,
    usage: Optional[Dict[str, Any]],
) -> Iterator[bytes]:
    """Per choice: a role chunk, one chunk per token, a finish chunk; then usage and [DONE]."""
    base = generation.chunk_base(
        "chat.completion.chunk",
        completion_id,
        created,
        behaviour.model,
        usage is not None,
        service_tier=generation.SERVICE_TIER,
    )

    def chunk(index: int, delta: Any, finish_reason: Optional[str] = None) -> Dict[str, Any]:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**base, "choices": [choice]}

    choices = range(sampling.n)
    for index in choices:
        yield sse.event(chunk(index, {"role": "assistant", "content": "", "refusal": None}))
    content = [sse.EventTemplate(chunk(index, {"content": sse.EventTemplate.SLOT})) for index in choices]
    yield from generation.interleave(content, [output.tokens] * sampling.n, behaviour.between_tokens)
    for index in choices:
        yield sse.event(chunk(index, {}, output.finish_reason))
    yield from generation.stream_end(base, usage)


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


def read_output_options(body: Mapping[str, Any]) -> None:
    """Check the fields that shape output beyond the echo (logprobs, tools, response_format)."""
    logprobs = validate.boolean(body.get("logprobs"), "logprobs")
    top_logprobs = validate.integer(body.get("top_logprobs"), "top_logprobs", 0, 20)
    if top_logprobs is not None and not logprobs:
        raise errors.invalid_request(
            "Invalid value for 'top_logprobs': 'logprobs' must be set to true when 'top_logprobs' is used.",
            "top_logprobs",
        )
    tools = validate.array(body.get("tools"), "tools") or []
    for index, tool in enumerate(tools):
        param = f"tools[{index}]"
        if not isinstance(tool, dict):
            raise validate.wrong_type(param, "an object", tool)
        kind = validate.string(validate.required(tool, "type", f"{param}.type"), f"{param}.type")
        if kind not in ("function", "custom"):
            raise validate.invalid_value(f"{param}.type", kind, ("function", "custom"))
        definition = validate.obj(validate.required(tool, kind, f"{param}.{kind}"), f"{param}.{kind}") or {}
        validate.string(validate.required(definition, "name", f"{param}.{kind}.name"), f"{param}.{kind}.name")
        if kind == "function":
            validate.obj(definition.get("parameters"), f"{param}.function.parameters")
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


def message_text(message: Mapping[str, Any]) -> str:
    """A message's text: its string content, or its text parts joined by newlines."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part["text"] for part in content if part.get("type") == "text")
    return ""


def echo_text(messages: List[Dict[str, Any]]) -> str:
    """The last user message's text; with no user message, the last message's."""
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
