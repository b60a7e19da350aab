"""The Responses API: ``POST /v1/responses``; ``GET``, ``DELETE``, ``POST .../cancel`` and
``GET .../input_items`` of a stored response; ``POST /v1/responses/input_tokens`` (the
``usage.input_tokens`` a request would get) and ``POST /v1/responses/compact`` (a conversation
compacted: its user messages, then one opaque ``compaction`` item in place of the rest).

The reply follows the chat rules: it echoes the last user message of the whole conversation (or,
after a ``function_call_output``, that output, so agent loops end), calls a function when function
tools are sent (see ``tools``), or answers JSON for ``text.format`` json_schema / json_object.
Streams send the real typed events (``response_events``).

A response continues a stored one (``previous_response_id``: its input items and output come
first) or a conversation (``conversation``: its items come first, and the new input and output are
appended to it). Responses created with ``store`` (the default) are kept in the server's state file
(``mokku.control.objects``), so every worker retrieves them. A ``background`` response answers
``queued`` at once, and is then ``queued`` for the time to first token, ``in_progress`` while its
tokens would be produced, then ``completed``: worked out from the clock when it is read, so no
worker runs a job and every worker answers the same.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import parse_qs

from mokku import errors
from mokku.api import items, render, tools, validate
from mokku.api.decide import (
    HANDED_OFF,
    INSTRUCTING,
    Generation,
    Message,
    Replies,
    conversation_tokens,
    echo_text,
    ends_with_result,
    newest_fitting,
)
from mokku.api.ids import random_id
from mokku.api.models import snapshot
from mokku.api.response_events import Numbered, events, part_logprobs, text_part, unfinished
from mokku.api.sampling import (
    CACHE_OPTIONS,
    CACHE_RETENTIONS,
    GPT_5_6_AND_LATER,
    PASSED_OPTIONS,
    REASONING_MODELS,
    SAMPLING_RANGES,
    SERVICE_TIERS,
    Output,
    Sampling,
    check_effort,
    check_effort_for,
    check_ranges,
    check_verbosity_for,
    default_effort,
)
from mokku.api.tokens import count, definition_tokens
from mokku.control import objects, statedb
from mokku.server.http import Request, Response, dumps, encoded_json_response, json_response
from mokku.server.stream import Event, Last, Token
from mokku.simulation import limits
from mokku.simulation.faults import Behaviour
from mokku.simulation.latency import Pace, Schedule

log = logging.getLogger("mokku")

# Top-level parameters of CreateResponse; others are refused only with MOKKU_STRICT.
KNOWN_PARAMS = validate.known_params(
    "background context_management conversation frequency_penalty include input instructions max_output_tokens "
    "max_tool_calls messages metadata model moderation parallel_tool_calls presence_penalty previous_response_id "
    "prompt prompt_cache_key prompt_cache_options prompt_cache_retention reasoning safety_identifier service_tier "
    "store stream stream_options temperature text tool_choice tools top_logprobs top_p truncation user",
    reasoning="mode effort summary context",
    text="format verbosity",
    stream_options="include_obfuscation",
    prompt_cache_options=" ".join(CACHE_OPTIONS),
)
INCLUDE_TYPES = "an array of one of " + validate.either(
    [validate.abbreviated(name) for name in items.INCLUDABLE]
)
LOGPROBS = "message.output_text.logprobs"
MOVED_TO_INPUT = (
    "Unsupported parameter: 'messages'. In the Responses API, this parameter has moved to 'input'. Try again "
    "with the new parameter. See the API documentation for more information: "
    "https://platform.openai.com/docs/api-reference/responses/create."
)
COMPACT_PARAMS = validate.known_params(
    "model input previous_response_id instructions prompt_cache_key prompt_cache_retention prompt_cache_options "
    "service_tier",
    prompt_cache_options=" ".join(CACHE_OPTIONS),
)


def not_found(response_id: str) -> errors.APIError:
    return errors.APIError(404, f"Response with id '{response_id}' not found.", "invalid_request_error")


def previous_not_found(response_id: str) -> errors.APIError:
    return errors.invalid_request(
        f"Previous response with id '{response_id}' not found.",
        "previous_response_id",
        "previous_response_not_found",
    )


def conversation_not_found(conversation_id: str) -> errors.APIError:
    return errors.APIError(
        404, f"Conversation with id '{conversation_id}' not found.", "invalid_request_error"
    )


class Responses:
    """The endpoint family, over the server's stored objects."""

    def __init__(
        self, replies: Replies, stored: objects.Objects, clock: Callable[[], float] = time.time
    ) -> None:
        self.replies = replies
        self.stored = stored
        self.clock = clock  # wall-clock seconds: a background response's times are shared by workers

    # Reading back

    def retrieve(self, request: Request, response_id: str) -> Response:
        """The stored response as it stands now; ``?stream=true`` replays a background response's
        events after ``starting_after``."""
        query = {
            name: values[-1] for name, values in parse_qs(request.environ.get("QUERY_STRING", "")).items()
        }
        items.check_included(request)
        stream = _flag(query.get("stream"), "stream")
        obfuscated = query.get("include_obfuscation") is None or _flag(
            query["include_obfuscation"], "include_obfuscation"
        )
        stored = self._find(response_id)
        if stream:
            return self._replay(request, response_id, stored, query.get("starting_after"), obfuscated)
        return encoded_json_response(_current(stored, self.clock())[0])

    def delete(self, request: Request, response_id: str) -> Response:
        with statedb.answered(self.stored.name):
            deleted = self.stored.delete_response(response_id)
        if not deleted:
            raise not_found(response_id)
        return json_response({"id": response_id, "object": "response", "deleted": True})

    def cancel(self, request: Request, response_id: str) -> Response:
        """A queued or running background response becomes ``cancelled``, its output taken back out of
        its conversation; a finished one is answered as it is; one not made in the background cannot
        be cancelled."""
        stored = self._find(response_id)
        if stored.job is None:
            raise errors.invalid_request("Cannot cancel a synchronous response.", None)
        body, status = _current(stored, self.clock())
        if status not in ("queued", "in_progress"):
            return encoded_json_response(body)
        final = json.loads(stored.body)
        cancelled = dumps(unfinished(final, "cancelled"))
        job = json.dumps(dict(json.loads(stored.job), cancelled=True))
        conversation: str = (final.get("conversation") or {}).get("id") or ""
        with statedb.answered(self.stored.name):
            if not self.stored.replace_response(response_id, cancelled, job):
                raise not_found(response_id)
            for item in final["output"] if conversation else ():
                self.stored.delete_item(conversation, item["id"])
        return encoded_json_response(cancelled)

    def input_items(self, request: Request, response_id: str) -> Response:
        """The items the response saw (the earlier turns' included), in pages."""
        query = items.ListQuery(request)
        items.check_included(request)
        stored = self._find(response_id)
        page, has_more = query.page(json.loads(stored.items))
        return json_response(items.list_body(page, has_more))

    def _find(self, response_id: str) -> objects.StoredResponse:
        with statedb.answered(self.stored.name):
            stored = self.stored.response(response_id)
        if stored is None:
            raise not_found(response_id)
        return stored

    def _cancelled(self, response_id: str) -> bool:
        with statedb.answered(self.stored.name):
            stored = self.stored.response(response_id)
        return stored is not None and bool(json.loads(stored.job or "{}").get("cancelled"))

    def _replay(
        self,
        request: Request,
        response_id: str,
        stored: objects.StoredResponse,
        after: Optional[str],
        obfuscated: bool,
    ) -> Response:
        """A background response's events after ``after`` (a sequence number), paced as what is left
        of its job."""
        if stored.job is None:
            raise errors.invalid_request(
                "This response cannot be streamed: only a response created with background=true can be.",
                "stream",
            )
        starting_after = -1
        if after is not None:
            try:
                starting_after = int(after)
            except ValueError:
                raise validate.wrong_type("starting_after", "an integer", after) from None
        final, job = json.loads(stored.body), json.loads(stored.job)
        if job.get("cancelled"):
            final = dict(final, status="cancelled")
        now = self.clock()
        over = now >= job["ends"] or job.get("failed")
        pace = Pace() if over else Schedule(job["starts"], job["delay"], self.clock)
        emit = Numbered()
        every = _counted(
            pace,
            events(
                emit,
                final,
                job["tokens"],
                job.get("top"),
                bool(job.get("cancelled")),
                render.obfuscation(obfuscated),
            ),
        )
        paced = isinstance(pace, Schedule) and not job.get("cancelled")
        failed = job.get("failed")
        if failed:
            how = errors.APIError(
                failed["status"], failed["message"], failed["type"], failed["param"], failed["code"]
            )
            every = emit.until_failure(every, failed["number"], how)
            final = failed["response"]
        usage = final.get("usage") or {}
        chat_usage = {
            "prompt_tokens": usage.get("input_tokens", 0),
            "completion_tokens": usage.get("output_tokens", 0),
        }
        return render.respond(
            request,
            Behaviour(final["model"], None, pace),
            response_id,
            chat_usage,
            [final["status"]],
            events=emit.after(starting_after, every),
            render_error=emit.error,
            # Its headers at once, though its next event may be a wait away.
            live=paced,
            cancelled=functools.partial(self._cancelled, response_id) if paced else None,
        )

    # Creating

    def create(self, request: Request) -> Response:
        body, behaviour = self.replies.begin(request, "chat", KNOWN_PARAMS)
        if "messages" in body:
            raise errors.invalid_request(MOVED_TO_INPUT, None, "unsupported_parameter")
        model = behaviour.model
        new_items = _new_items(body)
        instructions = validate.string(body.get("instructions"), "instructions")
        max_output = validate.integer(body.get("max_output_tokens"), "max_output_tokens", 16)
        check_ranges(body)
        top_logprobs = validate.integer(body.get("top_logprobs"), "top_logprobs", 0, 20)
        items.metadata(body)
        reasoning = _reasoning(body, model)
        _check_reasoning_sampling(body, reasoning["effort"], model)
        validate.options(body, OPTIONS)
        stream = bool(validate.boolean(body.get("stream"), "stream"))
        options = body.get("stream_options") or {}
        obfuscated = (
            validate.boolean(options.get("include_obfuscation"), "stream_options.include_obfuscation")
            is not False
        )
        store = validate.boolean(body.get("store"), "store") is not False
        background = bool(validate.boolean(body.get("background"), "background"))
        if background and not store:
            raise errors.invalid_request(
                "Background responses must be stored: leave 'store' out or set it to true.", "store"
            )
        validate.boolean(body.get("parallel_tool_calls"), "parallel_tool_calls")
        validate.integer(body.get("max_tool_calls"), "max_tool_calls", 1)
        include = _include(body)
        if reasoning["effort"] not in (None, "none"):
            _check_no_logprobs(include, top_logprobs)
        text_format, output_format = read_text_format(body)
        answered = snapshot(request.dialect.answer_model(model))  # the model the response names
        tools.check_structured_outputs(answered, output_format, "text.format")
        check_verbosity_for(model, _verbosity(body), "text.verbosity")
        functions, tool_count = tools.read_functions(body, flat=True)
        previous = validate.identifier(body.get("previous_response_id"), "previous_response_id")
        conversation = _conversation(body)
        context, seen = self._context(previous, conversation, new_items)
        messages = items.messages(context)
        handed_off = bool(messages) and messages[-1].role == HANDED_OFF
        given = tools.Choice(
            functions, tool_count, ends_with_result(messages), items.called(context), handed_off
        )
        # A stored prompt brings tools of its own, unseen here: what it forces is not checked.
        choice = _chat_choice(body.get("tool_choice"), None if body.get("prompt") else body.get("tools"))
        chosen = tools.choose(choice, given, body.get("parallel_tool_calls"), "tool_choice", none_alone=True)
        framing = [Message("developer", instructions)] if instructions else []
        definitions = definition_tokens(body.get("tools"))
        messages = _truncated(request, model, body, framing, messages, (max_output or 0) + definitions)
        instructing = [m.text for m in framing + messages if m.role in INSTRUCTING]
        if output_format is not None:
            tools.check_json_named(output_format, messages, JSON_NOT_NAMED, "text.format")
            output_format = tools.instructed(output_format, instructing)
        elif not chosen and instructing:  # a JSON Schema the instructions ask JSON of
            output_format = tools.prompted(instructing, "instructions")
        logprobs_top = (top_logprobs or 0) if LOGPROBS in include else None
        generation = Generation(
            "responses",
            [echo_text(messages, framing, body.get("tools"))],
            [conversation_tokens(framing + messages) + definitions],
            Sampling(max_tokens=max_output, stream=stream),
            chosen,
            output_format,
            top_logprobs=logprobs_top,
            input_param="input",
            conversation=framing + messages,
        )
        response_id = random_id("resp_", 48)
        now = self.clock()
        shell = _response_shell(
            response_id,
            answered,
            body,
            instructions,
            max_output,
            text_format,
            store,
            int(now),
        )
        shell["background"] = background
        shell["reasoning"] = reasoning
        if conversation is not None:
            shell["conversation"] = {"id": conversation}
        try:
            reply = self.replies.decide(request, behaviour, generation)
        except errors.APIError as error:
            if not stream or error.code != "context_length_exceeded":
                raise
            return _refused_in_stream(request, behaviour, shell, error)
        output, calls = reply.outputs[0], reply.calls
        decided = output.finish_reason == "content_filter" or bool(calls)  # no custom call then
        incomplete = output.finish_reason in ("length", "content_filter")
        input_tokens, output_tokens = generation.prompt_tokens[0], reply.completion_tokens()
        usage = _usage(input_tokens, output_tokens, request.cached_tokens)
        # The answer's last token comes after the first token's wait and a delay per token since.
        starts = now + behaviour.pace.ttft
        ends = starts + max(0, len(output.tokens) - 1) * behaviour.pace.token_delay
        final = dict(
            shell,
            status="incomplete" if incomplete else "completed",
            completed_at=None if incomplete else int(ends),
            incomplete_details={
                "reason": "max_output_tokens" if output.finish_reason == "length" else "content_filter"
            }
            if incomplete
            else None,
            output=_reasoning_items(model, reasoning)
            + _output_items(output, calls, incomplete, logprobs_top, _custom_called(body, given, decided)),
            usage=usage,
        )
        if conversation is not None:
            self._append(conversation, new_items + final["output"])
        encoded = dumps(final)
        job = None
        if background:
            job = {
                "starts": starts,
                "ends": ends,
                "delay": behaviour.pace.token_delay,
                "tokens": output.tokens,
                "top": logprobs_top,
            }
        if store:
            self._keep(response_id, encoded, seen, job)
        finish_reasons = ["tool_calls" if calls and not incomplete else output.finish_reason]
        chat_usage = {"prompt_tokens": input_tokens, "completion_tokens": output_tokens}
        if stream:
            emit = Numbered()
            if store:
                emit.on_failure = functools.partial(self._failed, response_id, encoded, job)
            return render.respond(
                request,
                behaviour,
                response_id,
                chat_usage,
                finish_reasons,
                events=events(
                    emit, final, output.tokens, logprobs_top, obfuscation=render.obfuscation(obfuscated)
                ),
                render_error=emit.error,
                answered=answered,
                cancelled=functools.partial(self._cancelled, response_id) if background else None,
            )
        if background:  # answered at once; the response moves on as it is read back
            queued = dumps(unfinished(final, "queued"))
            return render.respond(
                request,
                behaviour,
                response_id,
                chat_usage,
                finish_reasons,
                body=queued,
                wait=False,
                answered=answered,
            )
        return render.respond(
            request, behaviour, response_id, chat_usage, finish_reasons, body=encoded, answered=answered
        )

    def input_tokens(self, request: Request) -> Response:
        """``{"object": "response.input_tokens", "input_tokens": N}``: the ``usage.input_tokens``
        the same request would be answered with."""
        body = request.json()
        model = validate.string(body.get("model"), "model")
        tools.read_functions(body, flat=True)
        read_text_format(body)
        OPTIONS["truncation"](body.get("truncation"), "truncation")
        _, framing, messages = self._conversation_of(body, _conversation(body))
        definitions = definition_tokens(body.get("tools"))
        if model:
            messages = _truncated(request, model, body, framing, messages, definitions)
        tokens = conversation_tokens(framing + messages) + definitions
        return json_response({"object": "response.input_tokens", "input_tokens": tokens})

    def compact(self, request: Request) -> Response:
        """The conversation compacted as the API compacts it: its user messages kept, the rest
        (answers, calls, reasoning) in one ``compaction`` item whose ``encrypted_content`` only
        the server reads. Nothing is stored."""
        body, _ = self.replies.begin(request, "chat", COMPACT_PARAMS)
        context, framing, messages = self._conversation_of(body, None)
        kept = [item for item in context if item.get("type") == "message" and item.get("role") == "user"]
        summary = random_id("", 128)
        input_tokens, output_tokens = conversation_tokens(framing + messages), count(summary)
        compacted = {"type": "compaction", "id": random_id("cmp_", 48), "encrypted_content": summary}
        return json_response(
            {
                "id": random_id("resp_", 48),
                "object": "response.compaction",
                "output": [*kept, compacted],
                "created_at": int(self.clock()),
                "usage": _usage(input_tokens, output_tokens, 0),
            }
        )

    def _conversation_of(
        self, body: Mapping[str, Any], conversation: Optional[str]
    ) -> Tuple[List[items.Item], List[Message], List[Message]]:
        """A counted or compacted request's items (those it continues, then its ``input``, which
        may be left out when it continues some), its instructions, and the items' messages."""
        previous = validate.identifier(body.get("previous_response_id"), "previous_response_id")
        raw = body.get("input") if previous or conversation else validate.required(body, "input")
        context, _ = self._context(
            previous, conversation, items.read(raw, "input") if raw is not None else []
        )
        instructions = validate.string(body.get("instructions"), "instructions")
        framing = [Message("developer", instructions)] if instructions else []
        return context, framing, items.messages(context)

    def _context(
        self, previous: Optional[str], conversation: Optional[str], new_items: List[items.Item]
    ) -> Tuple[List[items.Item], bytes]:
        """The items a reply is decided from (those the request continues, then its new ones),
        checked as the API checks them, and their listing, bounded as one conversation is."""
        context = self._earlier(previous, conversation) + new_items
        items.check_calls(context)
        seen = dumps(items.listed(context))  # what input_items lists
        if len(seen) > self.stored.bounds.one_conversation_bytes:
            raise items.too_large(
                f"the conversation would hold more than {self.stored.bounds.one_conversation_bytes} bytes",
                "previous_response_id" if previous else "conversation" if conversation else "input",
            )
        return context, seen

    def _earlier(self, previous: Optional[str], conversation: Optional[str]) -> List[items.Item]:
        """The items a new response continues: a stored response's (its input items, then its
        output), or a conversation's."""
        if previous is not None and conversation is not None:
            raise errors.invalid_request(
                "Mutually exclusive parameters: ''. Ensure you are only providing one of: "
                f"'{validate.abbreviated('previous_response_id')}' or 'conversation'.",
                None,
                "mutually_exclusive_parameters",
            )
        if previous is not None:
            with statedb.answered(self.stored.name):
                stored = self.stored.response(previous)
            if stored is None:
                raise previous_not_found(previous)
            return json.loads(stored.items) + json.loads(stored.body)["output"]
        if conversation is not None:
            with statedb.answered(self.stored.name):
                # A "/" marks what is kept as a conversation but is none (``stored_chats``).
                found = None if "/" in conversation else self.stored.items(conversation)
            if found is None:
                raise conversation_not_found(conversation)
            return items.decoded(found)
        return []

    def _append(self, conversation: str, added: List[items.Item]) -> None:
        with items.writing(self.stored, "conversation", "input"):
            appended = self.stored.add_items(conversation, items.encoded(added))
        if not appended:  # deleted since it was read
            raise conversation_not_found(conversation)

    def _failed(
        self,
        response_id: str,
        encoded: bytes,
        job: Optional[Dict[str, Any]],
        error: errors.APIError,
        failed: Dict[str, Any],
        number: int,
    ) -> None:
        """A stored response whose stream failed is kept as failed, as the real API keeps it; a
        background one keeps its job too, with where and how it failed, to be streamed again."""
        try:
            if job is None:
                self.stored.replace_response(response_id, dumps(failed), None)
            else:
                how = {
                    "status": error.status,
                    "message": error.message,
                    "type": error.type,
                    "param": error.param,
                    "code": error.code,
                    "number": number,
                    "response": failed,
                }
                self.stored.replace_response(response_id, encoded, json.dumps(dict(job, failed=how)))
        except statedb.STATE_ERRORS as exc:
            log.warning(
                "response %s could not be stored as failed in %s: %s", response_id, self.stored.name, exc
            )

    def _keep(self, response_id: str, encoded: bytes, seen: bytes, job: Optional[Dict[str, Any]]) -> None:
        """Store the response. A plain one that cannot be stored is still answered (a warning says
        why; retrieving it answers 404); a background one, which is only ever read back, is not."""
        try:
            self.stored.keep_response(response_id, encoded, seen, json.dumps(job) if job else None)
        except objects.TooLarge:
            if job is not None:
                raise items.too_large("the response is larger than the store holds", "background") from None
        except statedb.STATE_ERRORS as exc:
            if job is not None:
                raise statedb.unavailable(self.stored.name, exc) from None
            log.warning("response %s could not be stored in %s: %s", response_id, self.stored.name, exc)


def _refused_in_stream(
    request: Request, behaviour: Behaviour, shell: Dict[str, Any], error: errors.APIError
) -> Response:
    """An input past the context window, streamed: as the real API refuses it once the stream has
    begun, ``response.created`` and ``response.in_progress`` then the ``error`` event (there no
    ``response.failed``: its error codes have none for it)."""
    emit = Numbered()
    made = [
        emit("response.created", response=shell),
        emit("response.in_progress", response=shell),
        Last(emit.error(error)),
    ]
    return render.respond(
        request, behaviour, shell["id"], {}, ["error"], events=made, render_error=emit.error
    )


def _check_reasoning_sampling(body: Mapping[str, Any], effort: Optional[str], model: str) -> None:
    """A reasoning model takes no temperature, ``top_p`` or penalty but the default, save at effort
    ``none`` (asked, or the newer models' default), as the real API words it."""
    if effort in (None, "none") or not model.startswith(REASONING_MODELS):
        return
    for param, _, _, default in SAMPLING_RANGES:
        if body.get(param) not in (None, default):
            raise errors.invalid_request(
                f"Unsupported parameter: '{param}' is not supported with this model.", param
            )


def _check_no_logprobs(include: Sequence[str], top_logprobs: Optional[int]) -> None:
    """A reasoning model (thinking) gives no logprobs, asked for either way."""
    param = "include" if LOGPROBS in include else "top_logprobs" if top_logprobs is not None else None
    if param is not None:
        raise errors.invalid_request(
            "logprobs are not supported with reasoning models.", param, "unsupported_parameter"
        )


# JSON mode needs the word in the input's messages: ``instructions`` alone do not count.
JSON_NOT_NAMED = (
    "Response input messages must contain the word 'json' in some form to use 'text.format' of type "
    "'json_object'."
)


def _objects(value: Any, param: str) -> Any:
    if value is not None and not (isinstance(value, list) and all(isinstance(item, dict) for item in value)):
        raise validate.wrong_type(param, "an array of objects", value)
    return value


OPTIONS = {
    **PASSED_OPTIONS,
    "truncation": validate.one_of("auto", "disabled", listed=True),
    "service_tier": validate.one_of(*SERVICE_TIERS, "ultrafast", listed=True),  # the Responses API's own tier
    "prompt_cache_retention": validate.one_of(*CACHE_RETENTIONS, listed=True),
    "user": validate.string,
    "prompt": validate.object_of(
        ("id",), id=validate.string, version=validate.string, variables=validate.obj
    ),
    "stream_options": validate.obj,
    "moderation": validate.obj,
    "context_management": _objects,
}


_check_verbosity = validate.one_of("low", "medium", "high")
# Request fields the response object gives back as sent (null when not sent; ``user``, never null, only
# when sent).
ECHOED = ("safety_identifier", "prompt_cache_key", "prompt_cache_retention")
_check_summary = validate.one_of("concise", "detailed", "auto")
_check_context = validate.one_of("auto", "current_turn", "all_turns")


def _reasoning(body: Mapping[str, Any], model: str) -> Dict[str, Any]:
    """``reasoning`` as the response echoes it: the effort and summary asked for, a reasoning
    model's default effort when none is."""
    asked = validate.obj(body.get("reasoning"), "reasoning") or {}
    effort = check_effort(asked.get("effort"), "reasoning.effort")
    check_effort_for(model, effort, "reasoning.effort")
    effort = effort or default_effort(model)
    summary = _check_summary(asked.get("summary"), "reasoning.summary")
    echoed: Dict[str, Any] = {"effort": effort, "summary": summary}
    context = _check_context(asked.get("context"), "reasoning.context")
    if context is not None:  # echoed as the mode used: gpt-5.6 keeps every turn's reasoning, others one
        echoed["context"] = context if context != "auto" else _context_of(model)
    mode = validate.string(asked.get("mode"), "reasoning.mode")
    if mode is not None:
        echoed["mode"] = mode
    return echoed


def _context_of(model: str) -> str:
    return "all_turns" if model.startswith("gpt-5.6") else "current_turn"


# What a reasoning item's summary says when one is asked for (``reasoning.summary``): the real API's
# summaries begin with a bold title.
REASONING_SUMMARY = "**Echoing the message**\n\nThe answer repeats the last user message back, as written."


def _reasoning_items(model: str, reasoning: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """A reasoning model's output begins with its reasoning item (unless its effort is ``none``):
    a summary when one is asked for, and ``encrypted_content`` a client hands back on a later turn,
    as the real API's."""
    if not model.startswith(REASONING_MODELS) or reasoning["effort"] == "none":
        return []
    summary = [{"type": "summary_text", "text": REASONING_SUMMARY}] if reasoning["summary"] else []
    return [
        {
            "id": random_id("rs_", 48),
            "type": "reasoning",
            "summary": summary,
            "encrypted_content": random_id("gAAAAA", 96),
        }
    ]


def _usage(input_tokens: int, output_tokens: int, cached: int) -> Dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def _current(stored: objects.StoredResponse, now: float) -> Tuple[bytes, str]:
    """The stored response as it stands at ``now`` and its status: a background one is queued,
    then in progress, then finished, as its job's times say."""
    if stored.job is None:
        return stored.body, "stored"
    job = json.loads(stored.job)
    if job.get("cancelled"):
        return stored.body, "cancelled"
    if job.get("failed"):
        return dumps(job["failed"]["response"]), "failed"
    if now >= job["ends"]:
        return stored.body, "finished"
    status = "queued" if now < job["starts"] else "in_progress"
    return dumps(unfinished(json.loads(stored.body), status)), status


def _truncated(
    request: Request,
    model: str,
    body: Mapping[str, Any],
    framing: List[Message],
    messages: List[Message],
    reserved: int,
) -> List[Message]:
    """The messages ``truncation: auto`` keeps, with windows on: the oldest dropped until the input
    fits what the window leaves past ``reserved`` tokens (the output, the tool definitions)."""
    fits = limits.window(request.settings, model) if body.get("truncation") == "auto" else None
    return messages if fits is None else list(newest_fitting(framing, messages, fits[0] - reserved))


def _counted(pace: Pace, made: Iterable[Event]) -> Iterator[Event]:
    """``made``, its tokens counted on a ``Schedule`` (whether or not they are sent)."""
    if not isinstance(pace, Schedule):
        yield from made
        return
    for event in made:
        if isinstance(event, Token):
            pace.made += 1
        yield event


def _flag(raw: Optional[str], param: str) -> bool:
    """A boolean query parameter."""
    if raw is None or raw.lower() in ("false", "0"):
        return False
    if raw.lower() in ("true", "1"):
        return True
    raise validate.wrong_type(param, "a boolean", raw)


def _include(body: Mapping[str, Any]) -> List[str]:
    values = validate.array(body.get("include"), "include", expected=INCLUDE_TYPES) or []
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise validate.wrong_type(f"include[{index}]", "a string", value)
        if value not in items.INCLUDABLE:
            raise validate.invalid_value(f"include[{index}]", value, items.INCLUDABLE)
    return values


def _conversation(body: Mapping[str, Any]) -> Optional[str]:
    """``conversation``: its id, or an object with its id."""
    value = body.get("conversation")
    if value is None or isinstance(value, str):
        return validate.identifier(value, "conversation")
    if isinstance(value, dict):
        return validate.identifier(
            validate.required_string(value, "id", "conversation.id"), "conversation.id"
        )
    raise validate.wrong_type("conversation", "a string or an object", value)


def _as_answered(tool: Any) -> Any:
    """A tool as the response lists it: a function tool's ``strict`` defaults to true, and its
    ``parameters`` (which the spec requires, nullable) to null."""
    if isinstance(tool, dict) and tool.get("type") == "function":
        strict = True if tool.get("strict") is None else tool["strict"]
        return dict(tool, strict=strict, parameters=tool.get("parameters"))
    return tool


# An empty input is taken only beside what a response may continue instead.
NOTHING_TO_ANSWER = (
    "One of \"input\" or \"previous_response_id\" or 'prompt' or 'conversation' must be provided."
)
_CONTINUED = ("previous_response_id", "prompt", "conversation")


def _new_items(body: Mapping[str, Any]) -> List[items.Item]:
    """``input`` as items: required, and empty only when the request continues something."""
    raw = body.get("input")
    if raw is None and "input" in body:
        raise validate.wrong_type("input", "a string", raw)
    raw = validate.required(body, "input")
    if raw in ("", []):
        if not any(body.get(name) for name in _CONTINUED):
            raise errors.invalid_request(NOTHING_TO_ANSWER, None, "missing_required_parameter")
        return []
    if not isinstance(raw, (str, list)):
        raise validate.wrong_type("input", "one of a string or array of input items", raw)
    return items.read(raw, "input")


def _chat_choice(choice: Any, given: Any) -> Any:
    """Responses name a forced function at the top level; chat nests it under ``function``."""
    tools.check_responses_choice(choice, given)
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {
            "type": "function",
            "function": {"name": validate.required_string(choice, "name", "tool_choice.name")},
        }
    if isinstance(choice, dict) and choice.get("type") not in ("custom", "allowed_tools"):
        return "none"  # a hosted tool forced: never run here, and no other tool in its place
    return choice


def read_text_format(
    body: Mapping[str, Any],
) -> Tuple[Optional[Dict[str, Any]], Optional[tools.OutputFormat]]:
    """``text.format`` as sent (for the response object), and the structured output it asks for."""
    text = validate.obj(body.get("text"), "text")
    fmt = text.get("format") if text else None
    if text:
        _check_verbosity(text.get("verbosity"), "text.verbosity")
    return fmt, tools.read_output_format(fmt, "text.format", nested=False)


def _response_shell(
    response_id: str,
    model: str,
    body: Mapping[str, Any],
    instructions: Optional[str],
    max_output: Optional[int],
    text_format: Optional[Dict[str, Any]],
    store: bool,
    created: int,
) -> Dict[str, Any]:
    """The response object as it stands before any output."""
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
        "max_tool_calls": body.get("max_tool_calls"),
        "model": model,
        "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "service_tier": render.service_tier(body.get("service_tier")),
        "store": store,
        "temperature": 1.0 if body.get("temperature") is None else body["temperature"],
        "text": {"format": text_format or {"type": "text"}, "verbosity": _verbosity(body)},
        "tool_choice": tools.listed_choice(body.get("tool_choice"), body.get("tools") or ()),
        "tools": [_as_answered(tool) for tool in body.get("tools") or []],
        "top_logprobs": body.get("top_logprobs") or 0,
        "top_p": 1.0 if body.get("top_p") is None else body["top_p"],
        "truncation": body.get("truncation") or "disabled",
        "metadata": body.get("metadata") or {},
        **{name: body.get(name) for name in ECHOED},
        **({"user": body["user"]} if body.get("user") is not None else {}),
        **_cache_options(model, body.get("prompt_cache_options")),
    }


# The models prompt_cache_options apply to: gpt-5.6 and later.
def _cache_options(model: str, asked: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """The prompt-caching options applied, as the response lists them (gpt-5.6 and later only)."""
    if not GPT_5_6_AND_LATER.match(model):
        return {}
    asked = asked or {}
    applied = {"ttl": asked.get("ttl") or "30m", "mode": asked.get("mode") or "implicit"}
    if asked.get("comparison_response_id") is not None:
        applied["comparison_response_id"] = asked["comparison_response_id"]
    return {"prompt_cache_options": applied}


def _verbosity(body: Mapping[str, Any]) -> str:
    text = body.get("text")
    return (text.get("verbosity") if isinstance(text, dict) else None) or "medium"


def _custom_called(body: Mapping[str, Any], given: tools.Choice, decided: bool) -> Optional[str]:
    """The custom tool (freeform input, ``{"type": "custom"}``) the reply calls: the one
    ``tool_choice`` names, or with ``required`` and no function to call the first, unless the turn
    ends with a tool's output or the reply is already decided otherwise (calls, a filter)."""
    choice = body.get("tool_choice")
    if decided or given.after_result or not (isinstance(choice, dict) or choice == "required"):
        return None
    custom = [
        tool.get("name")
        for tool in body.get("tools") or ()
        if isinstance(tool, dict) and tool.get("type") == "custom"
    ]
    if isinstance(choice, dict):
        named = choice.get("name") if choice.get("type") == "custom" else None
        return named if named in custom else None
    return custom[0] if custom and not given.functions else None


def _output_items(
    output: Output,
    calls: List[tools.Call],
    incomplete: bool,
    top_logprobs: Optional[int],
    custom: Optional[str] = None,
) -> List[Dict[str, Any]]:
    if custom is not None:  # its input is the text the reply would have been; no status, as the spec has it
        return [
            {
                "id": random_id("ctc_", 48),
                "type": "custom_tool_call",
                "call_id": random_id("call_", 24),
                "name": custom,
                "input": "".join(output.tokens),
            }
        ]
    if calls:
        return [
            {
                "id": random_id("fc_", 48),
                "type": "function_call",
                "status": "incomplete" if call.cut else "completed",
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
            "content": [text_part("".join(output.tokens), part_logprobs(output.tokens, top_logprobs))],
        }
    ]
