"""The state file is private to its server, on both entry points: a 0700 directory with an
unpredictable name holding 0600 files, out of other users' reach, never shared by two servers, removed
at exit; the flag file beside a state file is never followed through a symlink."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, List

import pytest

from .. import servers
from ..servers import ENTRY_POINTS, LiveServer, free_port, request, request_json, state_file
from .attack import processes

NOBODY = 65534
CHAT = "/v1/chat/completions"
RULE = {"match": {"contains": "weather"}, "reply": {"content": "Sunny."}}


@pytest.fixture(params=ENTRY_POINTS)
def server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    live = LiveServer(request.param, env={"MOKKU_JOURNAL": "1"}, workers=2)
    yield live
    live.close()


@pytest.fixture
def request_cleanup() -> Iterator[Callable[[Path], None]]:
    """Directories to remove after the test."""
    made: List[Path] = []
    yield made.append
    for directory in made:
        shutil.rmtree(directory, ignore_errors=True)


def chat(url: str, text: str) -> str:
    status, _, body = request_json(
        "POST", url + CHAT, {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}
    )
    assert status == 200, body
    return body["choices"][0]["message"]["content"]  # type: ignore[index]


def as_nobody(*command: str) -> subprocess.CompletedProcess:
    """A command run as another user (``nobody``): what a local attacker can do."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to run a command as a second user")
    return subprocess.run(
        list(command), user=NOBODY, group=NOBODY, extra_groups=[], capture_output=True, text=True, timeout=30
    )


def mode(path: str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_private_directory_and_files(server: LiveServer) -> None:
    assert request_json("POST", server.url + "/mokku/scenarios", RULE)[0] == 200
    assert chat(server.url, "weather?") == "Sunny."
    state = state_file(server)
    directory = os.path.dirname(state)
    assert os.path.dirname(directory) == tempfile.gettempdir()
    assert str(server.process.pid) not in state  # nothing another user could predict
    assert mode(directory) == 0o700 and os.stat(directory).st_uid == os.geteuid()
    files = sorted(os.listdir(directory))
    assert files == [
        "state.sqlite3",
        "state.sqlite3-rules",
        "state.sqlite3-shm",
        "state.sqlite3-wal",
        "state.sqlite3-writers",
    ]
    for name in files:
        assert mode(os.path.join(directory, name)) == 0o600, name
    assert server.stop() == 0
    assert not os.path.exists(directory)


def test_another_user_can_neither_read_nor_plant(server: LiveServer) -> None:
    chat(server.url, "a private prompt")
    state = state_file(server)
    directory = os.path.dirname(state)
    for command in (("cat", state), ("ls", directory), ("touch", os.path.join(directory, "planted"))):
        result = as_nobody(*command)
        assert result.returncode != 0 and "Permission denied" in result.stderr, (command, result)


@pytest.mark.parametrize("kind", ENTRY_POINTS)
def test_the_flag_file_is_never_followed(
    kind: str, tmp_path: Path, request_cleanup: Callable[[Path], None]
) -> None:
    """MOKKU_STATE chosen by the user, and a symlink where its flag file goes (planted by another
    user in a shared sticky directory when the test runs as root): adding a rule leaves the file the
    link points at alone, and the rule still answers."""
    victim = tmp_path / "root-only"
    victim.write_bytes(b"\x00secret")
    victim.chmod(0o600)
    shared = Path(tempfile.mkdtemp())
    request_cleanup(shared)
    state = shared / "state.sqlite3"
    if os.geteuid() == 0:
        shared.chmod(0o1777)  # like /tmp
        result = as_nobody("ln", "-s", str(victim), f"{state}-rules")
        assert result.returncode == 0, result.stderr
        assert os.lstat(f"{state}-rules").st_uid == NOBODY
    else:
        os.symlink(victim, f"{state}-rules")
    server = LiveServer(kind, env={"MOKKU_STATE": str(state)}, workers=2)
    try:
        assert request_json("POST", server.url + "/mokku/scenarios", RULE)[0] == 200
        assert chat(server.url, "weather?") == "Sunny."
        assert chat(server.url, "hello") == "hello"
        assert request_json("DELETE", server.url + "/mokku/scenarios")[0] == 200
        assert chat(server.url, "weather?") == "weather?"
        assert "cannot use" in server.output()  # the warning names the flag file
    finally:
        server.close()
    assert victim.read_bytes() == b"\x00secret"
    assert os.path.islink(f"{state}-rules")
    assert state.exists()  # the user's file: never removed


def test_a_state_file_the_user_names_is_made_private(tmp_path: Path) -> None:
    state = tmp_path / "mine.sqlite3"
    server = LiveServer("module", env={"MOKKU_STATE": str(state), "MOKKU_JOURNAL": "1"})
    try:
        chat(server.url, "x")
        assert mode(str(state)) == 0o600 and mode(f"{state}-wal") == 0o600
    finally:
        server.close()
    assert state.exists()


def _start_in_own_pid_namespace(port: int, log: Path) -> subprocess.Popen:
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs unshare and root, for a PID namespace")
    env = dict(
        os.environ, MOKKU_PORT=str(port), MOKKU_HOST="127.0.0.1", MOKKU_JOURNAL="1", PYTHONUNBUFFERED="1"
    )
    command = [unshare, "--pid", "--fork", "--kill-child=SIGTERM", sys.executable, "-m", "mokku"]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if request("GET", f"http://127.0.0.1:{port}/health", timeout=1)[0] == 200:
                return process
        except OSError:
            pass
        if process.poll() is not None:
            output = log.read_text()
            if output.startswith("unshare:"):
                pytest.skip(f"unshare --pid is not allowed here: {output}")
            raise AssertionError(output)
        time.sleep(0.05)
    process.kill()
    raise AssertionError(log.read_text())


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server (PID 1 in its namespace): unshare itself ignores it and waits."""
    for pid in processes(process.pid):
        if pid != process.pid:
            os.kill(pid, signal.SIGTERM)


def test_two_servers_in_separate_pid_namespaces(tmp_path: Path) -> None:
    """Both are PID 1 in their namespace and share /tmp: each still has its own state, and the
    first to stop leaves the other's alone."""
    ports = [free_port(), free_port()]
    logs = [tmp_path / "one.log", tmp_path / "two.log"]
    servers: List[subprocess.Popen] = []
    try:
        for port, log in zip(ports, logs):
            servers.append(_start_in_own_pid_namespace(port, log))
        for port, text in zip(ports, ("first", "second")):
            chat(f"http://127.0.0.1:{port}", text)
        states = [
            next(line for line in log.read_text().splitlines() if "state file: " in line).split(
                "state file: "
            )[1]
            for log in logs
        ]
        assert states[0] != states[1]
        stop(servers[0])
        assert servers[0].wait(20) == 0
        assert not os.path.exists(os.path.dirname(states[0])) and os.path.exists(states[1])
        status, _, body = request_json("GET", f"http://127.0.0.1:{ports[1]}/mokku/requests")
        assert status == 200
        assert [e["body"]["messages"][0]["content"] for e in body["data"]] == ["second"]  # type: ignore[index]
        chat(f"http://127.0.0.1:{ports[1]}", "still here")
        assert len(request_json("GET", f"http://127.0.0.1:{ports[1]}/mokku/requests")[2]["data"]) == 2  # type: ignore[index]
    finally:
        for process in servers:
            if process.poll() is None:
                stop(process)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()


@pytest.mark.parametrize("kind", ENTRY_POINTS)
def test_a_state_file_that_cannot_be_made_stops_the_start(kind: str, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-directory" / "state.sqlite3"
    env = dict(os.environ, MOKKU_STATE=str(missing), MOKKU_PORT=str(free_port()))
    result = subprocess.run(
        servers.command(kind), env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    assert result.returncode != 0
    assert "MOKKU_STATE" in result.stdout + result.stderr and str(missing) in result.stdout + result.stderr
