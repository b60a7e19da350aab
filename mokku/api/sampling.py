"""Sampling parameters as the OpenAI chat and completions endpoints take them, and the echo's cut.

Both endpoints "generate" by echoing text back; the parameters that change that output (``n``,
the token limit, ``stop``, ``stream``) and the ones merely range-checked (``temperature``,
``top_p``, penalties) mean the same on both, so they are read here once.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple

from mokku import errors
from mokku.api import validate
from mokku.api.tokens import tokenize


class Sampling(NamedTuple):
    n: int = 1
    max_tokens: Optional[int] = None
    stop: Tuple[str, ...] = ()
    stream: bool = False
    include_usage: bool = False
    include_obfuscation: bool = True  # chat chunks carry ``obfuscation`` unless asked not to


class Output(NamedTuple):
    tokens: List[str]
    finish_reason: str
    stop_sequence: Optional[str] = None  # the stop sequence the text was cut at


# Reasoning models' ids: the sampling parameters they do not take are refused, as the real API does.
REASONING_MODELS = ("o1", "o3", "o4", "gpt-5", "gpt-6")
# Models that do not reason: a reasoning effort is refused, and any verbosity but ``medium``.
NON_REASONING_MODELS = ("gpt-4", "gpt-3.5", "chatgpt-")
# The reasoning models whose effort is ``none`` unless asked (gpt-5.1, gpt-5.2 and gpt-5.4, its mini
# and nano): they take sampling parameters as a chat model does. The -pro models think at ``high``
# only; the rest (gpt-5.5, gpt-5.6 and gpt-6 too) at ``medium``.
_NO_EFFORT_BY_DEFAULT = re.compile(r"gpt-5\.[124](-(mini|nano))?(-\d{4}-\d{2}-\d{2})?$")
_PRO = re.compile(r"-pro(-\d{4}-\d{2}-\d{2})?$")
# gpt-5.6 and every later model: they reason unless told not to on chat with function tools, and
# list the prompt-caching options applied on a Responses answer.
GPT_5_6_AND_LATER = re.compile(r"gpt-(5\.([6-9]|[1-9][0-9])|[6-9]|[1-9][0-9])\b")


def default_effort(model: str) -> Optional[str]:
    """The reasoning effort a model answers with when none is asked; None for other models."""
    if not model.startswith(REASONING_MODELS):
        return None
    if _NO_EFFORT_BY_DEFAULT.match(model):
        return "none"
    return "high" if _PRO.search(model) else "medium"


check_effort = validate.one_of("none", "minimal", "low", "medium", "high", "xhigh", "max")
# The efforts a model takes where it takes fewer than the API knows, on chat and on the Responses
# API: the o-series and gpt-5-codex think at low, medium or high, gpt-5-pro at high alone, gpt-5 (its
# mini and nano) cannot think less than minimal, gpt-5.1 and gpt-5.2 think at none or from low (5.2 to
# xhigh), gpt-6 Astra cannot stop thinking, gpt-5.6 thinks at none or from low (to xhigh on chat, to
# max on the Responses API).
_DATED = r"(-\d{4}-\d{2}-\d{2})?$"
_THREE = ("low", "medium", "high")
_EFFORTS: Tuple[Tuple[re.Pattern[str], Tuple[str, ...], Tuple[str, ...]], ...] = (
    (re.compile(r"o[134](-mini)?" + _DATED), _THREE, _THREE),
    (re.compile(r"gpt-5-codex" + _DATED), _THREE, _THREE),
    (re.compile(r"gpt-5-pro" + _DATED), ("high",), ("high",)),
    (re.compile(r"gpt-5\.1" + _DATED), ("none", *_THREE), ("none", *_THREE)),
    (re.compile(r"gpt-5\.2" + _DATED), ("none", *_THREE, "xhigh"), ("none", *_THREE, "xhigh")),
    (
        re.compile(r"gpt-5(-mini|-nano)?" + _DATED),
        ("minimal", "low", "medium", "high"),
        ("minimal", "low", "medium", "high"),
    ),
    (re.compile(r"gpt-6-astra"), ("low", "medium", "high", "xhigh"), ("low", "medium", "high", "xhigh")),
    (
        re.compile(r"gpt-5\.6"),
        ("none", "low", "medium", "high", "xhigh"),
        ("none", "low", "medium", "high", "xhigh", "max"),
    ),
)


def check_effort_for(model: str, effort: Optional[str], param: str) -> None:
    """400 ``unsupported_value`` for an effort the model does not take, listing those it does, in the
    words of chat (``reasoning_effort``) or of the Responses API (``reasoning.effort``)."""
    if effort is None:
        return
    if model.startswith(NON_REASONING_MODELS):
        raise errors.invalid_request(
            f"Unsupported parameter: '{param}' is not supported with this model.",
            param,
            "unsupported_parameter",
        )
    responses = param == "reasoning.effort"
    for pattern, on_chat, on_responses in _EFFORTS:
        if pattern.match(model):
            allowed = on_responses if responses else on_chat
            if effort not in allowed:
                quoted = [f"'{value}'" for value in allowed]
                listed = ", ".join(quoted[:-1]) + f", and {quoted[-1]}" if len(quoted) > 1 else quoted[0]
                problem = (
                    f"'{effort}' is not supported with the '{model}' model"
                    if responses
                    else f"'{param}' does not support '{effort}' with this model"
                )
                raise errors.invalid_request(
                    f"Unsupported value: {problem}. Supported values are: {listed}.",
                    param,
                    "unsupported_value",
                )
            return


def check_verbosity_for(model: str, verbosity: Any, param: str) -> None:
    """400 ``unsupported_value`` for a verbosity a model that does not reason cannot give."""
    if verbosity not in (None, "medium") and model.startswith(NON_REASONING_MODELS):
        raise errors.invalid_request(
            f"Unsupported value: '{param}' does not support '{verbosity}' with this model. "
            "Supported values are: 'medium'.",
            param,
            "unsupported_value",
        )


SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority", "fast")
CACHE_RETENTIONS = ("in_memory", "24h")


def check_chat_retention(value: Any, param: str) -> Any:
    """Chat's ``prompt_cache_retention``: an unknown one is refused in chat's own words."""
    if value is not None and not isinstance(value, str):
        raise validate.wrong_type(param, f"one of {validate.either(CACHE_RETENTIONS)}", value)
    if value is not None and value not in CACHE_RETENTIONS:
        raise errors.invalid_request("Invalid prompt_cache_retention argument", param)
    return value


CACHE_OPTIONS: Dict[str, validate.Check] = {
    "mode": validate.one_of("implicit", "explicit"),
    "ttl": validate.one_of("30m", "12h"),
    "prewarm": validate.boolean,
    "comparison_response_id": validate.string,
}


def check_cache_options(value: Any, param: str) -> Any:
    """``prompt_cache_options``: each of its fields of the type and among the values the SDK types it."""
    for name, check in CACHE_OPTIONS.items():
        check((validate.obj(value, param) or {}).get(name), f"{param}.{name}")
    return value


# Options of chat and the Responses API that only pass along: their types and values checked as the
# real API checks them.
PASSED_OPTIONS: Dict[str, validate.Check] = {
    "service_tier": validate.one_of(*SERVICE_TIERS, listed=True),
    "prompt_cache_key": validate.string,
    "prompt_cache_retention": check_chat_retention,
    "prompt_cache_options": check_cache_options,
    "safety_identifier": validate.short_string(64),
}
AUDIO_FORMATS = ("wav", "aac", "mp3", "flac", "opus", "pcm16")


def _text_or_parts(value: Any, param: str) -> Any:
    """A predicted output's content: a string, or text parts."""
    if not isinstance(value, (str, list)):
        raise validate.wrong_type(param, "one of a string or array of objects", value)
    return value


def _voice(value: Any, param: str) -> Any:
    """A built-in voice's name, or a custom voice's ``{"id": ...}``."""
    if isinstance(value, dict):
        validate.fields(value, param, ("id",), {"id": validate.string})
    elif not isinstance(value, str):
        raise validate.wrong_type(param, "one of a string or object", value)
    return value


CHAT_OPTIONS: Dict[str, validate.Check] = {
    **PASSED_OPTIONS,
    "reasoning_effort": check_effort,
    "verbosity": validate.one_of("low", "medium", "high"),
    "modalities": validate.array_of(validate.one_of("text", "audio")),
    "audio": validate.object_of(
        ("voice", "format"),
        voice=_voice,
        format=validate.one_of(*AUDIO_FORMATS),
    ),
    "prediction": validate.object_of(
        ("type", "content"), type=validate.one_of("content"), content=_text_or_parts
    ),
    "web_search_options": validate.object_of(
        search_context_size=validate.one_of("low", "medium", "high"),
        user_location=validate.object_of(
            ("type", "approximate"), type=validate.one_of("approximate"), approximate=validate.obj
        ),
    ),
}

# The sampling parameters both APIs take: lowest and highest values, and the default, the only value a
# reasoning model takes.
SAMPLING_RANGES = (
    ("temperature", 0, 2, 1),
    ("top_p", 0, 1, 1),
    ("presence_penalty", -2, 2, 0),
    ("frequency_penalty", -2, 2, 0),
)
SAMPLING_PARAMS = frozenset(
    "temperature top_p presence_penalty frequency_penalty seed user logit_bias n stream stream_options stop".split()
)


def check_ranges(body: Mapping[str, Any]) -> None:
    """Each sampling parameter sent, inside its range (a 400 naming it otherwise)."""
    for param, lowest, highest, _ in SAMPLING_RANGES:
        validate.number(body.get(param), param, lowest, highest)


def read_sampling(
    body: Mapping[str, Any],
    token_limits: Tuple[str, ...],
    default_max_tokens: Optional[int] = None,
    min_max_tokens: int = 1,
) -> Sampling:
    """Validate the generation parameters; ``token_limits`` lists the field names, first one wins."""
    if body.keys().isdisjoint(SAMPLING_PARAMS) and body.keys().isdisjoint(token_limits):
        return Sampling(max_tokens=default_max_tokens)  # nothing sent: nothing to check
    check_ranges(body)
    validate.integer(body.get("seed"), "seed", -(2**63), 2**63 - 1)  # an int64
    validate.string(body.get("user"), "user")
    logit_bias = validate.obj(body.get("logit_bias"), "logit_bias") or {}
    for token, bias in logit_bias.items():
        if not (token.isascii() and token.isdigit()):  # token ids: words are a common mistake
            raise errors.invalid_request(
                f"Invalid key in 'logit_bias': {token}. You should only be submitting non-negative integers.",
                "logit_bias",
                "invalid_value",
            )
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
    obfuscated = (
        not options
        or validate.boolean(options.get("include_obfuscation"), "stream_options.include_obfuscation")
        is not False
    )
    return Sampling(
        1 if n is None else n, max_tokens, read_stop(body.get("stop")), stream, include_usage, obfuscated
    )


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


def complete(text: str, sampling: Sampling, filtered: bool = False) -> Output:
    """Echo ``text`` cut before the first stop sequence and at the token limit.

    A ``filtered`` reply (the ``content_filter`` fault) is empty, with that finish reason.
    """
    if filtered:
        return Output([], "content_filter")
    found = min(((text.find(s), s) for s in sampling.stop if s in text), default=None)
    if found is not None:
        text = text[: found[0]]
    tokens = tokenize(text)
    if sampling.max_tokens is not None and len(tokens) > sampling.max_tokens:
        return Output(tokens[: sampling.max_tokens], "length")
    return Output(tokens, "stop", found[1] if found else None)
