"""gunicorn settings for mokku: ``gunicorn -c python:mokku.gunicorn_conf mokku.wsgi:app``.

Plain assignments, each read from the same ``MOKKU_*`` variables as
``python -m mokku``. Threaded (``gthread``) workers let one worker hold many
streams at once; ``GUNICORN_CMD_ARGS`` and command-line flags still override.
"""

from __future__ import annotations

import os as _os
import sys as _sys

from mokku import config as _config
from mokku import metrics as _metrics
from mokku import store as _store
from mokku import telemetry as _telemetry
from mokku.control import admin as _admin
from mokku.control import state as _state
from mokku.simulation import faults as _faults
from mokku.simulation import load as _load
from mokku.simulation import prefix as _prefix

# gunicorn reads every public name in this module as a setting: helpers stay private.

try:
    _settings = _config.load()
except _config.ConfigError as _exc:  # as python -m mokku: the reason, and exit status 2
    print(f"mokku: {_exc}", file=_sys.stderr)
    raise SystemExit(2) from None

_host = f"[{_settings.host}]" if ":" in _settings.host else _settings.host

bind = [f"{_host}:{_settings.port}"]
# gunicorn's gthread worker, closing connections politely off its main thread (mokku/gunicorn_worker.py).
worker_class = "mokku.gunicorn_worker.Worker"
workers = _settings.workers
threads = _settings.threads
# gthread workers answer the arbiter's heartbeat from their main loop, so long
# streams do not trip this; it only reaps a worker that is truly stuck.
timeout = 30
graceful_timeout = 10
keepalive = 5
# Enough pending connections for bursts of many streaming clients.
backlog = 2048
# The request line the stdlib server takes too (docs/limits.md): longer is a 414, in JSON there.
limit_request_line = 8190
loglevel = _settings.log_level.lower()
# Access lines, when asked for (--access-logfile), without the credentials a request carries.
logger_class = "mokku.gunicorn_log.AccessLogger"
# gunicorn 24+ opens a control socket at one fixed path per user, so two servers on a
# machine (parallel test runs, several ports) would fight over it. Older versions
# ignore this name.
control_socket_disable = True


_own_state: list = []


def on_starting(server):
    """Choose the state file in the arbiter, so that every worker shares it; warn when the admin
    surface is on an address other machines reach (gunicorn's own ``--bind`` included)."""
    try:
        _faults.chance_faults(_settings)
        _telemetry.check()
        _own_state.append(_state.claim_state(_settings))
    except _config.ConfigError as exc:  # as python -m mokku: the reason, and exit status 2
        server.log.error("mokku: %s", exc)
        _sys.exit(2)
    _state.remove_at_exit(_own_state[-1])  # also when gunicorn stops before on_exit (a bind error)
    try:  # where every worker writes its metrics, chosen before any starts
        _own_state.append(_metrics.prepare(_settings))
    except _config.ConfigError as exc:
        server.log.error("mokku: %s", exc)
        _sys.exit(2)
    _state.remove_at_exit(_own_state[-1])
    _load.prepare(_settings)  # MOKKU_MAX_RUNNING's slots, shared by the workers forked from here
    _prefix.prepare(_settings)  # MOKKU_PREFIX_CACHE's table, the same
    if _os.environ.get("MOKKU_STATE"):
        server.log.info(_store.shown(_os.environ["MOKKU_STATE"]))
    hosts = [str(address[0]) for address in server.cfg.address if isinstance(address, tuple)]
    warning = _admin.exposure_warning(_settings, hosts)
    if warning:
        server.log.warning(warning)


def on_exit(server):
    for path in _own_state:
        _state.remove(path)


def when_ready(server):
    """Say once, in the arbiter, where spans go (workers set up their own exporter)."""
    server.log.info(_telemetry.describe())


def post_fork(server, worker):
    """Start the tracing SDK in the worker, after the fork: threads do not survive a fork."""
    _telemetry.setup()


def child_exit(server, worker):
    """A worker is gone (in the arbiter): its gauges stop counting in the metrics, and the running
    slots and places in the queue it held are free again."""
    _metrics.process_gone(worker.pid)
    _load.gone(worker.pid)
    _prefix.gone(worker.pid)


def worker_exit(server, worker):
    """Flush queued spans and the last metrics when a worker stops (SIGTERM, restart)."""
    _telemetry.stop()
