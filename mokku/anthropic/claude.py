"""A Claude model id read as its family and version, the one place that reads them: what a model
takes and how large its window is depend on its generation, not on one id or another.

``claude-opus-4-7``, ``claude-opus-4-5-20251101`` (a dated id is its alias's model) and
``claude-fable-5`` (version 5.0) read; an id of another shape (``claude-3-5-haiku-20241022``, an
id of mokku's own) reads as None, and no generation's rule applies to it.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Mapping, NamedTuple, Optional, Tuple

from mokku import errors

Version = Tuple[int, int]

FAMILIES = ("opus", "sonnet", "haiku", "fable")
_ID = re.compile(rf"claude-({'|'.join(FAMILIES)})-(\d{{1,2}})(?:-(\d{{1,2}}))?(?:-\d{{8}})?")

WIDE_WINDOW = (1_000_000, 128_000)  # (input, output) tokens of every model from 4.6 on
WIDE_FROM: Version = (4, 6)

# Each rule's first version per family (a family not named: the rule never applies).
# Adaptive thinking only, and the sampling parameters at their defaults only.
ADAPTIVE_ONLY: Dict[str, Version] = {"opus": (4, 7), "sonnet": (5, 0), "haiku": (5, 5), "fable": (0, 0)}
# Before those, from 4.5: temperature or top_p, not both.
ONE_SAMPLER: Dict[str, Version] = {"opus": (4, 5), "sonnet": (4, 5), "haiku": (4, 5)}
# Thinking cannot be turned off.
ALWAYS_THINKS: Dict[str, Version] = {"opus": (5, 5), "sonnet": (5, 5), "fable": (0, 0)}
# No tool_choice that forces a call.
NO_FORCED_TOOL: Dict[str, Version] = {"opus": (5, 5), "sonnet": (5, 5), "fable": (5, 1)}

SAMPLING_DEFAULTS: Dict[str, Optional[float]] = {"temperature": 1, "top_p": 1, "top_k": None}
USE_ADAPTIVE = 'Use "thinking.type.adaptive" and "output_config.effort" to control thinking behavior.'
USE_BETWEEN_TOOLS = 'Use "thinking.type.between_tools" for the lowest thinking setting.'


class Claude(NamedTuple):
    family: str
    version: Version

    def since(self, firsts: Dict[str, Version]) -> bool:
        """Whether this model is its family's first version in ``firsts`` or later (a family not in
        ``firsts``: never)."""
        first = firsts.get(self.family)
        return first is not None and self.version >= first


def parse(model_id: str) -> Optional[Claude]:
    """The family and version of a Claude model id, alias or dated; None for any other id."""
    found = _ID.fullmatch(model_id)
    if found is None:
        return None
    family, major, minor = found.groups()
    return Claude(family, (int(major), int(minor or 0)))


def window(model_id: str) -> Optional[Tuple[int, int]]:
    """(most input tokens, most output tokens) of a model from 4.6 on; None for the others."""
    model = parse(model_id)
    return WIDE_WINDOW if model is not None and model.version >= WIDE_FROM else None


def check_request(model_id: str, body: Mapping[str, Any], sampling: bool = True) -> None:
    """The 400s a Claude model answers for what its generation does not take, in the real API's
    words; none for an id that is not a Claude family's. ``sampling``: check the sampling
    parameters too (``count_tokens`` does not read them)."""
    model = parse(model_id)
    if model is None:
        return
    if sampling:
        _check_sampling(model, body)
    _check_thinking(model, body.get("thinking"))
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") in ("any", "tool") and model.since(NO_FORCED_TOOL):
        raise errors.invalid_request(
            'tool_choice: type "tool" and "any" are not supported for this model.', "tool_choice"
        )


def _check_sampling(model: Claude, body: Mapping[str, Any]) -> None:
    if model.since(ADAPTIVE_ONLY):
        for name, default in SAMPLING_DEFAULTS.items():
            if body.get(name) is not None and body[name] != default:
                raise errors.invalid_request(f"{name} is deprecated for this model.", name)
    elif model.since(ONE_SAMPLER) and body.get("temperature") is not None and body.get("top_p") is not None:
        raise errors.invalid_request(
            "`temperature` and `top_p` cannot both be specified for this model. Please use only one.",
            "temperature",
        )


def _check_thinking(model: Claude, thinking: Any) -> None:
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "enabled" and model.since(ADAPTIVE_ONLY):
        hint = USE_ADAPTIVE
    elif kind == "disabled" and model.since(ALWAYS_THINKS):
        hint = USE_BETWEEN_TOOLS if model.family == "sonnet" else USE_ADAPTIVE
    else:
        return
    raise errors.invalid_request(
        f'"thinking.type.{kind}" is not supported for this model. {hint}', "thinking"
    )
