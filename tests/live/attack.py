"""What the attack tests watch on a live server: its processes, and whether ``/health`` kept answering."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import List, Optional

from ..servers import LiveServer, request


def processes(pid: int) -> List[int]:
    """``pid`` and its descendants (gunicorn's workers)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                queue += [int(child) for child in task.read_text().split()]
            except OSError:
                pass
    return found


def workers(server: LiveServer) -> List[int]:
    return [pid for pid in processes(server.process.pid) if pid != server.process.pid]


class HealthProbe:
    """A second client asking ``/health`` every 50 ms while an attack runs."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.statuses: List[int] = []
        self.failures: List[str] = []
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> HealthProbe:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.statuses.append(request("GET", self.server.url + "/health", timeout=30)[0])
            except OSError as exc:
                self.failures.append(repr(exc))
            self._stop.wait(0.05)

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(60)

    def check(self) -> None:
        """Every probe was answered, 200."""
        assert not self.failures, self.failures[:3]
        assert self.statuses and set(self.statuses) == {200}, self.statuses


def wait_for(predicate, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
