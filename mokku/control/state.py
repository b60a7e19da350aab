"""The state file: one SQLite file per server, shared by its workers (the journal and scripted replies).

It is ``MOKKU_STATE``, or by default a new one under the system temp directory named after the
server's process (gunicorn's arbiter, whose workers inherit the name), so the workers of one
server share it and two servers do not; a server removes its default file when it stops.
"""

from __future__ import annotations

import os
import tempfile
from typing import Optional

from mokku import config
from mokku.control.scenarios import load_file


def default_path() -> str:
    return os.path.join(tempfile.gettempdir(), f"mokku-state-{os.getpid()}.sqlite3")


def claim_state(settings: config.Settings) -> Optional[str]:
    """Choose this server's state file before workers start, and load ``MOKKU_SCENARIOS`` into it;
    returns the file to remove at exit (None when the user chose it with MOKKU_STATE)."""
    owned = None
    if not settings.state_path and (settings.journal or settings.admin):
        owned = default_path()
        os.environ["MOKKU_STATE"] = owned
    if settings.scenarios_file:
        try:
            load_file(settings.scenarios_file, settings.state_path or owned or default_path())
        except (OSError, ValueError) as exc:
            raise config.ConfigError(f"MOKKU_SCENARIOS: {exc}") from None
    return owned


def remove(path: Optional[str]) -> None:
    for suffix in ("", "-wal", "-shm", "-rules"):
        try:
            if path:
                os.unlink(path + suffix)
        except FileNotFoundError:
            pass
