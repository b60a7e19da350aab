"""Simulated provider behaviour: the fault table and the one place that decides, per request.

Three triggers reach the same table:

1. the model name: ``credit-error``, ``rate-limit-error``, ... (each fault's name in kebab case
   plus ``-error``), or any model with a suffix, ``gpt-4o@rate_limit``, ``gpt-4o@429``,
   ``gpt-4o@stream_drop:5`` (the response then names ``gpt-4o``);
2. the ``X-Mokku-Fault`` header (``rate_limit``, ``timeout:3``, ...), which wins over the model;
3. ``MOKKU_FAULTS`` probabilities, drawn from a generator seeded by ``MOKKU_SEED``.

Each generation endpoint calls ``Simulator.decide`` once, right after reading the model, before
it validates the rest (a provider's gateway answers quota and rate limits first). Error faults
raise there; the returned ``Behaviour`` carries the rest (pace, content filter, broken streams)
to the reply decision and the stream pipeline.
"""

from __future__ import annotations

import random
import threading
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

from mokku import config, errors, telemetry
from mokku.credentials import bearer_key
from mokku.server import connection
from mokku.server.http import Request
from mokku.simulation.latency import Pace, read_pace

FAULT_HEADER = "X-Mokku-Fault"

# What an error fault raises, from (the model answered as, the request's API key, the fault's argument).
MakeError = Callable[[str, str, int], errors.APIError]


class Fault(NamedTuple):
    name: str
    status_alias: Optional[str] = None  # the HTTP status usable as a model suffix (``gpt-4o@429``)
    arg: Optional[Tuple[str, int, int]] = None  # (what the ``:N`` argument means, default, maximum)
    error: Optional[MakeError] = None  # raised before any output


FAULTS: Dict[str, Fault] = {
    fault.name: fault
    for fault in (
        Fault("credit", "402", error=lambda model, key, arg: errors.insufficient_quota(402)),
        Fault("quota", error=lambda model, key, arg: errors.insufficient_quota(429)),
        Fault("rate_limit", "429", ("retry-after in ms", 1000, 600_000), lambda model, key, arg: errors.rate_limited(model, "requests", 3, 3, 1, arg)),
        Fault("rate_limit_tokens", None, ("retry-after in ms", 1000, 600_000), lambda model, key, arg: errors.rate_limited(model, "tokens", 30000, 30000, 1000, arg)),
        Fault("invalid_api_key", "401", error=lambda model, key, arg: errors.invalid_api_key(key or "sk-mokku-simulated")),
        Fault("permission", "403", error=lambda model, key, arg: errors.unsupported_region()),
        Fault("context_length"),  # raised by the context check, with the request's own numbers
        Fault("server_error", "500", error=lambda model, key, arg: errors.simulated_server_error()),
        Fault("overloaded", "503", error=lambda model, key, arg: errors.overloaded()),
        Fault("timeout", None, ("seconds", 30, 600)),
        Fault("content_filter"),
        Fault("prompt_filter", error=lambda model, key, arg: errors.invalid_prompt()),
        Fault("stream_drop", None, ("chunks", 3, 1_000_000)),
        Fault("stream_error", None, ("chunks", 3, 1_000_000)),
        Fault("stream_truncated", None, ("chunks", 3, 1_000_000)),
        Fault("stream_stall", None, ("seconds", 30, 600)),
        Fault("stream_malformed", None, ("chunk", 3, 1_000_000)),
    )
}  # fmt: skip

STREAM_FAULTS = frozenset(name for name in FAULTS if name.startswith("stream_"))
_BY_STATUS = {fault.status_alias: fault.name for fault in FAULTS.values() if fault.status_alias}
_BY_STATUS["529"] = "overloaded"  # Anthropic's status for it
STALL_AFTER_EVENTS = 3


def model_name(fault: str) -> str:
    """The simulation model that triggers ``fault``: ``rate_limit`` -> ``rate-limit-error``."""
    kebab = fault.replace("_", "-")
    return kebab if kebab.endswith("error") else kebab + "-error"


SIMULATION_MODELS: Tuple[str, ...] = tuple(model_name(name) for name in FAULTS)
_BY_MODEL = {model_name(name): name for name in FAULTS}


class Chosen(NamedTuple):
    name: str
    arg: int  # the ``:N`` argument, or the fault's default (0 when it takes none)


def _default(fault: Fault) -> int:
    return fault.arg[1] if fault.arg else 0


def parse_spec(spec: str) -> Chosen:
    """``rate_limit``, ``rate-limit:1500`` or ``429`` -> the fault and its argument; ValueError if unknown."""
    name, _, raw_arg = spec.strip().partition(":")
    name = _BY_STATUS.get(name, name.replace("-", "_").lower())
    fault = FAULTS.get(name)
    if fault is None:
        raise ValueError(f"Unknown fault {spec.strip()!r}. Known faults: {', '.join(FAULTS)}.")
    if not raw_arg:
        return Chosen(name, _default(fault))
    if fault.arg is None:
        raise BadArgument(f"The fault {name!r} takes no argument.")
    meaning, _, maximum = fault.arg
    if not (raw_arg.isascii() and raw_arg.isdigit()) or int(raw_arg) > maximum:
        raise BadArgument(f"The fault {name!r} takes {meaning} from 0 to {maximum}, got {raw_arg!r}.")
    return Chosen(name, int(raw_arg))


class BadArgument(ValueError):
    """A fault named with an argument it cannot take."""


def split_model(model: str) -> Tuple[str, Optional[Chosen]]:
    """The model to answer as, and the fault its name asks for (if any)."""
    name = _BY_MODEL.get(model)
    if name is not None:
        return model, Chosen(name, _default(FAULTS[name]))
    base, at, suffix = model.rpartition("@")
    if at and base:
        try:
            return base, parse_spec(suffix)
        except BadArgument as exc:  # a fault named, but mistyped: said, not quietly turned off
            raise errors.invalid_request(str(exc), "model") from None
        except ValueError:
            pass  # an "@" that names no fault is part of the model id
    return model, None


class Behaviour:
    """What this request does besides answering normally: the model it answers as, its fault, its pace."""

    __slots__ = ("fault", "load", "model", "pace")

    def __init__(self, model: str, fault: Optional[Chosen], pace: Pace) -> None:
        self.model = model
        self.fault = fault
        self.pace = pace
        self.load = 1.0  # how much slower than alone it runs (simulation.load)

    def is_(self, name: str) -> bool:
        return self.fault is not None and self.fault.name == name

    @property
    def stream_fault(self) -> Optional[Tuple[str, int, int]]:
        """(fault, the event it strikes at, its argument), for the stream pipeline; None for a whole stream."""
        fault = self.fault
        if fault is None or fault.name not in STREAM_FAULTS:
            return None
        at = STALL_AFTER_EVENTS if fault.name == "stream_stall" else fault.arg
        return fault.name, at, fault.arg


def chance_faults(settings: config.Settings) -> List[Tuple[Chosen, float]]:
    """``MOKKU_FAULTS``' faults with their chances; checked before the server starts, so that a fault
    it does not know stops it with a message, not with a traceback from every worker."""
    try:
        return [(parse_spec(spec), rate) for spec, rate in settings.fault_rates]
    except ValueError as exc:
        raise config.ConfigError(f"MOKKU_FAULTS: {exc}") from None


class Simulator:
    """Decides each request's behaviour from its model, its headers and the server's settings."""

    def __init__(self, settings: config.Settings) -> None:
        self._rates = chance_faults(settings)
        self._random = random.Random(settings.seed)
        self._lock = threading.Lock()
        self._settings = settings

    def _draw(self) -> Optional[Chosen]:
        if not self._rates:
            return None
        with self._lock:
            point = self._random.random()
        for chosen, rate in self._rates:
            if point < rate:
                return chosen
            point -= rate
        return None

    def decide(self, request: Request, model: str) -> Behaviour:
        """Choose the request's fault (header, then model name, then chance) and its pace.

        Raises the fault's error when it is one; waits first when it is ``timeout``.
        """
        model, chosen = split_model(model)
        header = request.header(FAULT_HEADER)
        if header:
            try:
                chosen = parse_spec(header)
            except ValueError as exc:
                raise errors.invalid_request(str(exc), FAULT_HEADER) from None
        elif chosen is None:
            chosen = self._draw()
        behaviour = Behaviour(model, chosen, read_pace(request, self._settings))
        if chosen is not None:
            _fire(request, behaviour.model, chosen)
        return behaviour

    def apply_script(self, request: Request, behaviour: Behaviour, reply: Dict[str, Any]) -> None:
        """A scripted reply's latency and fault (a fault wins over one chosen by name or chance)."""
        latency = reply.get("latency") or {}
        if latency.get("ttft_ms") is not None:
            behaviour.pace.ttft = latency["ttft_ms"] / 1000
        if latency.get("token_ms") is not None:
            behaviour.pace.token_delay = latency["token_ms"] / 1000
        if reply.get("fault"):
            behaviour.fault = parse_spec(reply["fault"])
            _fire(request, behaviour.model, behaviour.fault)


def _fire(request: Request, model: str, chosen: Chosen) -> None:
    """Note the fault everywhere it is reported; raise it when it is an error, wait when a timeout."""
    telemetry.record_fault(request.span, chosen.name)
    request.fault = chosen.name
    request.headers_out[:] = [h for h in request.headers_out if h[0] != "x-mokku-fault"]
    request.headers_out.append(("x-mokku-fault", chosen.name))
    make_error = FAULTS[chosen.name].error
    if chosen.name == "prompt_filter" and request.dialect.refuses_flagged_prompts:
        make_error = None  # answered as ``content_filter`` is
    if make_error is not None:
        raise make_error(model, bearer_key(request.header("Authorization")), chosen.arg)
    if chosen.name == "timeout":
        connection.hold(float(chosen.arg), request.environ, "a simulated timeout")
