"""Start the real server in a subprocess on a free port, and talk to it over raw sockets."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

ENTRY_POINTS = ("module", "gunicorn")


# mokku's line ("listening on http://HOST:PORT") and gunicorn's ("Listening at: http://HOST:PORT").
_LISTENING = re.compile(r"[Ll]istening (?:on|at:) http://\S+:(\d+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def command(kind: str) -> List[str]:
    if kind == "module":
        return [sys.executable, "-m", "mokku"]
    if kind == "gunicorn":
        return [sys.executable, "-m", "gunicorn", "-c", "python:mokku.gunicorn_conf", "mokku.wsgi:app"]
    if kind == "gunicorn-streams":
        return [sys.executable, "-m", "gunicorn", "-c", "python:mokku.gunicorn_streams", "mokku.wsgi:app"]
    if kind == "gunicorn-sync":
        return [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:{port}", "mokku.wsgi:app"]
    raise ValueError(kind)


class LiveServer:
    """One server process; ``url`` is its base (``http://127.0.0.1:PORT``)."""

    def __init__(self, kind: str, env: Optional[Dict[str, str]] = None, workers: int = 1) -> None:
        self.kind = kind
        self.port = 0
        self.url = ""
        self.log = tempfile.NamedTemporaryFile(prefix=f"mokku-{kind}-", suffix=".log", delete=False)
        full_env = dict(os.environ)
        full_env.update(
            MOKKU_HOST="127.0.0.1",
            MOKKU_PORT="0",  # the kernel's choice, read from the log: no other process can hold it
            MOKKU_WORKERS=str(workers),
            PYTHONUNBUFFERED="1",
        )
        full_env.update(env or {})
        cmd = [part.format(port=0) for part in command(kind)]
        self.process = subprocess.Popen(
            cmd, env=full_env, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} server exited early:\n{self.output()}")
            if not self.port:
                found = _LISTENING.search(self.output())
                if found is None:
                    time.sleep(0.05)
                    continue
                self.port = int(found.group(1))
                self.url = f"http://127.0.0.1:{self.port}"
            try:
                status, _, _ = request("GET", self.url + "/health", timeout=1)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.kind} server did not become ready:\n{self.output()}")

    def output(self) -> str:
        with open(self.log.name, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def close(self) -> None:
        self.stop()
        self.log.close()
        os.unlink(self.log.name)


def request(
    method: str,
    url: str,
    body: Optional[bytes] = None,
    headers: Optional[Dict[str, str]] = None,
    timeout: float = 10.0,
) -> Tuple[int, Dict[str, str], bytes]:
    """One plain HTTP request; returns status, lower-cased headers and the body."""
    assert url.startswith("http://")
    host_port, _, path = url[len("http://") :].partition("/")
    host, _, port = host_port.partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, "/" + path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


def request_json(
    method: str, url: str, payload: object = None, **kwargs: object
) -> Tuple[int, Dict[str, str], object]:
    body = None if payload is None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"} if body is not None else {}
    status, response_headers, data = request(method, url, body, headers, **kwargs)  # type: ignore[arg-type]
    return status, response_headers, json.loads(data)


def server_rss_kb(server: LiveServer) -> int:
    """Resident memory of the server's process and its children (gunicorn's workers), in KiB."""
    pids = [server.process.pid]
    try:
        with open(
            f"/proc/{server.process.pid}/task/{server.process.pid}/children", encoding="ascii"
        ) as handle:
            pids += [int(pid) for pid in handle.read().split()]
    except OSError:
        pass
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status", encoding="ascii") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def state_file(server: LiveServer, timeout: float = 10.0) -> str:
    """The state file the server chose, from its start-up line ``state file: <path>``."""
    deadline = time.monotonic() + timeout
    while True:
        for line in server.output().splitlines():
            if "state file: " in line:
                return line.split("state file: ", 1)[1].strip()
        if time.monotonic() > deadline:
            raise AssertionError(f"no 'state file:' line in the output:\n{server.output()}")
        time.sleep(0.05)


def cassette_why(directory: object, request_file: object) -> subprocess.CompletedProcess[str]:
    """``python -m mokku cassette why`` on a directory of recordings and a request file."""
    command = [
        sys.executable,
        "-m",
        "mokku",
        "cassette",
        "why",
        "--dir",
        str(directory),
        "--request",
        str(request_file),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def run_python(code: str, *args: str, timeout: float = 120) -> str:
    """A client script (an SDK's, a framework's) run in its own interpreter; its output, once it
    has succeeded."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout
