"""What chat and legacy completions share: sampling parameters, the echo's cut, usage.

Both endpoints "generate" by echoing text back; the parameters that change
that output (``n``, the token limit, ``stop``, ``stream``) and the ones merely
range-checked (``temperature``, ``top_p``, penalties) mean the same on both, so
they are read and applied here once.
"""

from __future__ import annotations

import functools
import time
from typing import (
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Protocol,
    Sequence,
    Tuple,
)

from mokku import errors
from mokku.api import validate
from mokku.api.tokens import tokenize
from mokku.server import stream
from mokku.server.http import Request, Response, encoded_json_response, json_response
from mokku.simulation.faults import Behaviour
from mokku.telemetry import record_request, record_response

SYSTEM_FINGERPRINT = "fp_6d0c3f2a1b"
SERVICE_TIER = "default"


class Sampling(NamedTuple):
    n: int
    max_tokens: Optional[int]
    stop: Tuple[str, ...]
    stream: bool
    include_usage: bool


class Output(NamedTuple):
    tokens: List[str]
    finish_reason: str


SAMPLING_PARAMS = frozenset(
    "temperature top_p presence_penalty frequency_penalty seed user logit_bias n stream stream_options stop".split()
)


def read_sampling(
    body: Mapping[str, Any],
    token_limits: Tuple[str, ...],
    default_max_tokens: Optional[int] = None,
    min_max_tokens: int = 1,
) -> Sampling:
    """Validate the generation parameters; ``token_limits`` lists the field names, first one wins."""
    if body.keys().isdisjoint(SAMPLING_PARAMS) and body.keys().isdisjoint(token_limits):
        return Sampling(1, default_max_tokens, (), False, False)  # nothing sent: nothing to check
    validate.number(body.get("temperature"), "temperature", 0, 2)
    validate.number(body.get("top_p"), "top_p", 0, 1)
    validate.number(body.get("presence_penalty"), "presence_penalty", -2, 2)
    validate.number(body.get("frequency_penalty"), "frequency_penalty", -2, 2)
    validate.integer(body.get("seed"), "seed")
    validate.string(body.get("user"), "user")
    logit_bias = validate.obj(body.get("logit_bias"), "logit_bias") or {}
    for token, bias in logit_bias.items():
        validate.number(bias, f"logit_bias.{token}", -100, 100)
    n = validate.integer(body.get("n"), "n", 1, 128)
    max_tokens = default_max_tokens
    for name in reversed(token_limits):
        value = validate.integer(body.get(name), name, min_max_tokens)
        if value is not None:
            max_tokens = value
    stream = bool(validate.boolean(body.get("stream"), "stream"))
    options = validate.obj(body.get("stream_options"), "stream_options")
    if options is not None and not stream:
        raise errors.invalid_request(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options"
        )
    include_usage = bool(
        options and validate.boolean(options.get("include_usage"), "stream_options.include_usage")
    )
    if options:
        validate.boolean(options.get("include_obfuscation"), "stream_options.include_obfuscation")
    return Sampling(1 if n is None else n, max_tokens, read_stop(body.get("stop")), stream, include_usage)


def read_stop(value: Any) -> Tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    stops = validate.array(value, "stop", 1, 4)
    for index, item in enumerate(stops or ()):
        if not isinstance(item, str):
            raise validate.wrong_type(f"stop[{index}]", "a string", item)
    return tuple(item for item in stops or () if item)


def complete(text: str, sampling: Sampling, behaviour: Optional[Behaviour] = None) -> Output:
    """Echo ``text`` cut before the first stop sequence and at the token limit.

    The ``content_filter`` fault answers nothing, with that finish reason, as a filtered reply does.
    """
    if behaviour is not None and behaviour.is_("content_filter"):
        return Output([], "content_filter")
    cut = min((i for i in (text.find(s) for s in sampling.stop) if i >= 0), default=-1)
    if cut >= 0:
        text = text[:cut]
    tokens = tokenize(text)
    if sampling.max_tokens is not None and len(tokens) > sampling.max_tokens:
        return Output(tokens[: sampling.max_tokens], "length")
    return Output(tokens, "stop")


def begin(
    request: Request, operation: str, known_params: Optional[frozenset] = None
) -> Tuple[Dict[str, Any], Behaviour]:
    """What every generation endpoint does first: read the body and the model, decide the fault."""
    body = request.json()
    if known_params is not None and request.settings.strict:
        validate.reject_unknown(body, known_params)
    model = validate.string(validate.required(body, "model"), "model")
    record_request(request.span, operation, model or "", body)
    return body, request.simulator.decide(request, model)


def scripted(request: Request, behaviour: Behaviour, endpoint: str, text: str) -> Optional[Dict[str, Any]]:
    """The scripted reply for this call, if a rule matches; its latency and fault take effect here."""
    if request.scenarios is None:
        return None
    reply = request.scenarios.match(endpoint, behaviour.model, text)
    if reply is not None:
        request.environ["mokku.scenario"] = reply["rule_id"]
        request.simulator.apply_script(request, behaviour, reply)
    return reply


def respond(
    request: Request,
    behaviour: Behaviour,
    response_id: str,
    usage: Dict[str, Any],
    finish_reasons: Sequence[str],
    body: Any = None,
    events: Optional[Iterator[bytes]] = None,
) -> Response:
    """The JSON ``body`` (a document, or its encoded bytes) or the SSE ``events``, paced as the
    request asks, with the GenAI response attributes on the span.

    A stream's output tokens and finish reasons are recorded only once its
    last event is sent, so a client that disconnects early is not counted as
    having received the whole output.
    """
    span, model, prompt_tokens = request.span, behaviour.model, usage["prompt_tokens"]
    request.environ["mokku.result"] = {
        "id": response_id,
        "finish_reasons": list(finish_reasons),
        "usage": usage,
    }
    if events is None:
        behaviour.before_whole_response(usage["completion_tokens"])
        record_response(span, response_id, model, prompt_tokens, usage["completion_tokens"], finish_reasons)
        return encoded_json_response(body) if isinstance(body, bytes) else json_response(body)
    record_response(span, response_id, model, prompt_tokens)
    on_complete = functools.partial(
        record_response, span, response_id, model, prompt_tokens, usage["completion_tokens"], finish_reasons
    )
    return stream.response(
        behaviour.shape_stream(events), span, on_complete if span is not None else None, request.environ
    )


def chunk_base(
    object_name: str, completion_id: str, created: int, model: str, include_usage: bool, **extra: Any
) -> Dict[str, Any]:
    """The fields every chunk of a stream repeats; ``usage`` is null in each when usage is asked for."""
    base: Dict[str, Any] = {
        "id": completion_id,
        "object": object_name,
        "created": created,
        "model": model,
        **extra,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": None,
    }
    if include_usage:
        base["usage"] = None
    return base


def stream_end(base: Dict[str, Any], usage: Optional[Dict[str, Any]]) -> Iterator[bytes]:
    """The usage chunk (when asked for: no choices, the usage) and ``[DONE]``."""
    if usage is not None:
        yield stream.event({**base, "choices": [], "usage": usage})
    yield stream.DONE


class TokenEvents(Protocol):
    def render(self, token: str) -> bytes: ...


def interleave(
    renderers: Sequence[TokenEvents], token_lists: Sequence[Sequence[str]], pause: Callable[[], None]
) -> Iterator[bytes]:
    """One event per token, choices taking turns, as the real API streams ``n > 1``;
    ``pause`` runs before each token after the first (the inter-token delay)."""
    longest = max(map(len, token_lists), default=0)
    for position in range(longest):
        for renderer, tokens in zip(renderers, token_lists):
            if position < len(tokens):
                if position:
                    pause()
                yield renderer.render(tokens[position])


def usage(prompt_tokens: int, completion_tokens: int, details: bool = True) -> Dict[str, Any]:
    body: Dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if details:
        body["prompt_tokens_details"] = {"cached_tokens": 0, "audio_tokens": 0}
        body["completion_tokens_details"] = {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        }
    return body


def now() -> int:
    return int(time.time())
