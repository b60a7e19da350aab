"""Simulated provider behaviour: the fault table and the one place that decides, per request.

Three triggers reach the same table:

1. the model name: ``credit-error``, ``rate-limit-error``, ... (each fault's name in kebab case
   plus ``-error``), or any model with a suffix, ``gpt-4o@rate_limit``, ``gpt-4o@429``,
   ``gpt-4o@stream_drop:5`` (the response then names ``gpt-4o``);
2. the ``X-Mokku-Fault`` header (``rate_limit``, ``timeout:3``, ...), which wins over the model;
3. ``MOKKU_FAULTS`` probabilities, drawn from a generator seeded by ``MOKKU_SEED``.

Each generation endpoint calls ``Simulator.decide`` once, right after reading the model. Error
faults raise there, before any output; the returned ``Behaviour`` carries the rest (latency,
content filter, broken streams) to the code that produces the output.
"""

from __future__ import annotations

import math
import random
import threading
import time
from typing import Any, Callable, Dict, Iterator, NamedTuple, Optional, Tuple

from mokku import config, errors, telemetry
from mokku.server import connection, stream
from mokku.server.http import Request

# Header names, lower-cased as WSGI environ keys expect them.
FAULT_HEADER = "X-Mokku-Fault"
LATENCY_HEADER = "X-Mokku-Latency-Ms"
TOKEN_HEADER = "X-Mokku-Token-Ms"
RATE_HEADER = "X-Mokku-Tokens-Per-Second"
JITTER_HEADER = "X-Mokku-Jitter"


class Fault(NamedTuple):
    name: str
    summary: str
    status_alias: Optional[str] = None  # the HTTP status usable as a model suffix (``gpt-4o@429``)
    arg: Optional[Tuple[str, int, int]] = None  # (what the ``:N`` argument means, default, maximum)


FAULTS: Dict[str, Fault] = {
    fault.name: fault
    for fault in (
        Fault("credit", "402 insufficient_quota (the seed's form)", "402"),
        Fault("quota", "429 insufficient_quota (the real API's form)"),
        Fault("rate_limit", "429 rate_limit_exceeded on requests, with retry-after", "429", ("retry-after in ms", 1000, 600_000)),
        Fault("rate_limit_tokens", "429 rate_limit_exceeded on tokens, with retry-after", None, ("retry-after in ms", 1000, 600_000)),
        Fault("invalid_api_key", "401 invalid_api_key, the key masked", "401"),
        Fault("permission", "403 unsupported_country_region_territory", "403"),
        Fault("context_length", "400 context_length_exceeded, param messages"),
        Fault("server_error", "500 server_error", "500"),
        Fault("overloaded", "503 server_error: the engine is overloaded", "503"),
        Fault("timeout", "the response starts only after N seconds", None, ("seconds", 30, 600)),
        Fault("content_filter", "200 with finish_reason content_filter and no content"),
        Fault("stream_drop", "the connection is reset after N chunks", None, ("chunks", 3, 1_000_000)),
        Fault("stream_error", "an error event after N chunks, then the stream ends", None, ("chunks", 3, 1_000_000)),
        Fault("stream_truncated", "the stream ends after N chunks without [DONE]", None, ("chunks", 3, 1_000_000)),
        Fault("stream_stall", "the stream stalls N seconds after 3 chunks, then goes on", None, ("seconds", 30, 600)),
        Fault("stream_malformed", "chunk N (from 0) is malformed JSON", None, ("chunk", 3, 1_000_000)),
    )
}  # fmt: skip

STREAM_FAULTS = frozenset(name for name in FAULTS if name.startswith("stream_"))
_BY_STATUS = {fault.status_alias: fault.name for fault in FAULTS.values() if fault.status_alias}
STALL_AFTER_CHUNKS = 3


def model_name(fault: str) -> str:
    """The simulation model that triggers ``fault``: ``rate_limit`` -> ``rate-limit-error``."""
    kebab = fault.replace("_", "-")
    return kebab if kebab.endswith("error") else kebab + "-error"


SIMULATION_MODELS: Tuple[str, ...] = tuple(model_name(name) for name in FAULTS)
_BY_MODEL = {model_name(name): name for name in FAULTS}


class Chosen(NamedTuple):
    name: str
    arg: Optional[int]
    source: str  # "model", "header" or "random"


def parse_spec(spec: str) -> Tuple[str, Optional[int]]:
    """``rate_limit``, ``rate-limit:1500`` or ``429`` -> (fault name, argument); ValueError if unknown."""
    name, _, raw_arg = spec.strip().partition(":")
    name = _BY_STATUS.get(name, name.replace("-", "_").lower())
    fault = FAULTS.get(name)
    if fault is None:
        raise ValueError(f"Unknown fault {spec.strip()!r}. Known faults: {', '.join(FAULTS)}.")
    if not raw_arg:
        return name, fault.arg[1] if fault.arg else None
    if fault.arg is None:
        raise ValueError(f"The fault {name!r} takes no argument.")
    meaning, _, maximum = fault.arg
    if not raw_arg.isdigit() or int(raw_arg) > maximum:
        raise ValueError(f"The fault {name!r} takes {meaning} from 0 to {maximum}, got {raw_arg!r}.")
    return name, int(raw_arg)


def split_model(model: str) -> Tuple[str, Optional[Tuple[str, Optional[int]]]]:
    """The model to answer as, and the fault its name asks for (if any)."""
    name = _BY_MODEL.get(model)
    if name is not None:
        return model, (name, FAULTS[name].arg[1] if FAULTS[name].arg else None)
    base, at, suffix = model.rpartition("@")
    if at and base:
        try:
            return base, parse_spec(suffix)
        except ValueError:
            pass  # an "@" that names no fault is part of the model id
    return model, None


class Behaviour:
    """What this request will do besides answering normally: its fault and its pace."""

    __slots__ = ("environ", "fault", "jitter", "model", "next_token_at", "random", "token_delay", "ttft")

    def __init__(
        self,
        environ: Dict[str, Any],
        model: str,
        fault: Optional[Chosen],
        ttft: float,
        token_delay: float,
        jitter: float,
    ) -> None:
        self.environ = environ
        self.model = model
        self.fault = fault
        self.ttft, self.token_delay, self.jitter = ttft, token_delay, jitter
        self.random = random.random
        self.next_token_at = 0.0

    def is_(self, name: str) -> bool:
        return self.fault is not None and self.fault.name == name

    @property
    def stream_fault(self) -> Optional[Chosen]:
        return self.fault if self.fault is not None and self.fault.name in STREAM_FAULTS else None

    def _jittered(self, seconds: float) -> float:
        if not self.jitter or not seconds:
            return seconds
        return seconds * (1 + self.jitter * (2 * self.random() - 1))

    def pause(self, seconds: float) -> None:
        """Wait inside a stream; a client that hangs up meanwhile ends the stream."""
        if seconds > 0 and not connection.wait(seconds, self.environ):
            raise connection.ConnectionClosed("client disconnected while the stream waited")

    def before_first_token(self) -> None:
        self.pause(self._jittered(self.ttft))

    def between_tokens(self) -> None:
        """Tokens keep to a schedule, one delay after the previous token was due, so the time spent
        writing chunks does not add up over a long stream; after a longer hold-up (a stall) the
        schedule starts again rather than bursting to catch up."""
        if not self.token_delay:
            return
        now = time.monotonic()
        due = self.next_token_at if now - self.next_token_at <= self.token_delay else now
        self.next_token_at = due + self._jittered(self.token_delay)
        self.pause(self.next_token_at - now)

    def shape_stream(self, events: Iterator[bytes]) -> Iterator[bytes]:
        """The stream as this request should see it: first token late, maybe broken on purpose."""
        if self.stream_fault is None and not self.ttft:
            return events  # nothing to change: one generator layer fewer per event
        return self._shaped(events)

    def _shaped(self, events: Iterator[bytes]) -> Iterator[bytes]:
        fault = self.stream_fault
        at = -1
        if fault is not None:
            at = STALL_AFTER_CHUNKS if fault.name == "stream_stall" else int(fault.arg or 0)
        try:
            for index, chunk in enumerate(events):
                if index == 0:
                    self.before_first_token()
                if fault is not None and (index == at or (index < at and chunk == stream.DONE)):
                    at = -1  # once
                    if fault.name == "stream_drop":
                        connection.drop_connection(self.environ)
                    elif fault.name == "stream_error":
                        yield stream.event(simulated_server_error().to_dict())
                        return
                    elif fault.name == "stream_truncated":
                        return
                    elif fault.name == "stream_stall":
                        self.pause(float(fault.arg or 0))
                    elif fault.name == "stream_malformed":
                        chunk = chunk[: len(chunk) // 2] + b"\n\n"
                yield chunk
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()

    def before_whole_response(self, tokens: int) -> None:
        """A non-streamed answer arrives when a stream of it would have ended."""
        connection.wait(self._jittered(self.ttft) + tokens * self._jittered(self.token_delay), self.environ)


class Simulator:
    """Decides each request's behaviour from its model, its headers and the server's settings."""

    def __init__(self, settings: config.Settings) -> None:
        try:
            self._rates = [(parse_spec(spec), rate) for spec, rate in settings.fault_rates]
        except ValueError as exc:
            raise config.ConfigError(f"MOKKU_FAULTS: {exc}") from None
        self._random = random.Random(settings.seed)
        self._lock = threading.Lock()
        self._ttft = settings.ttft_ms / 1000
        self._token_delay = settings.token_ms / 1000
        self._jitter = settings.jitter

    def _draw(self) -> Optional[Tuple[str, Optional[int]]]:
        if not self._rates:
            return None
        with self._lock:
            point = self._random.random()
        for spec, rate in self._rates:
            if point < rate:
                return spec
            point -= rate
        return None

    def decide(self, request: Request, model: str) -> Behaviour:
        """Choose the request's fault (header, then model name, then chance) and its pace.

        Raises the fault's error when it is one; waits first when it is ``timeout``.
        """
        model, from_model = split_model(model)
        chosen: Optional[Chosen] = None
        header = request.header(FAULT_HEADER)
        if header:
            try:
                chosen = Chosen(*parse_spec(header), "header")
            except ValueError as exc:
                raise errors.invalid_request(str(exc), FAULT_HEADER) from None
        elif from_model is not None:
            chosen = Chosen(*from_model, "model")
        else:
            drawn = self._draw()
            chosen = Chosen(*drawn, "random") if drawn else None
        behaviour = Behaviour(
            request.environ,
            model,
            chosen,
            _header_ms(request, LATENCY_HEADER, self._ttft),
            _token_delay(request, self._token_delay),
            _header_number(request, JITTER_HEADER, self._jitter, 1.0),
        )
        if chosen is not None:
            _fire(request, behaviour, chosen)
        return behaviour

    def apply_script(self, request: Request, behaviour: Behaviour, reply: Dict[str, Any]) -> None:
        """A scripted reply's latency and fault (a fault wins over one chosen by name or chance)."""
        latency = reply.get("latency") or {}
        if latency.get("ttft_ms") is not None:
            behaviour.ttft = latency["ttft_ms"] / 1000
        if latency.get("token_ms") is not None:
            behaviour.token_delay = latency["token_ms"] / 1000
        if reply.get("fault"):
            behaviour.fault = Chosen(*parse_spec(reply["fault"]), "script")
            _fire(request, behaviour, behaviour.fault)


def _fire(request: Request, behaviour: Behaviour, chosen: Chosen) -> None:
    """Note the fault everywhere it is reported; raise it when it is an error, wait when a timeout."""
    telemetry.record_fault(request.span, chosen.name)
    request.environ["mokku.fault"] = chosen.name
    request.headers_out[:] = [h for h in request.headers_out if h[0] != "x-mokku-fault"]
    request.headers_out.append(("x-mokku-fault", chosen.name))
    make_error = _ERRORS.get(chosen.name)
    if make_error is not None:
        raise make_error(request, behaviour.model, chosen.arg)
    if chosen.name == "timeout":
        connection.wait(float(chosen.arg or 0), request.environ)


def _header_number(request: Request, name: str, default: float, maximum: float) -> float:
    raw = request.header(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= maximum or math.isnan(value):
        raise errors.invalid_request(
            f"The {name} header must be a number from 0 to {maximum:g}, got {raw!r}.", name
        )
    return value


def _header_ms(request: Request, name: str, default: float) -> float:
    return _header_number(request, name, default * 1000, 600_000) / 1000


def _token_delay(request: Request, default: float) -> float:
    if request.header(RATE_HEADER):
        rate = _header_number(request, RATE_HEADER, 0, 1_000_000)
        if rate <= 0:
            raise errors.invalid_request(f"The {RATE_HEADER} header must be above 0.", RATE_HEADER)
        return 1 / rate
    return _header_ms(request, TOKEN_HEADER, default)


# The error faults, worded as the real API words them.


def simulated_server_error() -> errors.APIError:
    return errors.APIError(
        500,
        "The server had an error processing your request. Sorry about that! You can retry your request, "
        "or contact us through our help center at help.openai.com if you keep seeing this error.",
        "server_error",
    )


def _retry_headers(retry_ms: int, kind: str, limit: int) -> Tuple[Tuple[str, str], ...]:
    return (
        ("retry-after", str(max(1, math.ceil(retry_ms / 1000)))),
        ("retry-after-ms", str(retry_ms)),
        (f"x-ratelimit-limit-{kind}", str(limit)),
        (f"x-ratelimit-remaining-{kind}", "0"),
        (f"x-ratelimit-reset-{kind}", format_duration(retry_ms / 1000)),
    )


def rate_limited(model: str, kind: str, limit: int, requested: int, retry_ms: int) -> errors.APIError:
    """429 ``rate_limit_exceeded`` on requests (RPM) or tokens (TPM), with the retry headers."""
    unit = "requests per min (RPM)" if kind == "requests" else "tokens per min (TPM)"
    return errors.APIError(
        429,
        f"Rate limit reached for {model} in organization org-mokku on {unit}: Limit {limit}, "
        f"Used {limit}, Requested {requested}. Please try again in {format_duration(retry_ms / 1000)}. "
        "Visit https://platform.openai.com/account/rate-limits to learn more.",
        kind,
        code="rate_limit_exceeded",
        headers=_retry_headers(retry_ms, kind, limit),
    )


def mask_key(key: str) -> str:
    """The key as the real API shows it in errors: its start and its last 4 characters."""
    if len(key) < 12:
        return "*" * len(key)  # too short to show any of it safely
    return key[:6] + "*" * min(len(key) - 10, 40) + key[-4:]


def invalid_api_key(key: str) -> errors.APIError:
    if not key:
        return errors.APIError(
            401,
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank "
            "username) if you're accessing the API from your browser and are prompted for a username. "
            "You can obtain an API key from https://platform.openai.com/account/api-keys.",
        )
    return errors.APIError(
        401,
        f"Incorrect API key provided: {mask_key(key)}. "
        "You can find your API key at https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    )


def bearer_key(request: Request) -> str:
    scheme, _, key = request.header("Authorization").strip().partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""


_ERRORS: Dict[str, Callable[[Request, str, Optional[int]], errors.APIError]] = {
    "credit": lambda request, model, arg: errors.insufficient_quota(402),
    "quota": lambda request, model, arg: errors.insufficient_quota(429),
    "rate_limit": lambda request, model, arg: rate_limited(model, "requests", 3, 1, arg or 0),
    "rate_limit_tokens": lambda request, model, arg: rate_limited(model, "tokens", 30000, 1000, arg or 0),
    "invalid_api_key": lambda request, model, arg: invalid_api_key(
        bearer_key(request) or "sk-mokku-simulated"
    ),
    "permission": lambda request, model, arg: errors.APIError(
        403,
        "Country, region, or territory not supported",
        "request_forbidden",
        code="unsupported_country_region_territory",
    ),
    "server_error": lambda request, model, arg: simulated_server_error(),
    "overloaded": lambda request, model, arg: errors.APIError(
        503, "The engine is currently overloaded, please try again later.", "server_error"
    ),
}


def format_duration(seconds: float) -> str:
    """Durations as the real API's rate-limit headers write them: ``120ms``, ``20s``, ``6m0s``."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    rest_text = f"{rest:.3f}".rstrip("0").rstrip(".")
    return f"{int(minutes)}m{rest_text}s" if minutes else f"{rest_text}s"
