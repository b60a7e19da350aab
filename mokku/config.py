"""Settings, read once from ``MOKKU_*`` environment variables.

The app reads only the environment so that ``gunicorn mokku.wsgi:app`` and
``python -m mokku`` behave alike; the CLI writes its flags into the
environment before the app is imported.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Mapping, Optional, Tuple

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_THREADS = 64
DEFAULT_WORKERS = 2
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024


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


def _int(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name} must be 1 or 0 (true/false), got {raw!r}")


def _log_level(env: Mapping[str, str]) -> str:
    level = env.get("MOKKU_LOG_LEVEL", "").strip().upper() or "INFO"
    if not isinstance(logging.getLevelName(level), int):
        raise ConfigError(f"MOKKU_LOG_LEVEL must be a logging level name, got {level!r}")
    return level


def _extra_models(env: Mapping[str, str]) -> Tuple[str, ...]:
    """Model ids from ``MOKKU_MODELS`` (comma list) and ``MOKKU_MODELS_FILE`` (one per line)."""
    ids = [part.strip() for part in env.get("MOKKU_MODELS", "").split(",")]
    path = env.get("MOKKU_MODELS_FILE", "").strip()
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except OSError as exc:
            raise ConfigError(f"MOKKU_MODELS_FILE cannot be read: {exc}") from None
        ids += [line.split("#", 1)[0].strip() for line in lines]
    return tuple(dict.fromkeys(model for model in ids if model))


def load(env: Optional[Mapping[str, str]] = None) -> Settings:
    """Build settings from the environment (``os.environ`` by default)."""
    env = os.environ if env is None else env
    return Settings(
        host=env.get("MOKKU_HOST", "").strip() or DEFAULT_HOST,
        port=_int(env, "MOKKU_PORT", DEFAULT_PORT, 0),
        threads=_int(env, "MOKKU_THREADS", DEFAULT_THREADS, 1),
        workers=_int(env, "MOKKU_WORKERS", DEFAULT_WORKERS, 1),
        log_level=_log_level(env),
        max_body_bytes=_int(env, "MOKKU_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, 1),
        extra_models=_extra_models(env),
        strict=_flag(env, "MOKKU_STRICT"),
    )


def setup_logging(level: str) -> None:
    """Give the ``mokku`` logger a stderr handler unless the host already configured one."""
    logger = logging.getLogger("mokku")
    logger.setLevel(level)
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
