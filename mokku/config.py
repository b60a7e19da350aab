"""Settings, read once from ``MOKKU_*`` environment variables.

The app reads only the environment so that ``gunicorn mokku.wsgi:app`` and
``python -m mokku`` behave alike; the CLI writes its flags into the
environment before the app is imported.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_THREADS = 64
DEFAULT_WORKERS = 2
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_JOURNAL_BYTES = 64 * 1024 * 1024
DEFAULT_JOURNAL_BODY_BYTES = 64 * 1024


class ConfigError(ValueError):
    """A ``MOKKU_*`` variable holds a value that cannot be used."""


@dataclass(frozen=True)
class Settings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    threads: int = DEFAULT_THREADS
    workers: int = DEFAULT_WORKERS
    log_level: str = "INFO"
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    extra_models: Tuple[str, ...] = field(default_factory=tuple)
    strict: bool = False
    # Simulated faults drawn at random: (fault spec, probability), e.g. ("rate_limit", 0.05).
    fault_rates: Tuple[Tuple[str, float], ...] = ()
    seed: Optional[int] = None
    # Latency: time to first token, delay between tokens (ms), and jitter (a fraction, 0 to 1).
    ttft_ms: float = 0.0
    token_ms: float = 0.0
    jitter: float = 0.0
    # "real", a number of tokens, or "" (off).
    context_window: str = ""
    rpm: int = 0
    tpm: int = 0
    rate_window: int = 60  # seconds the rate limits refill over
    api_keys: Tuple[str, ...] = field(default=(), repr=False)  # never shown in logs
    echo_prefix: str = ""
    # On by default: entries are written in batches off the request path (bench/README.md, W7).
    journal: bool = True
    journal_size: int = 10_000
    journal_bytes: int = DEFAULT_JOURNAL_BYTES  # the journal's entries, in all
    journal_body_bytes: int = DEFAULT_JOURNAL_BODY_BYTES  # a body stored whole up to this size
    state_path: str = ""
    # Prometheus metrics at /metrics (mokku.metrics): "" off, "mokku" its own series, "vllm" also
    # vLLM's names; the vLLM gauges' model_name.
    metrics: str = ""
    metrics_model: str = "mokku"
    # A loaded server (mokku.simulation.load): generations running at once (0: no limit), waiting
    # beyond them, the status of a full queue, the slowdown when all run, prefill ms per prompt token.
    max_running: int = 0
    max_waiting: int = 1024
    queue_full: int = 429
    load_factor: float = 1.0
    prefill_ms: float = 0.0
    prefix_cache: int = 0  # blocks of a simulated prefix cache (simulation.prefix); 0: off
    state_url: str = ""  # Redis (MOKKU_STATE=redis://...): what every replica shares
    state_prefix: str = "mokku:"
    admin: bool = True
    # MOKKU_ADMIN=open: serve the admin surface without a token on an address others reach.
    admin_open: bool = False
    admin_token: str = field(default="", repr=False)  # never shown in logs
    scenarios_file: str = ""
    # What one request may produce: completion tokens across choices and prompts, each logprob
    # alternative counted as a token (see docs/limits.md).
    max_output_tokens: int = 262_144
    # Record and replay (mokku.record): the mode, where to forward, where cassettes live.
    mode: str = ""
    upstream: str = ""
    cassettes: str = ""
    replay_speed: float = 1.0
    replay_miss_status: int = 404
    redact_fields: Tuple[str, ...] = ()
    redact_patterns: Tuple[str, ...] = ()
    match_ignore: Tuple[str, ...] = ("user", "metadata", "stream_options")


SETTINGS_FILE_BYTES = 16 * 1024 * 1024  # MOKKU_MODELS_FILE, MOKKU_SCENARIOS


def read_file(path: str, name: str, limit: int = SETTINGS_FILE_BYTES) -> str:
    """A settings file's text, read no further than ``limit`` bytes: a device (``/dev/zero``) or a
    huge file is refused, never read for ever at start-up."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise ConfigError(f"{name} cannot be read: {exc}") from None
    if len(data) > limit:
        raise ConfigError(f"{name} is larger than {limit} bytes: {path}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{name} is not UTF-8 text: {path}") from None


def _int(env: Mapping[str, str], name: str, default: Any, minimum: int, maximum: Optional[int] = None) -> Any:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {maximum}, got {value}")
    return value


def _number(env: Mapping[str, str], name: str, default: float, minimum: float, maximum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be between {minimum:g} and {maximum:g}, got {raw}")
    return value


def _token_ms(env: Mapping[str, str]) -> float:
    """``MOKKU_TOKEN_MS``, or the same delay given as ``MOKKU_TOKENS_PER_SECOND``."""
    if env.get("MOKKU_TOKENS_PER_SECOND", "").strip():
        if env.get("MOKKU_TOKEN_MS", "").strip():
            raise ConfigError("set MOKKU_TOKEN_MS or MOKKU_TOKENS_PER_SECOND, not both")
        return 1000.0 / _number(env, "MOKKU_TOKENS_PER_SECOND", 1.0, 0.001, 1_000_000.0)
    return _number(env, "MOKKU_TOKEN_MS", 0.0, 0.0, 600_000.0)


def _fault_rates(env: Mapping[str, str]) -> Tuple[Tuple[str, float], ...]:
    """``MOKKU_FAULTS="rate_limit=0.05,server_error=0.01"``: fault specs and their probabilities."""
    rates = []
    for part in env.get("MOKKU_FAULTS", "").split(","):
        if not part.strip():
            continue
        spec, sep, raw = part.strip().rpartition("=")
        try:
            probability = float(raw)
        except ValueError:
            probability = -1.0
        if not sep or not spec.strip() or not 0.0 <= probability <= 1.0:
            raise ConfigError(f"MOKKU_FAULTS entries are fault=probability (0 to 1), got {part.strip()!r}")
        rates.append((spec.strip(), probability))
    if sum(p for _, p in rates) > 1.0:
        raise ConfigError("MOKKU_FAULTS probabilities add up to more than 1")
    return tuple(rates)


def _context_window(env: Mapping[str, str]) -> str:
    raw = env.get("MOKKU_CONTEXT_WINDOW", "").strip().lower()
    if raw in ("", "off", "0"):
        return ""
    if raw == "real" or (raw.isdigit() and int(raw) > 0):
        return raw
    raise ConfigError(f"MOKKU_CONTEXT_WINDOW must be 'real' or a number of tokens, got {raw!r}")


def _flag(env: Mapping[str, str], name: str, default: bool = False, other: str = "") -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name} must be 1 or 0 (true/false){other}, got {raw!r}")


def _admin_open(env: Mapping[str, str]) -> bool:
    """``MOKKU_ADMIN=open``: on, and without a token even where other machines reach it."""
    return env.get("MOKKU_ADMIN", "").strip().lower() == "open"


def _log_level(env: Mapping[str, str]) -> str:
    level = env.get("MOKKU_LOG_LEVEL", "").strip().upper() or "INFO"
    if not isinstance(logging.getLevelName(level), int):
        raise ConfigError(f"MOKKU_LOG_LEVEL must be a logging level name, got {level!r}")
    return level


def _api_keys(env: Mapping[str, str]) -> Tuple[str, ...]:
    """``MOKKU_API_KEY``'s keys. Set but naming none (``","``, spaces) would take every key: refused."""
    raw = env.get("MOKKU_API_KEY", "")
    keys = tuple(key.strip() for key in raw.split(",") if key.strip())
    if raw and not keys:
        raise ConfigError("MOKKU_API_KEY names no key: give one or more, comma-separated, or unset it")
    return keys


def _extra_models(env: Mapping[str, str]) -> Tuple[str, ...]:
    """Model ids from ``MOKKU_MODELS`` (comma list) and ``MOKKU_MODELS_FILE`` (one per line)."""
    ids = [part.strip() for part in env.get("MOKKU_MODELS", "").split(",")]
    path = env.get("MOKKU_MODELS_FILE", "").strip()
    if path:
        lines = read_file(path, "MOKKU_MODELS_FILE").splitlines()
        ids += [line.split("#", 1)[0].strip() for line in lines]
    return tuple(dict.fromkeys(model for model in ids if model))


def load(env: Optional[Mapping[str, str]] = None) -> Settings:
    """Build settings from the environment (``os.environ`` by default)."""
    env = os.environ if env is None else env
    return Settings(
        host=env.get("MOKKU_HOST", "").strip() or DEFAULT_HOST,
        port=_int(env, "MOKKU_PORT", DEFAULT_PORT, 0, 65535),
        threads=_int(env, "MOKKU_THREADS", DEFAULT_THREADS, 1),
        workers=_int(env, "MOKKU_WORKERS", DEFAULT_WORKERS, 1),
        log_level=_log_level(env),
        max_body_bytes=_int(env, "MOKKU_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, 1),
        extra_models=_extra_models(env),
        strict=_flag(env, "MOKKU_STRICT"),
        fault_rates=_fault_rates(env),
        seed=_int(env, "MOKKU_SEED", None, 0) if env.get("MOKKU_SEED", "").strip() else None,
        ttft_ms=_number(env, "MOKKU_TTFT_MS", 0.0, 0.0, 600_000.0),
        token_ms=_token_ms(env),
        jitter=_number(env, "MOKKU_JITTER", 0.0, 0.0, 1.0),
        context_window=_context_window(env),
        rpm=_int(env, "MOKKU_RPM", 0, 0),
        tpm=_int(env, "MOKKU_TPM", 0, 0),
        rate_window=_int(env, "MOKKU_RATE_WINDOW", 60, 1),
        api_keys=_api_keys(env),
        echo_prefix=env.get("MOKKU_ECHO_PREFIX", ""),
        journal=_flag(env, "MOKKU_JOURNAL", True),
        journal_size=_int(env, "MOKKU_JOURNAL_SIZE", 10_000, 1),
        journal_bytes=_int(env, "MOKKU_JOURNAL_BYTES", DEFAULT_JOURNAL_BYTES, 1),
        journal_body_bytes=_int(env, "MOKKU_JOURNAL_BODY_BYTES", DEFAULT_JOURNAL_BODY_BYTES, 0),
        **_state(env),
        metrics=_metrics(env),
        metrics_model=_metrics_model(env),
        **_load(env),
        admin=_admin_open(env) or _flag(env, "MOKKU_ADMIN", True, " or open"),
        admin_open=_admin_open(env),
        admin_token=env.get("MOKKU_ADMIN_TOKEN", "").strip(),
        scenarios_file=env.get("MOKKU_SCENARIOS", "").strip(),
        max_output_tokens=_int(env, "MOKKU_MAX_OUTPUT_TOKENS", 262_144, 1),
        **_recording(env),
    )


RECORD_MODES = ("record", "replay", "replay_or_record", "passthrough")
NEEDS_UPSTREAM = ("record", "replay_or_record", "passthrough")  # modes that forward
NEEDS_CASSETTES = ("record", "replay", "replay_or_record")  # modes that keep or read recordings


def _listed(env: Mapping[str, str], name: str, separator: str = ",") -> Tuple[str, ...]:
    return tuple(part.strip() for part in env.get(name, "").split(separator) if part.strip())


def _metrics(env: Mapping[str, str]) -> str:
    """``MOKKU_METRICS``: off, ``1`` (mokku's series) or ``vllm`` (vLLM's names too)."""
    raw = env.get("MOKKU_METRICS", "").strip().lower()
    if raw == "vllm":
        return "vllm"
    try:
        return "mokku" if _flag(env, "MOKKU_METRICS") else ""
    except ConfigError:
        raise ConfigError(f"MOKKU_METRICS must be 1, 0 or vllm, got {raw!r}") from None


def _load(env: Mapping[str, str]) -> Dict[str, Any]:
    running = _int(env, "MOKKU_MAX_RUNNING", 0, 0)
    waiting = _int(env, "MOKKU_MAX_WAITING", 1024, 0)
    if running > 100_000 or waiting > 100_000:
        raise ConfigError("MOKKU_MAX_RUNNING and MOKKU_MAX_WAITING must be at most 100000")
    prefix_blocks = _int(env, "MOKKU_PREFIX_CACHE", 0, 0)
    if prefix_blocks > 1_000_000:
        raise ConfigError("MOKKU_PREFIX_CACHE must be at most 1000000 blocks")
    full = env.get("MOKKU_QUEUE_FULL", "").strip() or "429"
    if full not in ("429", "503"):
        raise ConfigError(f"MOKKU_QUEUE_FULL must be 429 or 503, got {full!r}")
    factor = _number(env, "MOKKU_LOAD_FACTOR", 1.0, 1.0, 1000.0)
    if factor != 1.0 and running < 2:
        raise ConfigError(
            "MOKKU_LOAD_FACTOR needs MOKKU_MAX_RUNNING of 2 or more: the slowdown is reached when all run"
        )
    return {
        "max_running": running,
        "max_waiting": waiting,
        "queue_full": int(full),
        "load_factor": factor,
        "prefill_ms": _number(env, "MOKKU_PREFILL_MS", 0.0, 0.0, 10_000.0),
        "prefix_cache": prefix_blocks,
    }


def _metrics_model(env: Mapping[str, str]) -> str:
    name = env.get("MOKKU_METRICS_MODEL", "").strip() or "mokku"
    if len(name) > 256:
        raise ConfigError("MOKKU_METRICS_MODEL must be at most 256 characters")
    return name


def _state(env: Mapping[str, str]) -> Dict[str, Any]:
    """``MOKKU_STATE``: a state file's path, or a Redis URL."""
    state = env.get("MOKKU_STATE", "").strip()
    prefix = env.get("MOKKU_STATE_PREFIX", "mokku:")
    if not state.startswith(("redis://", "rediss://", "unix://")):
        return {"state_path": state, "state_prefix": prefix}
    if len(prefix) > 200:
        raise ConfigError("MOKKU_STATE_PREFIX is at most 200 characters")
    return {"state_path": "", "state_url": state, "state_prefix": prefix}


def _recording(env: Mapping[str, str]) -> Dict[str, Any]:
    """``MOKKU_MODE`` and what it needs: ``MOKKU_UPSTREAM`` to forward to, ``MOKKU_CASSETTES`` to
    keep recordings in. Without a mode: replay_or_record with both, replay with cassettes alone,
    passthrough with an upstream alone, off with neither."""
    upstream = env.get("MOKKU_UPSTREAM", "").strip()
    cassettes = env.get("MOKKU_CASSETTES", "").strip()
    mode = env.get("MOKKU_MODE", "").strip().lower().replace("-", "_")
    if not mode:
        mode = (
            "replay_or_record"
            if upstream and cassettes
            else "replay"
            if cassettes
            else "passthrough"
            if upstream
            else ""
        )
    if mode and mode not in RECORD_MODES:
        raise ConfigError(f"MOKKU_MODE must be one of {', '.join(RECORD_MODES)}, got {mode!r}")
    if mode in NEEDS_UPSTREAM and not upstream:
        raise ConfigError(f"MOKKU_MODE={mode} needs MOKKU_UPSTREAM (the provider to forward to)")
    if mode in NEEDS_CASSETTES and not cassettes:
        raise ConfigError(f"MOKKU_MODE={mode} needs MOKKU_CASSETTES (the directory of recordings)")
    if upstream and not upstream.startswith(("http://", "https://")):
        raise ConfigError(f"MOKKU_UPSTREAM must be an http:// or https:// URL, got {upstream!r}")
    patterns = _listed(env, "MOKKU_REDACT_PATTERNS", "\n")
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(
                f"MOKKU_REDACT_PATTERNS: {pattern!r} is not a regular expression: {exc}"
            ) from None
    ignored = _listed(env, "MOKKU_MATCH_IGNORE")
    return {
        "mode": mode,
        "upstream": upstream,
        "cassettes": cassettes,
        "replay_speed": _number(env, "MOKKU_REPLAY_SPEED", 1.0, 0.0, 1000.0),
        "replay_miss_status": _miss_status(env),
        "redact_fields": _listed(env, "MOKKU_REDACT_FIELDS"),
        "redact_patterns": patterns,
        "match_ignore": ignored or ("user", "metadata", "stream_options"),
    }


def _miss_status(env: Mapping[str, str]) -> int:
    """``MOKKU_REPLAY_MISS_STATUS``: a client error or a server error, as a miss is one."""
    status: int = _int(env, "MOKKU_REPLAY_MISS_STATUS", 404, 400)
    if status > 599:
        raise ConfigError(f"MOKKU_REPLAY_MISS_STATUS must be an HTTP error status (400 to 599), got {status}")
    return status


def setup_logging(level: str) -> None:
    """Give the ``mokku`` logger a stderr handler unless the host already configured one."""
    logger = logging.getLogger("mokku")
    logger.setLevel(level)
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
