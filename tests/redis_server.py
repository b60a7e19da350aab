"""A real ``redis-server`` for the tests (Debian's package; ``.ci/run`` installs it), one per test
session on a free port, nothing saved to disk. Tests that need it skip, saying why, only when no
``redis-server`` is installed."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import uuid
from typing import ClassVar, Optional, Set

import pytest

from .servers import free_port


class RedisServer:
    # Ports this process gave a server already: never again. mokku's clients of an earlier test's
    # server live on (their threads try again and again) and note its outage by URL, once per
    # process: a new server at the same URL would find its outage noted already.
    used_ports: ClassVar[Set[int]] = set()

    def __init__(self) -> None:
        binary = shutil.which("redis-server") or shutil.which("valkey-server")
        if binary is None:
            pytest.skip("no redis-server installed (Debian package redis-server; .ci/run installs it)")
        self.port = free_port()
        while self.port in self.used_ports:
            self.port = free_port()
        self.used_ports.add(self.port)
        self.directory = tempfile.mkdtemp(prefix="mokku-redis-")
        self.binary = binary
        self.process: Optional[subprocess.Popen] = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.directory,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def env(self) -> dict:
        """Settings that put a server's shared state in this Redis, under a prefix of its own."""
        return {"MOKKU_STATE": self.url, "MOKKU_STATE_PREFIX": f"t{uuid.uuid4().hex[:12]}:"}
