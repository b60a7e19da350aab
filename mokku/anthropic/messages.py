"""Anthropic's Messages API: ``POST /v1/messages`` and ``POST /v1/messages/count_tokens``.

The request is read into the neutral ``Generation`` and decided by the same ``Replies`` as
OpenAI's endpoints: the echo of the last user turn (after a ``tool_result``, that result, so agent
loops end under ``auto``), ``tool_use`` blocks whose ``input`` fits the tool's ``input_schema``,
scripted replies (endpoint ``messages``), faults and pacing. With ``thinking`` enabled a
``thinking`` block, signed, comes before the answer. Errors take Anthropic's envelope (``dialect``).
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

from mokku import errors
from mokku.anthropic import blocks as content_blocks
from mokku.anthropic import claude, events, hints
from mokku.anthropic import validate as check
from mokku.anthropic.models import CLAUDE_ALIASES
from mokku.api import render, tools, validate
from mokku.api.decide import (
    HANDED_OFF,
    THOUGHT,
    THOUGHT_TOKENS,
    TOOL_RESULT,
    Generation,
    Message,
    Replies,
    conversation_tokens,
    echo_text,
    ends_with_result,
    tool_answer,
)
from mokku.api.ids import random_id, signature
from mokku.api.sampling import Sampling
from mokku.api.tokens import definition_tokens, tokenize
from mokku.server.http import Request, Response, dumps, json_response, unparsed
from mokku.simulation.faults import split_model

KNOWN_PARAMS = validate.known_params(
    "model messages max_tokens system stop_sequences stream temperature top_p top_k metadata tools tool_choice "
    "thinking service_tier container mcp_servers context_management output_config output_format speed "
    "inference_geo diagnostics cache_control thread"
)
ROLES = ("user", "assistant")
TEXT_BLOCKS = ("text",)
MIN_THINKING_BUDGET = 1024
MAX_STOPS = 64
MAX_STOP_CHARS = 1000
MAX_TOOL_NAME = 128
MAX_MESSAGES = 100_000  # the SDK's docstring: "a limit of 100,000 messages in a single request"
TOOL_NAME = re.compile(f"^[a-zA-Z0-9_-]{{1,{MAX_TOOL_NAME}}}$")
# The SDK's (beta) tool union: its tags, and the dated server tools' families (a newer date is taken).
TOOL_TYPES = (
    "custom",
    "bash_20241022",
    "bash_20250124",
    "code_execution_20250522",
    "code_execution_20250825",
    "computer_20241022",
    "computer_20250124",
    "computer_20251124",
    "memory_20250818",
    "text_editor_20241022",
    "text_editor_20250124",
    "text_editor_20250429",
    "text_editor_20250728",
    "web_search_20250305",
    "web_fetch_20250910",
    "tool_search_tool_bm25_20251119",
    "tool_search_tool_regex_20251119",
    "mcp_toolset",
)
SERVER_TOOL = re.compile(
    r"(bash|code_execution|computer|computer_toolset|browser_toolset|memory|text_editor|web_search|web_fetch"
    r"|advisor|tool_search_tool_bm25|tool_search_tool_regex)_20[0-9]{6}"
)
# The Anthropic-defined tools a client runs (Claude writes their calls; the client executes them),
# by the family of their dated type, with the input each call gets: a shell command, a file to view,
# the memory directory, a screenshot.
_CLIENT_RUN = re.compile(r"(bash|text_editor|memory|computer)_20[0-9]{6}")
_CLIENT_RUN_INPUTS: Dict[str, Dict[str, Any]] = {
    "bash": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
    "text_editor": {
        "type": "object",
        "properties": {"command": {"enum": ["view"]}, "path": {"type": "string"}},
        "required": ["command", "path"],
    },
    "memory": {
        "type": "object",
        "properties": {"command": {"enum": ["view"]}, "path": {"enum": ["/memories"]}},
        "required": ["command", "path"],
    },
    "computer": {
        "type": "object",
        "properties": {"action": {"enum": ["screenshot"]}},
        "required": ["action"],
    },
}
# The text when there is nothing to echo (a turn of images, an empty tool result, a refusal, a call
# the limit cut): one token, so that it fits any max_tokens, and never an empty text block, which the
# API refuses when the reply is sent back.
NO_TEXT = "…"
THINKING_DOCS = (
    "Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
    "#important-considerations-when-using-extended-thinking"
)
# The API versions the real API knows; the latest removed the sampling parameters, and refuses a few
# blocks the earlier ones take.
VERSIONS = ("2023-06-01", "2026-10-21", "2023-01-01")
LATEST = "2026-10-21"
SAMPLING = ("temperature", "top_p", "top_k")
STOP_REASONS = {"length": "max_tokens", "content_filter": "refusal"}
# ``stop_details`` of a refusal (mokku names no policy category); null for every other stop reason.
REFUSAL = {"type": "refusal", "category": None, "explanation": None}
INFERENCE_GEO = "not_available"  # where the real API ran the request; nowhere, here


class Conversation:
    """A request's messages as neutral messages, with what the replies depend on."""

    def __init__(self) -> None:
        self.messages: List[Message] = []
        self.called: List[str] = []  # in order: in tool_use blocks, or written out in text
        self.tool_uses: Dict[str, str] = {}  # each tool_use's name, by its id


class Messages:
    """The endpoint family."""

    def __init__(self, replies: Replies) -> None:
        self.replies = replies

    def create(self, request: Request) -> Response:
        version = _version(request)
        asked = _body(request)
        _model(asked)
        _check_sampling_removed(asked, version)
        body, behaviour = self.replies.begin(request, "chat", KNOWN_PARAMS)
        max_tokens = check.whole(check.required(body, "max_tokens"), "max_tokens", 1)
        framing = _system(body.get("system"))
        conversation = read_messages(
            check.required(body, "messages"), _continues_thread(body.get("thread")), version
        )
        stops = _stops(body.get("stop_sequences"))
        check.number(body.get("temperature"), "temperature", 0, 1)
        check.number(body.get("top_p"), "top_p", 0, 1)
        check.whole(body.get("top_k"), "top_k", 0)
        _check_options(body)
        metadata = check.mapping(body.get("metadata"), "metadata") or {}
        check.text(metadata.get("user_id"), "metadata.user_id")
        stream = bool(check.of_type(body.get("stream"), bool, "stream"))
        claude.check_request(behaviour.model, body)  # what this model's generation does not take
        thinking = _thinking(body.get("thinking"), max_tokens or 1)
        if thinking == "enabled":
            _check_sampling_with_thinking(body)
        thinks = thinking is not None and THOUGHT_TOKENS < (max_tokens or 1)  # thinking spends max_tokens
        text_budget = (max_tokens or 1) - (THOUGHT_TOKENS if thinks else 0)
        chosen = _tools(body, conversation)
        if thinking and _forces_tool_use(body.get("tool_choice")):
            raise errors.invalid_request(
                "Thinking may not be enabled when tool_choice forces tool use.", "tool_choice"
            )
        output_format = _output_format(body)
        if output_format is None and not chosen:  # a JSON Schema the system prompt asks JSON of
            output_format = tools.prompted([message.text for message in framing], "system")
        messages = conversation.messages
        echoed = echo_text(messages, framing, body.get("tools"))
        generation = Generation(
            "messages",
            [echoed],
            [conversation_tokens(framing + messages) + _definition_tokens(body.get("tools"))],
            Sampling(max_tokens=text_budget, stop=stops, stream=stream),
            chosen,
            output_format,
            input_param="messages",
            conversation=framing + messages,
        )
        reply = self.replies.decide(request, behaviour, generation)
        output, calls = reply.outputs[0], reply.calls

        blocks: List[Dict[str, Any]] = []
        if thinks:
            blocks.append({"type": "thinking", "thinking": THOUGHT, "signature": signature()})
        text_tokens = output.tokens
        output_tokens = reply.completion_tokens()
        calls = tools.whole(calls)  # a call the token limit cut has no input to show
        if calls:
            for call in calls:
                call_input = json.loads(call.arguments)
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": random_id("toolu_", 24),
                        "name": call.name,
                        "input": call_input,
                        "caller": {"type": "direct"},  # the model called it, not a server tool
                    }
                )
        else:  # text; when the limit came inside the first call, the call is left out
            if not "".join(text_tokens):
                text_tokens = tokenize(NO_TEXT)
                output_tokens = max(output_tokens, len(text_tokens))
            blocks.append({"type": "text", "text": "".join(text_tokens)})
        stop_reason, stop_sequence = _stop(output.finish_reason, bool(calls), output.stop_sequence)
        input_tokens = generation.prompt_tokens[0]
        thought_tokens = THOUGHT_TOKENS if thinks else 0
        output_tokens += thought_tokens
        message_id = random_id("msg_", 24)
        answered = CLAUDE_ALIASES.get(behaviour.model, behaviour.model)  # an alias answers as its model
        message = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "container": None,  # no code execution tool runs here
            "model": answered,
            "content": blocks,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "stop_details": REFUSAL if stop_reason == "refusal" else None,
            "usage": _usage(input_tokens, output_tokens, thought_tokens, request.cached_tokens),
            "diagnostics": None,  # only a request's diagnostics.previous_message_id asks for any
        }
        usage = {"prompt_tokens": input_tokens, "completion_tokens": output_tokens}
        answer: Dict[str, Any] = (
            {
                "events": events.stream(message, text_tokens),
                "render_error": lambda error: events.error(error, request.id),
            }
            if stream
            else {"body": dumps(message)}
        )
        return render.respond(
            request, behaviour, message_id, usage, [stop_reason], answered=answered, **answer
        )

    def count_tokens(self, request: Request) -> Response:
        """``{"input_tokens": N}``: what the same request's ``usage.input_tokens`` would be."""
        version = _version(request)
        body = _body(request)
        model = _model(body)
        if "max_tokens" in body:  # a generation's own: the real API refuses it here, whatever its value
            raise errors.invalid_request("max_tokens: Extra inputs are not permitted", "max_tokens")
        _check_sampling_removed(body, version)
        claude.check_request(split_model(model)[0], body, sampling=False)
        framing = _system(body.get("system"))
        conversation = read_messages(check.required(body, "messages"), version=version)
        _tools(body, conversation)
        tokens = conversation_tokens(framing + conversation.messages) + _definition_tokens(body.get("tools"))
        return json_response({"input_tokens": tokens})


def _version(request: Request) -> str:
    """``anthropic-version``, which the SDKs always send: the real API refuses a request without it,
    or with a version it does not know."""
    version = request.header("anthropic-version")
    if not version:
        raise errors.invalid_request("anthropic-version: header is required", "anthropic-version")
    if version not in VERSIONS:
        raise errors.invalid_request(
            f'anthropic-version: "{version}" is not a valid version', "anthropic-version"
        )
    return version


def _check_sampling_removed(body: Mapping[str, Any], version: str) -> None:
    """Under ``2026-10-21`` the request has no ``temperature``, ``top_p`` or ``top_k``: the key alone,
    whatever its value, is an extra input (the first in the body named)."""
    if version != LATEST:
        return
    for name in body:
        if name in SAMPLING:
            raise errors.invalid_request(f"{name}: Extra inputs are not permitted", name)


def _model(body: Mapping[str, Any]) -> str:
    model = check.text(check.required(body, "model"), "model")
    return model or ""


def _system(value: Any) -> List[Message]:
    """``system``: a string, or text blocks."""
    if value is None:
        return []
    if isinstance(value, str):
        return [Message("system", value)] if value else []
    blocks = check.listing(value, "system") or []
    texts = []
    for index, block in enumerate(blocks):
        where = f"system.{index}"
        block = check.mapping(block, where) or {}
        check.one_of(check.required(block, "type", f"{where}.type"), TEXT_BLOCKS, f"{where}.type")
        texts.append(check.text(check.required(block, "text", f"{where}.text"), f"{where}.text") or "")
    return [Message("system", "\n".join(texts))]


def _continues_thread(value: Any) -> bool:
    """A turn of a message thread (the ``message-threads`` beta) sends only its new messages: the
    server holds the reply whose calls its first message answers."""
    return isinstance(value, dict) and value.get("type") == "continue"


def read_messages(value: Any, continued: bool = False, version: str = VERSIONS[0]) -> Conversation:
    """``messages``: each turn's text, a ``tool_result`` as a tool's result, a ``tool_use`` as a call.
    ``continued``: a thread's turn, whose first message may answer calls it does not show;
    ``version``: the request's ``anthropic-version``, which some blocks depend on."""
    turns = check.listing(value, "messages") or []
    if not turns:
        raise check.invalid("messages", "at least one message is required")
    if len(turns) > MAX_MESSAGES:
        raise check.invalid(
            "messages", f"List should have at most {MAX_MESSAGES} items after validation, not {len(turns)}"
        )
    conversation = Conversation()
    last = len(turns) - 1
    unanswered: List[str] = []  # the tool_use ids of the message before
    for index, turn in enumerate(turns):
        where = f"messages.{index}"
        turn = check.element(turn, dict, where)
        role = check.required(turn, "role", f"{where}.role")
        if role == "system":
            raise check.invalid(
                "messages",
                'Unexpected role "system". The Messages API accepts a top-level `system` parameter, '
                'not "system" as an input message role.',
            )
        check.one_of(role, ROLES, f"{where}.role")
        content = check.required(turn, "content", f"{where}.content")
        if (content == "" or content == []) and not (index == last and role == "assistant"):
            raise check.invalid(
                where,
                "all messages must have non-empty content except for the optional final assistant message",
            )
        uses: List[str] = []
        results: List[Tuple[str, str]] = []
        if isinstance(content, str):
            _check_text(content)
            conversation.messages.append(Message(role, content))
            if role == "assistant":  # calls an agent wrote out in its text count too
                conversation.called.extend(tools.named_in_text(content))
        else:
            blocks = check.listing(content, f"{where}.content") or []
            uses, results = _read_blocks(role, blocks, f"{where}.content", conversation, version == LATEST)
        if index == last and role == "assistant":
            _check_prefill(content)
        if not (continued and index == 0):
            _check_pairs(index, unanswered, results)
        unanswered = uses
    return conversation


def _check_pairs(index: int, unanswered: List[str], results: List[Tuple[str, str]]) -> None:
    """A ``tool_result`` answers a ``tool_use`` of the message just before it, and every ``tool_use``
    is answered in the next message, as the real API insists (with its words)."""
    answered = {used for _, used in results}
    expected = set(unanswered)
    for at, used in results:
        if used not in expected:
            raise check.invalid(
                at,
                f"unexpected `tool_use_id` found in `tool_result` blocks: {used}. Each `tool_result` block "
                "must have a corresponding `tool_use` block in the previous message.",
            )
    missing = [used for used in unanswered if used not in answered]
    if missing:
        raise check.invalid(
            f"messages.{index - 1}",
            f"`tool_use` ids were found without `tool_result` blocks immediately after: {', '.join(missing)}. "
            "Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
        )


def _read_blocks(
    role: str, blocks: List[Any], where: str, conversation: Conversation, latest: bool
) -> Tuple[List[str], List[Tuple[str, str]]]:
    """Reads one turn's blocks into the conversation; its ``tool_use`` ids, and its ``tool_result``
    blocks (where, the id answered). ``latest``: under ``2026-10-21``, whose refusals apply too."""
    texts: List[str] = []
    uses: List[str] = []
    results: List[Tuple[str, str]] = []
    out = conversation.messages
    before = len(out)

    def flush() -> None:
        if texts:
            out.append(Message(role, "\n".join(texts)))
            texts.clear()

    for index, block in enumerate(blocks):
        at = f"{where}.{index}"
        block = check.element(block, dict, at)
        kind = content_blocks.block_type(block, at)
        if latest:
            _check_latest_block(role, kind, block, at)
        if kind == "text":
            text = check.text(check.required(block, "text", f"{at}.text"), f"{at}.text")
            if not text:
                raise check.invalid(f"{at}.text", "text content blocks must be non-empty")
            _check_text(text)
            texts.append(text)
            if role == "assistant":  # calls an agent wrote out in its text count too
                conversation.called.extend(tools.named_in_text(text))
        elif kind == "tool_use":
            uses.append(check.text(check.required(block, "id", f"{at}.id"), f"{at}.id") or "")
            name = check.text(check.required(block, "name", f"{at}.name"), f"{at}.name")
            check.mapping(check.required(block, "input", f"{at}.input"), f"{at}.input")
            flush()
            conversation.called.append(name or "")
            conversation.tool_uses[uses[-1]] = name or ""
            out.append(Message("function_call", ""))
        elif kind == "tool_result":
            used = check.text(check.required(block, "tool_use_id", f"{at}.tool_use_id"), f"{at}.tool_use_id")
            check.of_type(block.get("is_error"), bool, f"{at}.is_error")
            results.append((at, used or ""))
            flush()
            result = _result_text(block.get("content"), f"{at}.content")
            answered = conversation.tool_uses.get(used or "", "")
            out.append(tool_answer(answered, Message(TOOL_RESULT, result), out))
        elif kind in content_blocks.SOURCE_TYPES:
            content_blocks.check_source(block, kind, at)
        # thinking, redacted_thinking, server tool blocks, search results...: context without text
    if texts and results:  # text after the turn's results ("Now describe it"): the results end it still
        out.insert(before, Message(role, "\n".join(texts)))
        texts.clear()
    flush()
    if len(out) == before:  # only images, documents, thinking...: the turn is there, without text
        out.append(Message(role, ""))
    return uses, results


def _check_latest_block(role: str, kind: str, block: Dict[str, Any], at: str) -> None:
    """What ``2026-10-21`` refuses in a turn's block: a document in an assistant turn, and citations
    on a user's text (a text block, or one in a search result's content). The real API's words for
    these are not known: these are mokku's."""
    if kind == "document" and role == "assistant":
        raise check.invalid(at, "document blocks are not allowed in assistant messages")
    if role != "user":
        return
    texts = [(at, block)] if kind == "text" else []
    if kind == "search_result" and isinstance(block.get("content"), list):
        texts += [
            (f"{at}.content.{index}", part)
            for index, part in enumerate(block["content"])
            if isinstance(part, dict) and part.get("type") == "text"
        ]
    for where, text in texts:
        citations = text.get("citations")
        if isinstance(citations, list) and citations:
            raise check.invalid(f"{where}.citations", "citations are not allowed on text in user messages")


def _check_text(text: str) -> None:
    """Text (a string content or a text block) of only whitespace: refused, as the real API does."""
    if text and text.isspace():
        raise check.invalid("messages", "text content blocks must contain non-whitespace text")


def _check_prefill(content: Any) -> None:
    """A final assistant turn (a prefill) does not end in whitespace, as the real API insists."""
    last = content if isinstance(content, str) else (content[-1] if content else None)
    if isinstance(last, dict) and last.get("type") == "text":
        last = last.get("text")
    if isinstance(last, str) and last != last.rstrip():
        raise check.invalid("messages", "final assistant content cannot end with trailing whitespace")


def _result_text(content: Any, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    parts = check.listing(content, where) or []
    texts = []
    for index, part in enumerate(parts):
        part = check.mapping(part, f"{where}.{index}") or {}
        kind = content_blocks.block_type(part, f"{where}.{index}", content_blocks.RESULT_TYPES)
        if kind == "text":
            texts.append(check.text(part.get("text"), f"{where}.{index}.text") or "")
        elif kind in content_blocks.SOURCE_TYPES:
            content_blocks.check_source(part, kind, f"{where}.{index}")
    return "\n".join(texts)


def _body(request: Request) -> Dict[str, Any]:
    """The JSON body, refused as Anthropic's parser refuses it: a lone surrogate escape (``"\\ud800"``,
    which Python's decoder takes) too."""
    body = request.json()
    raw = request.body()
    if b"\\u" in raw:
        reason = lone_surrogate(raw.decode(json.detect_encoding(raw), "surrogatepass"))
        if reason is not None:
            raise unparsed(reason)
    return body


# A \uXXXX escape of a surrogate, not itself escaped (an even run of backslashes before it).
_SURROGATE_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u([dD][89a-fA-F][0-9a-fA-F]{2})")


def lone_surrogate(text: str) -> Optional[str]:
    """Why ``text`` (JSON) is not JSON to a strict parser: the first surrogate escape not in a pair,
    at its place, in the decoder's words; None when every one pairs."""
    paired_at = -1
    for found in _SURROGATE_ESCAPE.finditer(text):
        at = found.start(2) - 2  # the backslash of its \u
        if at == paired_at:
            continue
        value = int(found[2], 16)
        following = text[at + 6 : at + 12]
        if value < 0xDC00 and _SURROGATE_ESCAPE.match(following) and int(following[2:], 16) >= 0xDC00:
            paired_at = at + 6
            continue
        reason = "no low surrogate in string" if value < 0xDC00 else "invalid high surrogate in string"
        line, column = text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)
        return f"{reason}: line {line} column {column} (char {at})"
    return None


# Options only passed along, checked as the SDK types them: (field, its allowed values) of a
# Literal; the other fields by their type.
_CHOICES = (
    ("service_tier", ("auto", "standard_only")),
    ("speed", ("standard", "fast")),
)


def _check_options(body: Mapping[str, Any]) -> None:
    for name, allowed in _CHOICES:
        if body.get(name) is not None:
            check.one_of(body[name], allowed, name)
    check.text(body.get("inference_geo"), "inference_geo")
    check.listing(body.get("mcp_servers"), "mcp_servers")
    config = check.mapping(body.get("output_config"), "output_config") or {}
    if config.get("effort") is not None:
        check.one_of(config["effort"], ("low", "medium", "high", "xhigh", "max"), "output_config.effort")
    cache = check.mapping(body.get("cache_control"), "cache_control")
    if cache is not None:
        check.one_of(
            check.required(cache, "type", "cache_control.type"), ("ephemeral",), "cache_control.type"
        )
        if cache.get("ttl") is not None:
            check.one_of(cache["ttl"], ("5m", "1h"), "cache_control.ttl")


def _output_format(body: Mapping[str, Any]) -> Optional[tools.OutputFormat]:
    """Structured output: ``output_config.format`` (or the earlier ``output_format``),
    ``{"type": "json_schema", "schema": {...}}``: the text is a JSON document valid against it."""
    config = check.mapping(body.get("output_config"), "output_config") or {}
    where = "output_config.format" if config.get("format") is not None else "output_format"
    value = config.get("format") if config.get("format") is not None else body.get("output_format")
    fmt = check.mapping(value, where)
    if fmt is None:
        return None
    check.one_of(check.required(fmt, "type", f"{where}.type"), ("json_schema",), f"{where}.type")
    schema = check.mapping(check.required(fmt, "schema", f"{where}.schema"), f"{where}.schema")
    return tools.OutputFormat("json_schema", hints.restored(schema), f"{where}.schema")


def _stops(value: Any) -> Tuple[str, ...]:
    """At most ``MAX_STOPS`` sequences of ``MAX_STOP_CHARS`` each: the echo is searched for every one."""
    stops = check.listing(value, "stop_sequences") or []
    if len(stops) > MAX_STOPS:
        raise check.invalid(
            "stop_sequences", f"List should have at most {MAX_STOPS} items after validation, not {len(stops)}"
        )
    for index, stop in enumerate(stops):
        text: str = check.element(stop, str, f"stop_sequences.{index}")
        if len(text) > MAX_STOP_CHARS:
            raise check.invalid(
                f"stop_sequences.{index}", f"String should have at most {MAX_STOP_CHARS} characters"
            )
        if not text.strip():
            raise check.invalid("stop_sequences", "each stop sequence must contain non-whitespace")
    return tuple(stops)


def _thinking(value: Any, max_tokens: int) -> Optional[str]:
    """``enabled`` (``{"type": "enabled", "budget_tokens": N}``) or ``adaptive`` when the reply may
    think first, else None."""
    config = check.mapping(value, "thinking")
    if config is None:
        return None
    kind = check.one_of(
        check.required(config, "type", "thinking.type"),
        ("enabled", "disabled", "between_tools", "adaptive"),
        "thinking.type",
    )
    if kind != "enabled":  # between_tools: no thinking before the answer, only between tool calls
        return kind if kind == "adaptive" else None
    where = "thinking.enabled.budget_tokens"
    budget = check.whole(check.required(config, "budget_tokens", where), where, MIN_THINKING_BUDGET) or 0
    if budget >= max_tokens:
        raise errors.invalid_request(
            "`max_tokens` must be greater than `thinking.budget_tokens`.", "max_tokens"
        )
    return kind


def _check_sampling_with_thinking(body: Mapping[str, Any]) -> None:
    """Extended thinking takes ``temperature`` 1 only, and no ``top_k``: the real API's words."""
    if body.get("temperature") is not None and body["temperature"] != 1:
        raise errors.invalid_request(
            f"`temperature` may only be set to 1 when thinking is enabled. {THINKING_DOCS}", "temperature"
        )
    if body.get("top_k") is not None:
        raise errors.invalid_request(
            f"`top_k` must be unset when thinking is enabled. {THINKING_DOCS}", "top_k"
        )


def _tools(body: Mapping[str, Any], conversation: Conversation) -> List[tools.Function]:
    """The client tools this reply calls (server tools count as tools, and are never called here)."""
    given = check.listing(body.get("tools"), "tools") or []
    functions = []
    names: Set[str] = set()
    for index, tool in enumerate(given):
        where = f"tools.{index}"
        tool = check.element(tool, dict, where)
        kind = check.text(tool.get("type"), f"{where}.type")
        if kind is not None and kind not in TOOL_TYPES and not SERVER_TOOL.fullmatch(kind):
            check.tag(kind, TOOL_TYPES, where)  # an OpenAI-shaped {"type": "function"} among them
        if kind == "mcp_toolset":  # named by its mcp_server_name, not a name of its own
            check.text(
                check.required(tool, "mcp_server_name", f"{where}.mcp_server_name"),
                f"{where}.mcp_server_name",
            )
            continue
        custom = kind in (None, "custom")
        run = _CLIENT_RUN.fullmatch(kind) if kind is not None else None
        at = f"{where}.custom.name" if custom else f"{where}.name"
        name = check.text(check.required(tool, "name", at), at) or ""
        if custom:
            _check_tool_name(name, at)
            at = f"{where}.custom.input_schema"
            schema = check.mapping(check.required(tool, "input_schema", at), at) or {}
            check.one_of(check.required(schema, "type", f"{at}.type"), ("object",), f"{at}.type")
            functions.append(tools.Function(name, hints.restored(schema), at, tools.described(tool)))
        elif run is not None:  # bash, the editor...: the client runs them
            functions.append(tools.Function(name, _CLIENT_RUN_INPUTS[run.group(1)], at))
        if name in names:
            raise check.invalid("tools", "Tool names must be unique.")
        names.add(name)
    choice = _tool_choice(body.get("tool_choice"), names)
    if isinstance(choice, dict) and all(
        function.name != choice["function"]["name"] for function in functions
    ):
        choice = "none"  # a server tool: never run here, so the reply is text
    after_result = ends_with_result(conversation.messages)
    handed_off = bool(conversation.messages) and conversation.messages[-1].role == HANDED_OFF
    state = tools.Choice(functions, len(given), after_result, conversation.called, handed_off)
    # One call a reply, as chat's default: an agent's final-answer tool is never called beside the
    # tool whose result it needs.
    return tools.choose(choice, state, False, "tool_choice", none_alone=True)


def _definition_tokens(value: Any) -> int:
    """The tool definitions' tokens (their compact JSON): the real API counts them as input."""
    if not value:
        return 0
    try:
        return definition_tokens(value)
    except RecursionError:
        raise check.invalid("tools", "tool definitions are nested too deeply") from None


def _check_tool_name(name: str, where: str) -> None:
    """A client tool's name: at most 128 letters, digits, ``_`` and ``-`` (the length checked first,
    so the pattern only ever runs on a short string)."""
    if len(name) > MAX_TOOL_NAME:
        raise check.invalid(where, f"String should have at most {MAX_TOOL_NAME} characters")
    if TOOL_NAME.fullmatch(name) is None:
        raise check.invalid(where, f"String should match pattern '{TOOL_NAME.pattern}'")


def _forces_tool_use(choice: Any) -> bool:
    """``tool_choice`` ``any`` or ``tool``: what extended thinking does not take."""
    return isinstance(choice, dict) and choice.get("type") in ("any", "tool")


def _tool_choice(value: Any, names: Set[str]) -> Any:
    """Anthropic's ``tool_choice`` as chat's (``disable_parallel_tool_use`` checked, and nothing to
    change: a reply makes one call); ``names``: the tools given."""
    choice = check.mapping(value, "tool_choice")
    if choice is None:
        return None
    kind = check.one_of(
        check.required(choice, "type", "tool_choice.type"),
        ("auto", "any", "tool", "none"),
        "tool_choice.type",
    )
    check.of_type(choice.get("disable_parallel_tool_use"), bool, "tool_choice.disable_parallel_tool_use")
    if kind != "none" and not names:
        raise check.invalid("tool_choice", "tool_choice may only be specified while providing tools.")
    if kind == "tool":
        name = check.text(check.required(choice, "name", "tool_choice.name"), "tool_choice.name")
        if name not in names:
            raise check.invalid("tool_choice", f"Tool '{name}' not found in provided tools.")
        return {"type": "function", "function": {"name": name}}
    return {"auto": "auto", "any": "required", "none": "none"}[kind]


def _stop(finish_reason: str, called: bool, stop_sequence: Optional[str]) -> Tuple[str, Optional[str]]:
    """``stop_reason`` and ``stop_sequence``: a tool call, the token limit, a refusal, a stop sequence met."""
    if called and finish_reason != "length":
        return "tool_use", None
    if finish_reason in STOP_REASONS:
        return STOP_REASONS[finish_reason], None
    if stop_sequence is not None:
        return "stop_sequence", stop_sequence
    return "end_turn", None


def _usage(input_tokens: int, output_tokens: int, thought_tokens: int, cached: int = 0) -> Dict[str, Any]:
    """``input_tokens`` are those after the cached ones (``cache_read_input_tokens``), as Anthropic
    counts; ``output_tokens_details`` tells the thinking tokens among the output tokens."""
    return {
        "input_tokens": input_tokens - cached,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"thinking_tokens": thought_tokens},
        "server_tool_use": None,  # mokku runs no server tool
        "service_tier": "standard",
        "inference_geo": INFERENCE_GEO,
        "speed": "standard",
    }


def thinking_tokens() -> List[str]:
    return tokenize(THOUGHT)
