"""The one reply decision: what the "model" answers, whatever dialect asked.

Every generation endpoint takes the same three steps:

1. ``Replies.begin``: read the body and the model, and decide the simulated fault (an error fault
   answers here, before the rest of the body is validated, as a provider's gateway would);
2. parse the rest of its dialect's body into a ``Generation``, the neutral request;
3. ``Replies.decide``: a scripted reply, the context window, tool calls, structured output or the
   echo; each prompt's text cut at its stop sequences and token limit. The ``Reply`` is rendered
   by the endpoint in its dialect.

The echo: the last user message's text (with no user message, the last message's); after a tool
(or function) result, that result's text, so that agent loops end; for an agent that reads its
steps from the model's text, the step its prompt asks for (``agents``).
"""

from __future__ import annotations

import functools
import re
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from mokku import config, errors, telemetry
from mokku.api import agents, tools, validate
from mokku.api.sampling import Output, Sampling, complete
from mokku.api.tokens import TOKENS_PER_MESSAGE, TOKENS_PER_REPLY, count, tokenize
from mokku.control.scenarios import Scenarios
from mokku.server.http import Request
from mokku.simulation import limits, prefix
from mokku.simulation.faults import Behaviour, Simulator
from mokku.simulation.load import Load, Slots

TOOL_RESULT = "tool"
# A handoff's result (``tools.HANDOFF``): the agent handed to takes the user's request up, so it ends
# no turn and its text is not echoed.
HANDED_OFF = "handoff"
# What a reply shows of its reasoning where a dialect shows it (Anthropic's thinking block, Gemini's
# thought part), and its tokens, counted once.
THOUGHT = "The user wrote a message; the answer repeats it."
THOUGHT_TOKENS = count(THOUGHT)
# Model ids are short; a long one would be repeated in every chunk of a stream.
MAX_MODEL_LENGTH = 256


class Message(NamedTuple):
    """A message of the conversation, in any dialect: its role and its text."""

    role: str  # system, developer, user, assistant, tool (a tool or function result), or another item type
    text: str
    named: bool = False  # it carries a ``name`` (one more prompt token)


class Generation(NamedTuple):
    """The neutral request: what any dialect's body asks of the reply."""

    endpoint: str  # the name scripted replies match: chat.completions, responses, completions
    prompts: List[str]  # the text each prompt echoes (chat and Responses: one, the conversation's)
    prompt_tokens: List[int]  # each prompt's size, for the context window
    sampling: Sampling = Sampling()
    functions: Sequence[tools.Function] = ()  # the functions the reply calls instead of answering text
    output_format: Optional[tools.OutputFormat] = None
    top_logprobs: Optional[int] = None  # logprobs asked for: how many alternatives per token
    input_param: str = "messages"  # the field that holds the prompts, for errors (and their words)
    logprobs_param: str = "top_logprobs"
    n_param: str = "n"  # the field that asks for several choices, for errors
    conversation: Sequence[Message] = ()  # the first prompt's messages, for the prefix cache
    echoed: int = 0  # completions' ``echo``: prompt tokens each choice repeats before its own


class Reply(NamedTuple):
    """What every choice answers: text per prompt (``outputs``), or calls to functions (``calls``)."""

    outputs: List[Output]
    calls: List[tools.Call]
    top_logprobs: Optional[int]

    def completion_tokens(self, prompt: int = 0) -> int:
        """What one choice costs as completion tokens: its text, or its calls."""
        return len(self.outputs[prompt].tokens) + tools.output_tokens(self.calls)


def message_text(content: Any) -> str:
    """A message's text: its string content, or its text parts joined by newlines."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part["text"] for part in content if part.get("type") in TEXT_PARTS)
    return ""


TEXT_PARTS = ("text", "input_text", "output_text")


# A tool's result an agent framework hands another agent as user text: google-adk's "For context:
# [root] `transfer_to_agent` tool returned result: {...}" when one agent transfers to another.
_RESULT_IN_TEXT = re.compile(
    r"\] `[^`\n]{1,64}` tool returned result:\s"
)  # a space, or a newline and a fence


def ends_with_result(messages: Sequence[Message]) -> bool:
    """Whether the conversation ends with a tool's result, so that an ``auto`` reply answers text and
    an agent loop ends (between two agents too: else each would transfer back to the other)."""
    if not messages:
        return False
    last = messages[-1]
    return last.role == TOOL_RESULT or (last.role == "user" and _RESULT_IN_TEXT.search(last.text) is not None)


def tool_answer(call: str, result: Message, before: Sequence[Message]) -> Message:
    """What a tool's ``result`` is to the reply, by the name of the call it answers. A handoff's
    (``tools.HANDOFF``) is no answer to echo: the agent handed to takes the request up. A hand-back's
    (``tools.HAND_BACK``) is the answer of the agent that handed the request back, which the agent it
    returns to passes on (a tool result: its turn ends with it), not the words that went with the
    hand-back call. Any other is the result."""
    if tools.HANDOFF.match(call):
        return Message(HANDED_OFF, "")
    if tools.HAND_BACK.match(call):
        for message in reversed(before):
            if message.role == "assistant" and message.text and not tools.HAND_BACK_TEXT.match(message.text):
                return Message(TOOL_RESULT, message.text)
        return Message(TOOL_RESULT, result.text)
    return result


# The roles that instruct the model (where a prompt-instructed client puts its JSON Schema, where
# agno lists its team).
INSTRUCTING = ("system", "developer")


def _instructions(conversation: Sequence[Message]) -> str:
    return "\n".join(message.text for message in conversation if message.role in INSTRUCTING)


# autogen's agents: their system message asks for TERMINATE once the task is done ("Reply with
# TERMINATE when the task has been completed.", or a team's own wording), and their teams end on it.
_ASKS_TERMINATE = re.compile(r"\b(?i:reply|respond|say|answer|output|write)\b[^.\n]{0,60}\bTERMINATE\b")


def asks_to_terminate(messages: Sequence[Message]) -> bool:
    """Whether a system message asks for TERMINATE once the task is done."""
    return any(
        message.role == "system" and _ASKS_TERMINATE.search(message.text[:MAX_SYSTEM_SCAN]) is not None
        for message in messages
    )


MAX_SYSTEM_SCAN = 64 * 1024


def echo_text(messages: Sequence[Message], framing: Sequence[Message] = (), tools: Any = None) -> str:
    """The text the reply echoes (see the module's docstring); TERMINATE when the conversation ends
    with the model's own answer and its system message asks for that word once the task is done.
    ``framing``: the system prompt where a dialect keeps it apart from the messages; ``tools``: the
    request's tools (an agent that sends them reads no steps from text, and the echo fills their
    arguments)."""
    if messages[-1].role == TOOL_RESULT:
        return messages[-1].text
    step = None if tools else agents.text_step(framing[0].text if framing else None, messages)
    if step is not None:
        return step
    if messages[-1].role == "assistant" and asks_to_terminate(messages):
        return "TERMINATE"
    for message in reversed(messages):
        if message.role == "user":
            return message.text
    return messages[-1].text


def prompt_token_list(messages: Sequence[Message]) -> List[str]:
    """The conversation's tokens in order, each message's framing as tokens of its role."""
    tokens: List[str] = []
    for message in messages:
        tokens.extend([f"<|{message.role}|>"] * TOKENS_PER_MESSAGE)
        tokens.extend(tokenize(message.text))
    return tokens


def _message_tokens(message: Message) -> int:
    """One message's prompt tokens: its text, plus its framing."""
    return TOKENS_PER_MESSAGE + count(message.text) + message.named


def conversation_tokens(messages: Sequence[Message]) -> int:
    """The prompt tokens of a conversation, the reply's priming included."""
    return TOKENS_PER_REPLY + sum(map(_message_tokens, messages))


def newest_fitting(framing: Sequence[Message], messages: Sequence[Message], room: int) -> Sequence[Message]:
    """The newest ``messages`` whose conversation, after ``framing``, fits ``room`` tokens, the last
    one at least: the Responses API's ``truncation: auto`` drops the oldest items."""
    total = conversation_tokens([*framing, *messages])
    start = 0
    while total > room and start < len(messages) - 1:
        total -= _message_tokens(messages[start])
        start += 1
    return messages[start:]


def _no_model(path: str) -> errors.APIError:
    """An empty ``model``, as the Responses API and the older endpoints word it."""
    if path.endswith("/responses"):
        return errors.invalid_request("The requested model '' does not exist.", "model", "model_not_found")
    return errors.invalid_request("you must provide a model parameter", None)


class Replies:
    """Decides every reply: the simulated fault, a scripted reply, or the reply the rules give."""

    def __init__(
        self,
        settings: config.Settings,
        simulator: Simulator,
        scenarios: Optional[Scenarios] = None,
        slots: Optional[Slots] = None,
        cache: Optional[prefix.PrefixCache] = None,
    ) -> None:
        self.settings = settings
        self.simulator = simulator
        self.scenarios = scenarios
        self.load = Load(settings, slots) if slots is not None or settings.prefill_ms else None
        self.prefix = cache

    def begin(
        self,
        request: Request,
        operation: str,
        known_params: Optional[Mapping[str, Optional[frozenset]]] = None,
        model: Optional[str] = None,
        required: Tuple[str, ...] = (),
    ) -> Tuple[Dict[str, Any], Behaviour]:
        """The body and the model (the body's, or ``model`` when the path names it), with the fault
        and pace decided; raises an error fault. With ``MOKKU_STRICT``, a parameter outside
        ``known_params`` is refused, after a missing model or ``required`` parameter as the real API
        orders them."""
        request.operation = operation
        body = request.json()
        if model is None:
            openai = request.dialect.name == "openai"
            if openai and "model" not in body and not request.path.endswith("/responses"):
                raise _no_model(request.path)  # the older endpoints word an absent model as an empty one
            model = validate.required_string(body, "model")
            if not model and openai:
                raise _no_model(request.path)
        if known_params is not None and self.settings.strict:
            validate.reject_unknown(body, known_params, required)
        if len(model) > MAX_MODEL_LENGTH:
            raise validate.too_long("model", MAX_MODEL_LENGTH, len(model))
        request.model = model
        telemetry.record_request(request.span, operation, model, body, request.dialect.provider)
        behaviour = self.simulator.decide(request, model)
        if self.load is not None:
            behaviour.load = self.load.admit(request)
        return body, behaviour

    def script(
        self, request: Request, behaviour: Behaviour, endpoint: str, text: str
    ) -> Optional[Dict[str, Any]]:
        """The scripted reply for this call, if a rule matches; its latency and fault take effect here."""
        if self.scenarios is None:
            return None
        reply = self.scenarios.match(endpoint, behaviour.model, text)
        if reply is not None:
            request.scenario = reply["rule_id"]
            self.simulator.apply_script(request, behaviour, reply)
        return reply

    def decide(self, request: Request, behaviour: Behaviour, generation: Generation) -> Reply:
        """The reply, checked against what one request may produce before anything is rendered."""
        reply = self._choose(request, behaviour, generation)
        self._check_output(generation, reply)
        if self.prefix is not None and generation.conversation:
            prompt = generation.prompt_tokens[0]
            found = self.prefix.visit(behaviour.model, prompt_token_list(generation.conversation))
            request.cached_tokens = min(found, prompt)
            request.kv_blocks = prefix.blocks_of(prompt)
            self.prefix.hold(request.kv_blocks)  # given back by the app when the answer is over
        return reply

    def _choose(self, request: Request, behaviour: Behaviour, generation: Generation) -> Reply:
        """The reply, in the order a test expects: a scripted reply wins (with its fault and latency),
        then the context window is checked, then functions are called, or structured output or the
        echo is answered. A scripted call answers even under ``content_filter``; a generated one does not."""
        script = self.script(request, behaviour, generation.endpoint, generation.prompts[0])
        sampling, top = generation.sampling, generation.top_logprobs
        forced = behaviour.is_("context_length")
        for prompt_tokens in generation.prompt_tokens:
            limits.check_context(
                request, behaviour.model, prompt_tokens, sampling.max_tokens, forced, generation.input_param
            )
        if sampling.max_tokens is None and self.settings.context_window:  # the model's own limit cuts
            room = limits.output_room(self.settings, behaviour.model, max(generation.prompt_tokens))
            sampling = sampling._replace(max_tokens=room)
        elif (
            sampling.max_tokens is None
            and generation.prompt_tokens[0] > self.settings.max_output_tokens  # an echo is no longer
            and sampling.n == 1
            and not top
            and len(generation.prompts) == 1
            and not generation.echoed
        ):  # one answer, no limit asked: it stops at this server's, as a model's at its own (above)
            sampling = sampling._replace(max_tokens=self.settings.max_output_tokens)
        filtered = behaviour.is_("content_filter") or behaviour.is_("prompt_filter")
        if script is not None and "tool_call" in script:
            return _calls([tools.scripted_call(script["tool_call"])], sampling.max_tokens, top)
        if script is not None and "content" in script:
            texts = [script["content"]] * len(generation.prompts)
        elif generation.functions and not filtered:
            instructions = functools.partial(_instructions, generation.conversation)
            calls = tools.make_calls(generation.functions, generation.prompts[0], instructions)
            return _calls(calls, sampling.max_tokens, top)
        else:
            structured = _structured(generation.output_format, generation.prompts[0])
            prefix = self.settings.echo_prefix
            texts = [structured] if structured is not None else [prefix + text for text in generation.prompts]
        return Reply([complete(text, sampling, filtered) for text in texts], [], top)

    def _check_output(self, generation: Generation, reply: Reply) -> None:
        """400 before any rendering when the reply would be larger than one request may produce:
        ``n`` choices of every prompt (with the prompt when echoed), each token with its logprob
        alternatives."""
        per_choice = generation.echoed + sum(reply.completion_tokens(i) for i in range(len(reply.outputs)))
        weight = 1 + (generation.top_logprobs or 0)
        n = generation.sampling.n
        total = per_choice * n * weight
        limit = self.settings.max_output_tokens
        if total <= limit:
            return
        if n > 1:
            param = generation.n_param
        elif weight > 1:
            param = generation.logprobs_param
        else:
            param = generation.input_param
        prompts = len(reply.outputs)
        parts = [
            f"{n} choice(s)",
            f"{per_choice:,} tokens"
            + (f" over {prompts} prompts" if prompts > 1 else "")
            + (" with the echoed prompt" if generation.echoed else ""),
        ]
        if weight > 1:
            parts.append(f"{weight} with logprob alternatives")
        raise errors.invalid_request(
            f"Invalid '{param}': this request would produce {total:,} output tokens ({' x '.join(parts)}), "
            f"more than the {limit:,} this server allows (MOKKU_MAX_OUTPUT_TOKENS).",
            param,
            "invalid_value",
        )


def _calls(calls: List[tools.Call], max_tokens: Optional[int], top: Optional[int]) -> Reply:
    """A reply of calls, cut as ``max_tokens`` cuts a model's (finish ``length``)."""
    kept, cut = tools.within(calls, max_tokens)
    return Reply([Output([], "length" if cut else "stop")], kept, top)


def _structured(output_format: Optional[tools.OutputFormat], text: str) -> Optional[str]:
    if output_format is None:
        return None
    return tools.structured_content(output_format.kind, output_format.schema, text, output_format.param)
