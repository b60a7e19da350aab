"""A state file corrupted, deleted or unusable while serving: chats never turn into 500s, scripted
replies that cannot be read say so (503 naming the file), and the server, and every worker, stays up."""

from __future__ import annotations

import os
import re
import shutil
import signal
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from ..servers import ENTRY_POINTS, LiveServer, request_json, state_file
from .attack import HealthProbe, wait_for, workers

CHAT = "/v1/chat/completions"


@pytest.fixture(params=ENTRY_POINTS)
def server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    live = LiveServer(request.param, env={"MOKKU_JOURNAL": "1", "MOKKU_THREADS": "16"}, workers=2)
    yield live
    live.close()


def chat(server: LiveServer, text: str) -> Tuple[int, Any]:
    status, _, body = request_json(
        "POST", server.url + CHAT, {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}
    )
    return status, body


def many_chats(server: LiveServer, count: int = 160) -> List[Tuple[int, Any]]:
    with HealthProbe(server) as probe, ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda index: chat(server, f"hello {index}"), range(count)))
    probe.check()
    return results


def script(server: LiveServer) -> None:
    rule = {"match": {"contains": "weather"}, "reply": {"content": "Sunny."}}
    status, _, body = request_json("POST", server.url + "/mokku/scenarios", rule)
    assert status == 200, body


def assert_unavailable(body: Dict[str, Any], state: str) -> None:
    error = body["error"]
    assert error["type"] == "server_error" and error["code"] == "state_unavailable"
    assert state in error["message"]


def assert_echo_or_unavailable(results: List[Tuple[int, Any]], state: str) -> None:
    """No 500: each chat is the echo it asked for, or the 503 that names the state file."""
    for status, body in results:
        assert status in (200, 503), (status, body)
        if status == 503:
            assert_unavailable(body, state)
        else:
            assert body["choices"][0]["message"]["content"].startswith("hello ")


def corrupt(path: str) -> None:
    """Garbage over the whole file, in place (the same inode, as a disk error or a stray write would)."""
    size = max(os.path.getsize(path), 4096)
    with open(path, "r+b") as handle:
        handle.write(os.urandom(size))
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            with open(path + suffix, "r+b") as handle:
                handle.write(os.urandom(os.path.getsize(path + suffix)))


def remove_state(state: str) -> None:
    """The state file and its companions, those SQLite has not removed already (it removes the
    write-ahead log when the file's last connection closes: a killed worker's, say)."""
    for suffix in ("", "-wal", "-shm"):
        try:
            os.unlink(state + suffix)
        except FileNotFoundError:
            pass


def test_a_corrupted_state_file(server: LiveServer) -> None:
    script(server)
    assert chat(server, "weather?")[1]["choices"][0]["message"]["content"] == "Sunny."
    state = state_file(server)
    corrupt(state)
    results = many_chats(server)
    assert_echo_or_unavailable(results, state)
    assert any(status == 503 for status, _ in results)  # the rules cannot be read: no silent echo
    for method, path in (("GET", "/mokku/requests"), ("GET", "/mokku/scenarios"), ("GET", "/mokku/verdict")):
        status, _, body = request_json(method, server.url + path)
        assert status in (200, 503), (path, status, body)
        if status == 503:
            assert_unavailable(body, state)  # type: ignore[arg-type]
    assert server.process.poll() is None
    if server.kind == "gunicorn":
        # A worker that dies now is replaced, and the replacement boots over the broken file.
        old = workers(server)
        os.kill(old[0], signal.SIGKILL)
        assert wait_for(lambda: len(set(workers(server)) - set(old)) == 1 and len(workers(server)) == 2)
        assert wait_for(lambda: len(re.findall(r"Booting worker", server.output())) >= 3)
        assert_echo_or_unavailable(many_chats(server, 40), state)
        assert server.process.poll() is None and "Worker failed to boot" not in server.output()
    # Mended (the file removed): the journal starts a new one, the rules are gone and say so once
    # cleared.
    remove_state(state)
    assert request_json("DELETE", server.url + "/mokku/scenarios")[0] == 200
    # Entries of the calls answered while it was broken may still be on their way: cleared with the rest.
    assert request_json("DELETE", server.url + "/mokku/requests")[0] == 200
    results = many_chats(server, 40)
    assert {status for status, _ in results} == {200}
    entries = request_json("GET", server.url + "/mokku/requests?limit=1000")[2]["data"]  # type: ignore[index]
    assert len(entries) == 40


def test_a_deleted_state_file(server: LiveServer) -> None:
    """Deleted while serving: every thread reopens it (a new, empty journal), none answers 500."""
    assert {status for status, _ in many_chats(server, 40)} == {200}
    assert len(request_json("GET", server.url + "/mokku/requests?limit=1000")[2]["data"]) == 40  # type: ignore[index]
    state = state_file(server)  # (the read waited until all 40 were written to it)
    remove_state(state)
    assert {status for status, _ in many_chats(server, 40)} == {200}
    with ThreadPoolExecutor(max_workers=16) as pool:
        pages = list(
            pool.map(lambda _: request_json("GET", server.url + "/mokku/requests?limit=1000"), range(64))
        )
    assert {status for status, _, _ in pages} == {200}
    assert {len(body["data"]) for _, _, body in pages} == {40}  # type: ignore[index]


def test_rules_that_cannot_be_read_are_a_503(server: LiveServer) -> None:
    """A rule was added, then the state file became a directory (it cannot be opened at all):
    chats answer 503 naming it rather than an echo the test did not ask for, and /health stays up."""
    script(server)
    state = state_file(server)
    remove_state(state)
    os.mkdir(state)
    try:
        results = many_chats(server, 40)
        assert {status for status, _ in results} == {503}
        assert_unavailable(results[0][1], state)
        status, _, body = request_json("GET", server.url + "/mokku/requests")
        assert status == 503
        assert_unavailable(body, state)  # type: ignore[arg-type]
        if server.kind == "gunicorn":
            old = workers(server)
            os.kill(old[0], signal.SIGKILL)
            assert wait_for(lambda: len(set(workers(server)) - set(old)) == 1 and len(workers(server)) == 2)
            assert {status for status, _ in many_chats(server, 20)} == {503}
        assert server.process.poll() is None
    finally:
        shutil.rmtree(state)
    # Cleared, the echo is back, and the journal with it.
    assert request_json("DELETE", server.url + "/mokku/scenarios")[0] == 200
    assert {status for status, _ in many_chats(server, 20)} == {200}


@pytest.mark.parametrize("kind", ENTRY_POINTS)
def test_a_held_lock_does_not_stop_unrelated_chats(kind: str) -> None:
    """Something holds the state file's write lock for 5 s (as a slow match once did): chats that
    match no rule are answered meanwhile on every worker; one that matches answers once it is free.
    (The journal is off: its writes wait for the lock, so that a test reading it sees every call.)"""
    import sqlite3
    import threading

    server = LiveServer(kind, env={"MOKKU_THREADS": "16"}, workers=2)
    script(server)
    holder = sqlite3.connect(state_file(server), isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    freed = threading.Event()

    def release() -> None:
        holder.execute("COMMIT")
        freed.set()

    released = threading.Timer(5.0, release)
    released.start()
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            results = list(pool.map(lambda index: chat(server, f"hello {index}"), range(6)))
        assert [status for status, _ in results] == [200] * 6
        assert not freed.is_set()  # all six answered while the lock was held
        status, body = chat(server, "weather?")
        assert status == 200 and body["choices"][0]["message"]["content"] == "Sunny."
    finally:
        released.join()
        holder.close()
        server.close()
