"""Settings from the environment, and the CLI flags that feed it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict

import pytest

from mokku import config
from mokku.__main__ import parse_args


def test_defaults() -> None:
    settings = config.load({})
    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.threads == config.DEFAULT_THREADS
    assert settings.log_level == "INFO"
    assert settings.max_body_bytes == 8 * 1024 * 1024
    assert settings.extra_models == ()


def test_values_from_env() -> None:
    settings = config.load(
        {
            "MOKKU_HOST": "0.0.0.0",
            "MOKKU_PORT": "9000",
            "MOKKU_THREADS": "8",
            "MOKKU_WORKERS": "3",
            "MOKKU_LOG_LEVEL": "debug",
            "MOKKU_MAX_BODY_BYTES": "1024",
            "MOKKU_MODELS": "a, b,,a",
        }
    )
    assert (settings.host, settings.port, settings.threads, settings.workers) == ("0.0.0.0", 9000, 8, 3)
    assert settings.log_level == "DEBUG"
    assert settings.max_body_bytes == 1024
    assert settings.extra_models == ("a", "b")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MOKKU_PORT": "eighty"}, "MOKKU_PORT must be an integer"),
        ({"MOKKU_THREADS": "0"}, "MOKKU_THREADS must be at least 1"),
        ({"MOKKU_MAX_BODY_BYTES": "-1"}, "MOKKU_MAX_BODY_BYTES must be at least 1"),
        ({"MOKKU_LOG_LEVEL": "LOUD"}, "MOKKU_LOG_LEVEL must be a logging level"),
        ({"MOKKU_PORT": "99999"}, "MOKKU_PORT must be at most 65535, got 99999"),
        ({"MOKKU_MODELS_FILE": "/nonexistent/models.txt"}, "MOKKU_MODELS_FILE cannot be read"),
        (
            {"MOKKU_MODELS_FILE": "/dev/zero"},
            "MOKKU_MODELS_FILE is larger than 16777216 bytes",
        ),  # read no further
        ({"MOKKU_ADMIN": "maybe"}, r"MOKKU_ADMIN must be 1 or 0 \(true/false\) or open, got 'maybe'"),
        ({"MOKKU_JOURNAL": "maybe"}, r"MOKKU_JOURNAL must be 1 or 0 \(true/false\), got 'maybe'"),
        ({"MOKKU_API_KEY": " , "}, "MOKKU_API_KEY names no key"),  # else every key would do
    ],
)
def test_bad_values_are_rejected(env: dict, message: str) -> None:
    with pytest.raises(config.ConfigError, match=message):
        config.load(env)


def test_models_file_is_deduplicated(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    path.write_text("x\ny\nx\n", encoding="utf-8")
    assert config.load({"MOKKU_MODELS_FILE": str(path)}).extra_models == ("x", "y")


def test_cli_flags() -> None:
    args = parse_args(["--host", "::1", "--port", "0", "--threads", "4", "--log-level", "DEBUG"])
    assert (args.host, args.port, args.threads, args.log_level) == ("::1", "0", "4", "DEBUG")


def test_gunicorn_config_reads_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    import mokku.gunicorn_conf as conf

    monkeypatch.setenv("MOKKU_HOST", "0.0.0.0")
    monkeypatch.setenv("MOKKU_PORT", "9100")
    monkeypatch.setenv("MOKKU_THREADS", "16")
    monkeypatch.setenv("MOKKU_WORKERS", "4")
    conf = importlib.reload(conf)
    assert conf.bind == ["0.0.0.0:9100"]
    assert (conf.worker_class, conf.threads, conf.workers) == ("mokku.gunicorn_worker.Worker", 16, 4)
    monkeypatch.setenv("MOKKU_HOST", "::")
    assert importlib.reload(conf).bind == ["[::]:9100"]


def test_many_streams_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    import mokku.gunicorn_conf as conf
    import mokku.gunicorn_streams as streams

    for name in ("MOKKU_THREADS", "MOKKU_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MOKKU_PORT", "9101")
    importlib.reload(conf)  # a fresh process reads the environment once, for both modules
    streams = importlib.reload(streams)
    assert (streams.worker_class, streams.threads, streams.worker_connections) == (
        "mokku.gunicorn_worker.Worker",
        640,
        672,
    )
    assert streams.bind == ["127.0.0.1:9101"]
    assert callable(streams.on_starting) and callable(streams.post_fork)  # the same hooks
    monkeypatch.setenv("MOKKU_THREADS", "100")
    importlib.reload(conf)
    assert importlib.reload(streams).threads == 100


@pytest.mark.parametrize(
    "env, words",
    [
        ({"MOKKU_MODE": "record"}, "MOKKU_MODE=record needs MOKKU_UPSTREAM"),
        ({"MOKKU_MODE": "replay"}, "MOKKU_MODE=replay needs MOKKU_CASSETTES"),
        ({"MOKKU_MODE": "bogus"}, "MOKKU_MODE must be one of"),
        ({"MOKKU_UPSTREAM": "ftp://x"}, "MOKKU_UPSTREAM must be an http:// or https:// URL"),
        ({"MOKKU_CASSETTES": "d", "MOKKU_REDACT_PATTERNS": "(unclosed"}, "is not a regular expression"),
    ],
)
def test_recording_settings_are_checked(env: Dict[str, str], words: str) -> None:
    with pytest.raises(config.ConfigError, match=re.escape(words)):
        config.load(env)


def test_the_recording_mode_follows_what_is_set() -> None:
    assert config.load({}).mode == ""
    assert config.load({"MOKKU_CASSETTES": "d"}).mode == "replay"
    assert config.load({"MOKKU_UPSTREAM": "http://u"}).mode == "passthrough"
    assert config.load({"MOKKU_CASSETTES": "d", "MOKKU_UPSTREAM": "http://u"}).mode == "replay_or_record"
    assert (
        config.load(
            {"MOKKU_MODE": "replay-or-record", "MOKKU_CASSETTES": "d", "MOKKU_UPSTREAM": "http://u"}
        ).mode
        == "replay_or_record"
    )
