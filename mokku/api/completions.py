"""``POST /v1/completions``: the legacy endpoint, echoing each prompt back.

A prompt is a string, a list of strings, a list of token ids or a list of
token-id lists. A token-id prompt echoes as its ids in decimal, separated by
spaces (``[1212, 318]`` echoes ``"1212 318"``) and costs one prompt token per
id. Each prompt gives ``n`` choices, indexed ``prompt * n + choice`` as the
real API does.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, NamedTuple, Optional

from mokku import errors
from mokku.api import logprobs, render, validate
from mokku.api.decide import Generation, Replies
from mokku.api.ids import random_id
from mokku.api.models import CHAT_MODELS, EMBEDDING_MODELS
from mokku.api.sampling import Output, read_sampling
from mokku.api.tokens import count, tokenize
from mokku.server import stream
from mokku.server.http import Request, Response
from mokku.server.stream import Event

KNOWN_PARAMS = validate.known_params(
    "best_of echo frequency_penalty logit_bias logprobs max_tokens model n presence_penalty prompt seed "
    "stop stream stream_options suffix temperature top_p user",
    stream_options="include_usage include_obfuscation",
)
DEFAULT_MAX_TOKENS = 16
PROMPT_TYPES = "a string, an array of strings, an array of integers, or an array of arrays of integers"


class Prompt(NamedTuple):
    text: str
    tokens: int


class Choice(NamedTuple):
    number: int  # its ``index`` in the answer
    prefix: str  # the echoed prompt when ``echo`` is true
    output: Output


def create(request: Request, replies: Replies) -> Response:
    body, behaviour = replies.begin(request, "text_completion", KNOWN_PARAMS)
    model = request.dialect.answer_model(behaviour.model)  # an Azure deployment's: the model it serves
    if model in CHAT_MODELS or (
        model in EMBEDDING_MODELS and request.dialect.completions_refuse_embedding_models
    ):
        raise request.dialect.wrong_operation(errors.COMPLETION, model)
    prompts = read_prompts(body.get("prompt"))
    sampling = read_sampling(body, ("max_tokens",), DEFAULT_MAX_TOKENS, min_max_tokens=0)
    echo = bool(validate.boolean(body.get("echo"), "echo"))
    validate.string(body.get("suffix"), "suffix")
    top = validate.integer(body.get("logprobs"), "logprobs", 0, 5)
    best_of = validate.integer(body.get("best_of"), "best_of", 0, 20)
    if best_of is not None and best_of < sampling.n:
        raise errors.invalid_request("best_of must be greater than or equal to n.", "best_of")
    if best_of is not None and best_of > 1 and sampling.stream:
        raise errors.invalid_request("Cannot stream results when best_of is greater than 1.", "best_of")
    generation = Generation(
        "completions",
        [prompt.text for prompt in prompts],
        [prompt.tokens for prompt in prompts],
        sampling,
        top_logprobs=top,
        input_param="prompt",
        logprobs_param="logprobs",
        echoed=sum(prompt.tokens for prompt in prompts) if echo else 0,
    )
    reply = replies.decide(request, behaviour, generation)

    choices = []
    for number, (prompt, output) in enumerate(zip(prompts, reply.outputs)):
        prefix = prompt.text if echo else ""
        choices += [Choice(number * sampling.n + i, prefix, output) for i in range(sampling.n)]
    generated = (
        sum(len(choice.output.tokens) for choice in choices) * max(best_of or 1, sampling.n) // sampling.n
    )
    usage = render.usage(sum(p.tokens for p in prompts), generated, details=False)
    completion_id = random_id("cmpl-")
    created = render.now()
    finish_reasons = [choice.output.finish_reason for choice in choices]
    if sampling.stream:
        events = _stream(
            completion_id, created, model, choices, top, usage if sampling.include_usage else None
        )
        sent = request.dialect.completion_events(events, request)  # Azure adds its filter results
        return render.respond(
            request, behaviour, completion_id, usage, finish_reasons, events=sent, answered=model
        )
    result = {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "system_fingerprint": render.SYSTEM_FINGERPRINT,
        "choices": [
            {
                "text": choice.prefix + "".join(choice.output.tokens),
                "index": choice.number,
                "logprobs": None if top is None else _logprobs(choice, top),
                "finish_reason": choice.output.finish_reason,
            }
            for choice in choices
        ],
        "usage": usage,
    }
    result = request.dialect.completion(result, request)
    return render.respond(
        request, behaviour, completion_id, usage, finish_reasons, body=result, answered=model
    )


def _tokens(choice: Choice) -> List[str]:
    return tokenize(choice.prefix) + choice.output.tokens


def _logprobs(choice: Choice, top: int, offset: int = 0) -> Dict[str, Any]:
    tokens = _tokens(choice)
    offsets = []
    for token in tokens:
        offsets.append(offset)
        offset += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": [logprobs.logprob(token) for token in tokens],
        "top_logprobs": [_top(token, top) for token in tokens],
        "text_offset": offsets,
    }


def _top(token: str, top: int) -> Dict[str, float]:
    if top == 0:
        return {}
    return dict([(token, logprobs.logprob(token)), *logprobs.alternatives(token, top - 1)])


class _LogprobChunks:
    """Renders one choice's token chunks with that token's logprobs (and its text offset)."""

    def __init__(self, base: Dict[str, Any], index: int, top: int) -> None:
        self.base, self.index, self.top, self.offset = base, index, top, 0

    def render(self, token: str) -> bytes:
        entry = {
            "tokens": [token],
            "token_logprobs": [logprobs.logprob(token)],
            "top_logprobs": [_top(token, self.top)],
            "text_offset": [self.offset],
        }
        self.offset += len(token)
        choice = {"text": token, "index": self.index, "logprobs": entry, "finish_reason": None}
        return stream.event({**self.base, "choices": [choice]})


def _stream(
    completion_id: str,
    created: int,
    model: str,
    choices: List[Choice],
    top: Optional[int],
    usage: Optional[Dict[str, Any]],
) -> Iterator[Event]:
    """One chunk per token (the echoed prompt's first), a finish chunk per choice, usage, [DONE]."""
    base = render.chunk_base("text_completion", completion_id, created, model, usage is not None)

    def choice_chunk(index: int, text: Any, finish_reason: Optional[str] = None) -> Dict[str, Any]:
        choice = {"text": text, "index": index, "logprobs": None, "finish_reason": finish_reason}
        return {**base, "choices": [choice]}

    renderers: List[render.TokenEvents]
    if top is None:
        renderers = [stream.EventTemplate(choice_chunk(c.number, stream.EventTemplate.SLOT)) for c in choices]
    else:
        renderers = [_LogprobChunks(base, c.number, top) for c in choices]
    yield from render.interleave(renderers, [_tokens(choice) for choice in choices])
    for choice in choices:
        yield stream.event(choice_chunk(choice.number, "", choice.output.finish_reason))
    yield from render.stream_end(base, usage)


def read_prompts(value: Any) -> List[Prompt]:
    """The prompts in any of the four forms, each with its text and prompt-token cost."""
    if value is None:
        raise validate.missing("prompt")
    if isinstance(value, str):
        return [Prompt(value, count(value))]
    if not isinstance(value, list):
        raise validate.wrong_type("prompt", PROMPT_TYPES, value)
    validate.array(value, "prompt", 1)
    if all(isinstance(item, str) for item in value):
        return [Prompt(item, count(item)) for item in value]
    if all(is_token_id(item) for item in value):
        return [token_prompt(value, "prompt")]
    if all(isinstance(item, list) for item in value):
        return [token_prompt(item, f"prompt[{i}]") for i, item in enumerate(value)]
    raise validate.wrong_type("prompt", PROMPT_TYPES, value)


def is_token_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def token_ids(ids: List[Any], param: str) -> List[int]:
    """A non-empty list of token ids (integers from 0), or a 400 naming the bad item."""
    validate.array(ids, param, 1)
    for index, token_id in enumerate(ids):
        if not is_token_id(token_id):
            raise validate.wrong_type(f"{param}[{index}]", "an integer", token_id)
        validate.integer(token_id, f"{param}[{index}]", 0)
    return ids


def token_prompt(ids: List[Any], param: str) -> Prompt:
    return Prompt(render_token_ids(token_ids(ids, param)), len(ids))


def render_token_ids(ids: List[int]) -> str:
    """The documented echo of a token-id prompt: its ids in decimal, separated by spaces."""
    return " ".join(map(str, ids))
