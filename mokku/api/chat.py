"""``POST /v1/chat/completions``: echo the last user message, whole or as an SSE stream."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from mokku import errors, telemetry
from mokku.api import audio, items, logprobs, render, tokens, tools, validate
from mokku.api.decide import (
    HANDED_OFF,
    INSTRUCTING,
    TOOL_RESULT,
    Generation,
    Message,
    Replies,
    Reply,
    asks_to_terminate,
    conversation_tokens,
    echo_text,
    ends_with_result,
    message_text,
    tool_answer,
)
from mokku.api.ids import random_id
from mokku.api.models import COMPLETION_MODELS, EMBEDDING_MODELS, RESPONSES_ONLY, snapshot
from mokku.api.sampling import (
    CACHE_OPTIONS,
    CHAT_OPTIONS,
    GPT_5_6_AND_LATER,
    REASONING_MODELS,
    check_effort_for,
    check_verbosity_for,
    default_effort,
    read_sampling,
)
from mokku.api.stored_chats import StoredChats
from mokku.api.tokens import definition_tokens
from mokku.server import stream
from mokku.server.http import JSONTemplate, Request, Response
from mokku.server.stream import Event, Token

# Top-level parameters of CreateChatCompletionRequest; others are refused only with MOKKU_STRICT.
KNOWN_PARAMS = validate.known_params(
    "audio frequency_penalty function_call functions logit_bias logprobs max_completion_tokens max_tokens "
    "messages metadata modalities model moderation n parallel_tool_calls prediction presence_penalty "
    "prompt_cache_key prompt_cache_options prompt_cache_retention reasoning_effort response_format "
    "safety_identifier seed service_tier stop store stream stream_options temperature tool_choice tools "
    "top_logprobs top_p user verbosity web_search_options",
    stream_options="include_usage include_obfuscation",
    prompt_cache_options=" ".join(CACHE_OPTIONS),
)

# What read_reply_options reads: a request with none of them gets the plain echo.
OUTPUT_OPTIONS = frozenset(
    "logprobs top_logprobs response_format tools tool_choice parallel_tool_calls functions function_call".split()
)
ROLES = ("system", "assistant", "user", "function", "tool", "developer")  # in the order errors list them
OBJECTS = "an array of objects"
CONTENT_TYPES = "one of a string or array of objects"  # a message's content, as type errors name it
CALL_FIELDS = {"function": ("name", "arguments"), "custom": ("name", "input")}  # a handed-back call's
CONTENT_INSTEAD = ("tool_calls", "function_call", "audio")  # what an assistant message may carry instead
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
# The fields inside an image's, an audio clip's or a file's object: those it must carry, and each
# one's check, as the spec types them.
_PART_INNER: Dict[str, Tuple[Tuple[str, ...], Dict[str, validate.Check]]] = {
    "image_url": (("url",), {"url": validate.string, "detail": validate.one_of("auto", "low", "high")}),
    "input_audio": (("data", "format"), {"data": validate.string, "format": validate.one_of("wav", "mp3")}),
    "file": ((), {"file_id": validate.string, "file_data": validate.string, "filename": validate.string}),
}


JSON_NOT_NAMED = (
    "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'."
)


def create(request: Request, replies: Replies, kept: Optional[StoredChats] = None) -> Response:
    """``kept``: where ``store: true`` keeps the completion (none: it is not kept)."""
    body, behaviour = replies.begin(request, "chat", KNOWN_PARAMS, required=("messages",))
    model = behaviour.model
    if RESPONSES_ONLY.match(model):
        raise errors.responses_only()
    served = request.dialect.answer_model(model)  # an Azure deployment's: the model it serves
    if served in COMPLETION_MODELS or served in EMBEDDING_MODELS:
        raise request.dialect.wrong_operation(errors.CHAT, served)
    messages = read_messages(body)
    conversation = [
        Message(
            TOOL_RESULT if m["role"] == "function" else m["role"],
            message_text(m.get("content")),
            bool(m.get("name")),
        )
        for m in messages
    ]
    if conversation[-1].role == TOOL_RESULT:
        conversation[-1] = tool_answer(_answered_call(messages), conversation[-1], conversation[:-1])
    for index, message in enumerate(conversation):  # autogen's handoff notice: no request to echo
        if message.role == "user" and tools.HANDED_OVER_TEXT.fullmatch(message.text):
            conversation[index] = Message(HANDED_OFF, "", message.named)
    sampling = read_sampling(body, ("max_completion_tokens", "max_tokens"))
    validate.options(body, CHAT_OPTIONS)
    spoken_format = audio.asked_format(body, sampling.stream)
    if model.startswith(REASONING_MODELS):
        _check_reasoning(body, model)
    elif "reasoning_effort" in body:
        check_effort_for(model, body["reasoning_effort"], "reasoning_effort")
    if "verbosity" in body:
        check_verbosity_for(model, body["verbosity"], "verbosity")
    if body.get("max_tokens") is not None and body.get("max_completion_tokens") is not None:
        raise errors.invalid_request(
            "Setting 'max_tokens' and 'max_completion_tokens' at the same time is not supported.",
            "max_tokens",
            "invalid_parameter_combination",
        )
    check_turns(messages)
    model = snapshot(request.dialect.answer_model(model))  # the answer names the snapshot an alias serves
    store = "store" in body and validate.boolean(body["store"], "store")
    tier = render.service_tier(body.get("service_tier"))
    metadata = items.metadata(body) if "metadata" in body else None
    if metadata and not store and not request.path.startswith("/v1beta/openai/"):
        raise errors.invalid_request(
            "The 'metadata' parameter is only allowed when 'store' is enabled.", "metadata"
        )
    # Its own answer last: nothing new was asked, so nothing is called again (an autogen team asks
    # the agent that just answered to go on). Another agent's answer last (an autogen team's, as a
    # user message named by its agent), when the system message asks for TERMINATE once the task
    # is done: it is done.
    answered = conversation[-1].role == "assistant" and bool(conversation[-1].text)
    done = (
        conversation[-1].role == "user" and _from_another_agent(messages) and asks_to_terminate(conversation)
    )
    answered = answered or done
    functions, output_format, top, legacy = read_reply_options(
        body, messages, ends_with_result(conversation) or answered, conversation[-1].role == HANDED_OFF
    )
    instructing = [m.text for m in conversation if m.role in INSTRUCTING]
    if output_format is not None:
        tools.check_structured_outputs(model, output_format, "response_format")
        if not request.path.startswith("/v1beta/openai/"):  # Gemini's compatibility has no such rule
            tools.check_json_named(output_format, conversation, JSON_NOT_NAMED, "messages")
        output_format = tools.instructed(output_format, instructing)
    elif not functions and instructing:  # a JSON Schema a system or developer message asks JSON of
        output_format = tools.prompted(instructing, "messages")
    generation = Generation(
        "chat.completions",
        ["TERMINATE" if done else echo_text(conversation, (), body.get("tools") or body.get("functions"))],
        [conversation_tokens(conversation) + definition_tokens(body.get("tools") or body.get("functions"))],
        sampling,
        functions,
        output_format,
        top,
        conversation=conversation,
    )
    reply = replies.decide(request, behaviour, generation)

    per_choice = reply.completion_tokens()
    speaks = spoken_format is not None and not reply.calls
    said = audio.audio_tokens(per_choice, sampling.n) if speaks else 0  # each choice's audio tokens
    usage = render.usage(
        generation.prompt_tokens[0], (per_choice + said) * sampling.n, cached=request.cached_tokens
    )
    if said:
        usage["completion_tokens_details"]["audio_tokens"] = said * sampling.n
    completion_id = random_id("chatcmpl-")
    created = render.now()
    finish = reply.outputs[0].finish_reason
    if reply.calls and finish != "length":  # cut by the token limit, a call still says so
        finish = "function_call" if legacy else "tool_calls"
    finish_reasons = [finish] * sampling.n
    whole = None  # the whole answer, built once: for keeping, and for answering when not streamed
    if store and kept is not None:
        choices = _choices(reply, legacy, finish, sampling.n, spoken_format if speaks else None, created)
        whole = _completion(completion_id, created, model, choices, usage, tier)
        kept.keep(whole, messages, metadata)  # encoded there: the dialect may decorate it after
    if request.span is not None:  # the reply's message is built only for a span that may record it
        telemetry.record_messages(request.span, messages, _message(reply, legacy))
    if sampling.stream:
        events = _stream(
            completion_id,
            created,
            model,
            reply,
            legacy,
            finish,
            sampling.n,
            usage if sampling.include_usage else None,
            tier,
            render.obfuscation(sampling.include_obfuscation),
            speaks,
        )
        sent = request.dialect.completion_events(events, request)  # Azure adds its filter results
        return render.respond(
            request, behaviour, completion_id, usage, finish_reasons, events=sent, answered=model
        )
    if (
        sampling.n == 1
        and not reply.calls
        and not speaks
        and reply.top_logprobs is None
        and not request.dialect.decorates
        and not request.cached_tokens
        and tier == render.SERVICE_TIER
    ):
        # The common answer: one text choice, from a template encoded once.
        counts = usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]
        text = "".join(reply.outputs[0].tokens)
        encoded = _TEXT_ANSWER.render(completion_id, created, model, text, finish, *counts)
        return render.respond(
            request, behaviour, completion_id, usage, finish_reasons, body=encoded, answered=model
        )
    if whole is None:
        choices = _choices(reply, legacy, finish, sampling.n, spoken_format if speaks else None, created)
        whole = _completion(completion_id, created, model, choices, usage, tier)
    result = request.dialect.completion(whole, request)
    return render.respond(
        request, behaviour, completion_id, usage, finish_reasons, body=result, answered=model
    )


def _from_another_agent(messages: List[Dict[str, Any]]) -> bool:
    """Whether the last message is a user message named otherwise than the first one (the task):
    how autogen's teams pass one agent's answer to the next."""
    last = messages[-1]
    if last["role"] != "user" or not isinstance(last.get("name"), str):
        return False
    first = next(message for message in messages if message["role"] == "user")
    return first is not last and last["name"] != first.get("name")


def _answered_call(messages: List[Dict[str, Any]]) -> str:
    """The name of the function whose call the last message (a tool's) answers ("" if none is
    found): a handoff's or a hand-back's result is no answer to echo."""
    call_id = messages[-1].get("tool_call_id")
    for message in reversed(messages):
        for call in message.get("tool_calls") or () if message["role"] == "assistant" else ():
            if isinstance(call, dict) and call.get("id") == call_id:
                return str((call.get("function") or {}).get("name"))
    return ""


def read_reply_options(
    body: Mapping[str, Any], messages: List[Dict[str, Any]], after_result: bool, after_handoff: bool = False
) -> Tuple[List[tools.Function], Optional[tools.OutputFormat], Optional[int], bool]:
    """The functions to call, the output format, the logprobs asked for, and whether the calls
    take the legacy ``function_call`` form; a 400 naming the field that is wrong."""
    if body.keys().isdisjoint(OUTPUT_OPTIONS):
        return [], None, None, False  # nothing asked but text: the echo
    wants_logprobs = validate.boolean(body.get("logprobs"), "logprobs")
    top_logprobs = validate.integer(body.get("top_logprobs"), "top_logprobs", 0, 20)
    if top_logprobs is not None and not wants_logprobs:
        raise errors.invalid_request(
            "The 'top_logprobs' parameter is only allowed when 'logprobs' is enabled.",
            "top_logprobs",
        )
    output_format = tools.read_output_format(body.get("response_format"), "response_format", nested=True)
    functions, count = tools.read_functions(body)
    validate.boolean(body.get("parallel_tool_calls"), "parallel_tool_calls")
    called = _called(messages)
    given = tools.Choice(functions, count, after_result, called, after_handoff)
    chosen = tools.choose(body.get("tool_choice"), given, body.get("parallel_tool_calls"), "tool_choice")
    if body.get("parallel_tool_calls") is not None and not count:
        raise errors.invalid_request(
            "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when 'tools' "
            "are specified.",
            "parallel_tool_calls",
        )
    legacy = False
    if not chosen and ("functions" in body or body.get("function_call") is not None):
        legacy_functions = tools.read_legacy_functions(body)
        given = tools.Choice(legacy_functions, len(legacy_functions), after_result, called)
        chosen = tools.choose(body.get("function_call"), given, None, "function_call")
        legacy = True
    return chosen, output_format, (top_logprobs or 0) if wants_logprobs else None, legacy


def _called(messages: List[Dict[str, Any]]) -> List[str]:
    """The functions the assistant has called in the conversation, in order: in its calls, or
    written out in its text."""
    names: List[str] = []
    for message in messages:
        if message["role"] != "assistant":
            continue
        content = message.get("content")
        if content:
            names.extend(tools.named_in_text(message_text(content)))
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("name"), str):
                names.append(function["name"])
        legacy = message.get("function_call")
        if isinstance(legacy, dict) and isinstance(legacy.get("name"), str):
            names.append(legacy["name"])
    return names


def _completion(
    completion_id: str,
    created: int,
    model: str,
    choices: List[Dict[str, Any]],
    usage: Dict[str, Any],
    tier: str = render.SERVICE_TIER,
) -> Dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage,
        "service_tier": tier,
        "system_fingerprint": render.SYSTEM_FINGERPRINT,
    }


def _choices(
    reply: Reply, legacy: bool, finish: str, n: int, spoken: Optional[str] = None, created: int = 0
) -> List[Dict[str, Any]]:
    """The ``n`` choices of a whole answer, alike (but for their calls' and their audio's ids);
    ``spoken``: the format their text is said in, as audio with the text its transcript."""
    message = _message(reply, legacy)
    choice_logprobs = _logprobs(reply.outputs[0].tokens, reply.top_logprobs)
    if spoken is not None:  # made once: the choices differ in their audio's id only
        transcript = "".join(reply.outputs[0].tokens)
        said = audio.spoken("", transcript, reply.completion_tokens(), spoken, created, n)
    choices = []
    for index in range(n):
        if reply.calls and index:
            message = _message(reply, legacy, _calls_of(reply, index))
        if spoken is not None:
            message = dict(message, content=None, audio=dict(said, id=random_id("audio_")))
        choices.append(_choice(index, message, choice_logprobs, finish))
    return choices


def _calls_of(reply: Reply, index: int) -> List[tools.Call]:
    """Choice ``index``'s calls: the first choice's, with ids of their own, as each choice's calls
    have in the real API (a client keys results on them)."""
    if index == 0:
        return reply.calls
    return [call._replace(id=random_id("call_", 24)) for call in reply.calls]


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
        {**render.usage(0, 0), "prompt_tokens": _SLOT, "completion_tokens": _SLOT, "total_tokens": _SLOT},
    )
)


def _message(reply: Reply, legacy: bool, calls: Optional[List[tools.Call]] = None) -> Dict[str, Any]:
    calls = reply.calls if calls is None else calls
    if not calls:
        return _text_message("".join(reply.outputs[0].tokens))
    message = _text_message(None)
    if legacy:
        call = calls[0]
        message["function_call"] = {"name": call.name, "arguments": call.arguments}
    else:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls
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
    model: str,
    reply: Reply,
    legacy: bool,
    finish: str,
    n: int,
    usage: Optional[Dict[str, Any]],
    tier: str,
    obfuscation: Optional[str],
    speaks: bool = False,
) -> Iterator[Event]:
    """Per choice: a role chunk, one chunk per token (or per call and argument fragment), a finish
    chunk; then usage and [DONE]. Spoken, the tokens are the transcript's, the audio follows them.
    Every chunk ends with ``obfuscation`` (unless ``stream_options.include_obfuscation`` is false),
    as the real API's: here one random string per stream, since a mock's chunk sizes reveal
    nothing."""
    base = render.chunk_base(
        "chat.completion.chunk",
        completion_id,
        created,
        model,
        usage is not None,
        service_tier=tier,
    )
    if obfuscation is not None:
        base["obfuscation"] = obfuscation

    def chunk(
        index: int, delta: Any, finish_reason: Optional[str] = None, logprobs: Any = None
    ) -> Dict[str, Any]:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}
        return {**base, "choices": [choice]}

    choices = range(n)
    if reply.calls:
        for index in choices:
            yield from _call_chunks(chunk, index, _calls_of(reply, index), legacy)
    elif speaks:
        for index in choices:
            yield from _spoken_chunks(chunk, index, reply, created, n)
    else:
        # With logprobs asked for, the role chunk carries empty ones, as the real API's does.
        opening: Optional[Dict[str, Any]] = (
            None if reply.top_logprobs is None else {"content": [], "refusal": None}
        )
        for index in choices:
            yield stream.event(
                chunk(index, {"role": "assistant", "content": "", "refusal": None}, None, opening)
            )
        renderers: Sequence[render.TokenEvents]
        if reply.top_logprobs is None:
            renderers = [
                stream.EventTemplate(chunk(i, {"content": stream.EventTemplate.SLOT})) for i in choices
            ]
        else:
            renderers = [_LogprobChunks(chunk, i, reply.top_logprobs) for i in choices]
        yield from render.interleave(renderers, [reply.outputs[0].tokens] * n)
    for index in choices:
        yield stream.event(chunk(index, {}, finish))
    yield from render.stream_end(base, usage)


def _spoken_chunks(
    chunk: Callable[..., Dict[str, Any]], index: int, reply: Reply, created: int, n: int
) -> Iterator[Event]:
    """A spoken choice as the real API streams it: the audio's id, its transcript token by token,
    its PCM in pieces, then when it expires."""
    head = {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "audio": {"id": random_id("audio_"), "transcript": ""},
    }
    yield stream.event(chunk(index, head))
    said = stream.EventTemplate(chunk(index, {"audio": {"transcript": stream.EventTemplate.SLOT}}))
    for token in reply.outputs[0].tokens:
        yield Token(said.render(token))
    for data in audio.pcm_chunks(reply.completion_tokens(), n):
        yield stream.event(chunk(index, {"audio": {"data": data}}))
    yield stream.event(chunk(index, {"audio": {"expires_at": created + audio.EXPIRES_S}}))


def _call_chunks(
    chunk: Callable[..., Dict[str, Any]], index: int, calls: List[tools.Call], legacy: bool
) -> Iterator[Event]:
    """A call's header (id, type, name, empty arguments), then its arguments in fragments."""
    for position, call in enumerate(calls):
        if legacy:
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
            if legacy:
                delta: Dict[str, Any] = {"function_call": {"arguments": fragment}}
            else:
                delta = {"tool_calls": [{"index": position, "function": {"arguments": fragment}}]}
            yield Token(stream.event(chunk(index, delta)))


# What a reasoning model refuses unless left at its default (any value in the tuple); taken with
# ``reasoning_effort: none``, as the newer models take them.
Refused = Tuple[Tuple[str, Tuple[Any, ...]], ...]
_TOP_P = ("top_p", (None, 1))
_STOP: Tuple[str, Tuple[Any, ...]] = ("stop", (None, []))
_NOT_FOR_REASONING: Refused = (
    _TOP_P,
    ("presence_penalty", (None, 0)),
    ("frequency_penalty", (None, 0)),
    ("logprobs", (None, False)),
    ("top_logprobs", (None,)),
    ("logit_bias", (None, {})),
)
# The reasoning models that refuse ``stop``: o3 and o4 but o3-mini, and gpt-5 (smolagents and
# crewAI leave it out for exactly these); o1 and o3-mini take it.
_REFUSE_STOP = re.compile(r"(o3(?!-mini)|o4|gpt-5)([-.]|$)")
# Chat takes function tools from gpt-5.2 on only at effort none (the Responses API at any): refused
# when an effort is asked for, and from gpt-5.6 on by default too, as those reason unless told not to.
_TOOLS_AT_NO_EFFORT = re.compile(r"gpt-(5\.([2-9]|\d\d)|6)")


def _check_reasoning(body: Mapping[str, Any], model: str) -> None:
    """``max_tokens`` (``max_completion_tokens`` counts the reasoning too), a temperature other than
    1, and the sampling parameters of ``_NOT_FOR_REASONING`` are 400s, in the real API's words."""
    if body.get("max_tokens") is not None and not model.endswith("-chat-latest"):
        raise errors.invalid_request(
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
            "max_tokens",
            "unsupported_parameter",
        )
    effort = body.get("reasoning_effort")
    check_effort_for(model, effort, "reasoning_effort")
    if body.get("tools") and _TOOLS_AT_NO_EFFORT.match(model) and not model.endswith("-chat-latest"):
        asked = effort or (default_effort(model) if GPT_5_6_AND_LATER.match(model) else "none")
        if asked != "none":
            # The tools are checked first: a malformed one is its own 400, as the real API answers.
            functions, count = tools.read_functions(body)
            tools.choose(
                body.get("tool_choice"), tools.Choice(functions, count, False, ()), None, "tool_choice"
            )
            raise errors.invalid_request(
                f"Function tools with reasoning_effort are not supported for {model} in /v1/chat/completions. "
                "To use function tools, use /v1/responses or set reasoning_effort to 'none'.",
                "reasoning_effort",
            )
    if (effort or default_effort(model)) == "none":
        return
    refused: Refused = (_TOP_P,)  # the chat model (-chat-latest), not a reasoning one: top_p, as before
    if not model.endswith("-chat-latest"):
        refused = _NOT_FOR_REASONING + ((_STOP,) if _REFUSE_STOP.match(model) else ())
    for name, default in refused:
        if body.get(name) not in default:
            raise errors.invalid_request(
                f"Unsupported parameter: '{name}' is not supported with this model.",
                name,
                "unsupported_parameter",
            )
    temperature = body.get("temperature")
    if temperature is not None and temperature != 1:
        raise errors.invalid_request(
            f"Unsupported value: 'temperature' does not support {temperature} with this model. "
            "Only the default (1) value is supported.",
            "temperature",
            "unsupported_value",
        )


def read_messages(body: Mapping[str, Any]) -> List[Dict[str, Any]]:
    messages = validate.array(validate.required(body, "messages"), "messages", 1, expected=OBJECTS) or []
    for index, message in enumerate(messages):
        _check_message(message, f"messages[{index}]")
    return messages


def _check_tool_turns(messages: List[Dict[str, Any]]) -> None:
    """As the real API insists, in its words: tool messages come right after an assistant message
    with ``tool_calls``, answer one of its calls each, and answer all of them before any other
    message comes or the conversation ends. Linear in the messages and calls, however many a
    request holds."""
    order: List[str] = []  # the call ids of the assistant message before
    calls: Optional[Counter[str]] = None  # the same, counted
    answers: Counter[str] = Counter()  # the tool messages since, by the id they answer
    for index, message in enumerate(messages):
        role = message["role"]
        if role == "tool":
            call_id = message["tool_call_id"]
            if calls is not None and not calls[call_id]:
                raise errors.invalid_request(
                    f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in 'tool_calls' of previous message.",
                    f"messages.[{index}].tool_call_id",
                )
            if calls is None or answers[call_id] >= calls[call_id]:  # none before, or answered
                raise errors.invalid_request(
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                    "with 'tool_calls'.",
                    f"messages.[{index}].role",
                )
            answers[call_id] += 1
            continue
        _check_answered(order, answers, f"messages.[{index}].role")
        tool_calls = message.get("tool_calls") if role == "assistant" else None
        order = [
            call["id"]
            for call in tool_calls or ()
            if isinstance(call, dict) and isinstance(call.get("id"), str)
        ]
        calls = Counter(order) if tool_calls else None
        answers = Counter()
    _check_answered(order, answers, "messages")


def _check_answered(calls: List[str], answers: Counter[str], param: str) -> None:
    """Every call answered (an answer never outnumbers its calls); the calls left are named in order."""
    if sum(answers.values()) >= len(calls):
        return
    left = []
    for call in calls:
        if answers[call]:
            answers[call] -= 1
        else:
            left.append(call)
    raise errors.invalid_request(
        "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
        f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(left)}",
        param,
    )


def _check_message(message: Any, param: str) -> None:
    if not isinstance(message, dict):
        raise validate.wrong_type(param, "an object", message)
    role = validate.required_string(message, "role", f"{param}.role")
    if role not in ROLES:
        raise validate.invalid_value(f"{param}.role", role, ROLES)
    validate.string(message.get("name"), f"{param}.name")
    content = message.get("content")
    if role == "function":
        validate.required_string(message, "name", f"{param}.name")
        validate.string(content, f"{param}.content")
        return
    if content is not None:
        _check_content(content, f"{param}.content", PART_TYPES[role])
    elif role == "developer":  # the one role whose schema requires content; the others, see check_turns
        if "content" not in message:
            raise validate.missing(f"{param}.content")
        raise validate.wrong_type(f"{param}.content", CONTENT_TYPES, content)
    if role == "assistant":
        calls = validate.array(
            message.get("tool_calls"), f"{param}.tool_calls", 1, expected=OBJECTS
        )  # not []
        for index, call in enumerate(calls or ()):
            _check_call(call, f"{param}.tool_calls[{index}]")
        validate.obj(message.get("function_call"), f"{param}.function_call")
        validate.obj(message.get("audio"), f"{param}.audio")
    elif role == "tool":
        validate.required_string(message, "tool_call_id", f"{param}.tool_call_id")


def _check_call(call: Any, param: str) -> None:
    """A call an assistant message hands back: a function's (name and arguments) or a custom tool's
    (name and input), each field a string."""
    if not isinstance(call, dict):
        raise validate.wrong_type(param, "an object", call)
    validate.required_string(call, "id", f"{param}.id")
    kind = validate.required_string(call, "type", f"{param}.type")
    if kind not in CALL_FIELDS:
        raise validate.invalid_value(f"{param}.type", kind, tuple(CALL_FIELDS))
    inner = validate.required(call, kind, f"{param}.{kind}")
    if not isinstance(inner, dict):
        raise validate.wrong_type(f"{param}.{kind}", "an object", inner)
    for field in CALL_FIELDS[kind]:
        validate.required_string(inner, field, f"{param}.{kind}.{field}")


def check_turns(messages: List[Dict[str, Any]]) -> None:
    """What the messages say together, checked as the real API does after each message's fields and
    the model's own limits: every message has content, then the tool turns."""
    _check_contents(messages)
    _check_tool_turns(messages)


def _check_contents(messages: List[Dict[str, Any]]) -> None:
    """A message without content, in other words than a missing field. An assistant message may carry
    a call or audio instead."""
    for index, message in enumerate(messages):
        if message.get("content") is None and message["role"] != "function":
            if message["role"] == "assistant" and any(message.get(field) for field in CONTENT_INSTEAD):
                continue
            raise errors.invalid_request(
                "Invalid value for 'content': expected a string, got null.", f"messages.[{index}].content"
            )


def _check_content(content: Any, param: str, allowed: tuple) -> None:
    if isinstance(content, str):
        return
    for index, part in enumerate(validate.array(content, param, 1, expected=CONTENT_TYPES) or ()):
        part_param = f"{param}[{index}]"
        if not isinstance(part, dict):
            raise validate.wrong_type(part_param, "an object", part)
        kind = validate.required_string(part, "type", f"{part_param}.type")
        if kind not in allowed:
            raise validate.invalid_value(f"{part_param}.type", kind, allowed)
        field, field_type, expected = _PART_FIELDS[kind]
        value = validate.required(part, field, f"{part_param}.{field}")
        if not isinstance(value, field_type):
            raise validate.wrong_type(f"{part_param}.{field}", expected, value)
        if kind in _PART_INNER:
            validate.fields(value, f"{part_param}.{field}", *_PART_INNER[kind])
