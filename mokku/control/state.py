"""The state file: one SQLite file per server, shared by its workers (the journal, scripted replies,
stored responses and conversations).

It is ``MOKKU_STATE``, or by default ``state.sqlite3`` in a private directory the server makes at
start (mode 0700, an unpredictable name under the system temp directory): other local users can
neither read the prompts in it nor plant a file or a symlink where it will be, and two servers never
share one, even in separate PID namespaces over one ``/tmp``. gunicorn's arbiter (or
``python -m mokku``) makes it and hands it to the workers through ``MOKKU_STATE``; the server removes
that directory, and only it, when it stops. A file named by ``MOKKU_STATE`` is the user's: created
(0600) when missing, never removed.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time
from typing import Dict, Optional, Tuple, Type

from mokku import config, store
from mokku.control import statedb
from mokku.control.scenarios import load_file
from mokku.store import open_stores, tally
from mokku.store.sqlite import FLAG_SUFFIX

STATE_NAME = "state.sqlite3"
_DIRECTORY_PREFIX = "mokku-"

_made: Dict[int, str] = {}  # this process's default state file, by pid (a fork makes its own)


def private_directory() -> str:
    """A new directory only this user can enter, with an unpredictable name."""
    return tempfile.mkdtemp(prefix=_DIRECTORY_PREFIX)


def default_path() -> str:
    """This process's own state file, when no server chose one (an app built in-process, or plain
    ``gunicorn mokku.wsgi:app``): made on first use, removed when the process that made it exits."""
    pid = os.getpid()
    path = _made.get(pid)
    if path is None:
        directory = private_directory()
        path = _made[pid] = os.path.join(directory, STATE_NAME)
        remove_at_exit(directory)
    return path


def remove_at_exit(path: Optional[str]) -> None:
    """Remove ``path`` when this process exits, however it exits normally (not when a child
    forked from it, a gunicorn worker say, exits)."""
    if path:
        atexit.register(_remove_if_mine, path, os.getpid())


def _remove_if_mine(path: str, pid: int) -> None:
    if os.getpid() == pid:
        remove(path)


def claim_state(settings: config.Settings) -> Optional[str]:
    """Choose this server's state file before workers start, and load ``MOKKU_SCENARIOS`` into it;
    returns the private directory to remove at exit (None when the user chose the file with
    MOKKU_STATE)."""
    if settings.state_url:  # everything shared is in Redis: no file to make
        store.check(settings)  # unreachable: exit 2 with why
        _load_scenarios(settings, "")
        return None
    owned = None
    path = settings.state_path
    if path:
        try:
            statedb.create_private(path)  # theirs: made (private) only when it is missing
        except OSError as exc:
            raise config.ConfigError(f"MOKKU_STATE: cannot create {path}: {exc}") from None
    else:
        try:
            owned = private_directory()
        except OSError as exc:
            raise config.ConfigError(f"cannot make a private directory for the state file: {exc}") from None
        path = os.path.join(owned, STATE_NAME)
        statedb.create_private(path)
        os.environ["MOKKU_STATE"] = path  # handed to the workers
    try:
        tally.reset(path)  # no writer of an earlier run holds a reader up
    except OSError as exc:
        remove(owned)
        raise config.ConfigError(f"MOKKU_STATE: cannot use {path + tally.SUFFIX}: {exc}") from None
    try:
        _load_scenarios(settings, path)
        _restart_counts(settings, path)
    except config.ConfigError:
        remove(owned)
        raise
    return owned


_LOAD_ERRORS: Tuple[Type[BaseException], ...] = (OSError, ValueError, *statedb.STATE_ERRORS)


def _restart_counts(settings: config.Settings, path: str) -> None:
    """A new run counts the calls to its cassettes from 1, even in a state file kept from an earlier
    one (with Redis the count goes on: the other replicas are counting in it)."""
    if settings.cassettes:
        try:
            open_stores(settings, path).counters.reset(os.path.abspath(settings.cassettes))
        except _LOAD_ERRORS as exc:
            raise config.ConfigError(f"MOKKU_STATE: cannot reset the cassettes' counts: {exc}") from None


def _load_scenarios(settings: config.Settings, path: str) -> None:
    if settings.scenarios_file:
        try:
            load_file(settings.scenarios_file, path, open_stores(settings, path).rules)
        except _LOAD_ERRORS as exc:
            raise config.ConfigError(f"MOKKU_SCENARIOS: {exc}") from None


def remove(path: Optional[str]) -> None:
    """Remove what a server made: its private directory, or a state file with its companions."""
    if not path:
        return
    if os.path.isdir(path) and not os.path.islink(path):
        for _ in range(5):  # a writer thread may still make a file in it (SQLite's -wal) meanwhile
            shutil.rmtree(path, ignore_errors=True)
            if not os.path.exists(path):
                return
            time.sleep(0.05)
        return
    for suffix in ("", "-wal", "-shm", FLAG_SUFFIX, tally.SUFFIX):
        try:
            os.unlink(path + suffix)
        except FileNotFoundError:
            pass
