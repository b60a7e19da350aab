"""The journal bounded in bytes, on both entry points: large bodies, emptying it, reading it, judging it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from ..servers import ENTRY_POINTS, LiveServer, request, request_json, server_rss_kb, state_file
from .attack import HealthProbe, file_size

CHAT = "/v1/chat/completions"
MIB = 1024 * 1024


@pytest.fixture(params=ENTRY_POINTS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


def start(kind: str, **env: str) -> LiveServer:
    return LiveServer(kind, env={"MOKKU_JOURNAL": "1", "MOKKU_THREADS": "16", **env}, workers=2)


@pytest.fixture
def server(kind: str) -> Iterator[LiveServer]:
    live = start(kind)
    yield live
    live.close()


def post(server: LiveServer, body: bytes, headers: Dict[str, str] = {}) -> int:  # noqa: B006
    return request(
        "POST", server.url + CHAT, body, {"Content-Type": "application/json", **headers}, timeout=120
    )[0]


def all_entries(server: LiveServer) -> List[Dict[str, Any]]:
    """The whole journal, paged forward with ``after``."""
    found: List[Dict[str, Any]] = []
    after = 0
    while True:
        status, _, page = request_json("GET", server.url + f"/mokku/requests?after={after}&limit=1000")
        assert status == 200, page
        found += page["data"]  # type: ignore[index]
        if not page["has_more"]:  # type: ignore[index]
            return found
        after = page["last_id"]  # type: ignore[index]


def big_body(index: int, size: int) -> bytes:
    """A chat body of about ``size`` bytes that is refused (temperature 5) after it was read and parsed."""
    return json.dumps(
        {
            "model": "gpt-4o",
            "temperature": 5,
            "messages": [{"role": "user", "content": f"{index:04d}" + "a" * size}],
        }
    ).encode()


def test_thirty_large_bodies_are_kept_cut(server: LiveServer) -> None:
    """Thirty 7 MB bodies: each journaled as a marker (size, digest, start), the file stays small,
    /health answers throughout, nothing is lost, and emptying the journal does not grow the log."""
    bodies = [big_body(index, 7 * 1000 * 1000) for index in range(30)]
    before = server_rss_kb(server)
    with HealthProbe(server) as probe, ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(lambda body: post(server, body), bodies))
    probe.check()
    assert statuses == [400] * 30
    # Four 7 MB bodies parsed at once, and what the allocator keeps of them (was 190-430 MB).
    assert server_rss_kb(server) - before < 160 * 1024
    state = state_file(server)
    on_disk = sum(file_size(state + suffix) for suffix in ("", "-wal"))
    assert on_disk < 16 * MIB, on_disk  # was 249 MB
    entries = all_entries(server)
    assert len(entries) == 30
    digests = {hashlib.sha256(body).hexdigest(): body for body in bodies}
    for entry in entries:
        cut = entry["body"]
        assert cut["truncated"] is True and cut["sha256"] in digests
        assert cut["bytes"] == len(digests[cut["sha256"]])
        assert digests[cut["sha256"]].decode().startswith(cut["prefix"])
        assert entry["model"] == "gpt-4o" and entry["status"] == 400
    status, _, verdict = request_json("GET", server.url + "/mokku/verdict")
    assert status == 200 and verdict["clients"][0]["requests"] == 30  # type: ignore[index]
    assert request_json("DELETE", server.url + "/mokku/requests")[0] == 200
    assert file_size(state + "-wal") < 16 * MIB  # was 482 MB
    assert all_entries(server) == []


def test_the_journal_is_bounded_in_bytes(kind: str) -> None:
    """Bodies just under the body bound, 3 MiB of them into a 1 MiB journal: the newest are kept,
    within the bound (plus what one check lets through), and the file does not grow past it."""
    server = start(kind, MOKKU_JOURNAL_BYTES=str(MIB))
    try:
        for index in range(50):
            assert post(server, big_body(index, 60 * 1000)) == 400
        ids = [entry["id"] for entry in all_entries(server)]  # a read waits until all is written
        with sqlite3.connect(state_file(server)) as db:
            held, count, newest = db.execute("SELECT SUM(bytes), COUNT(*), MAX(id) FROM requests").fetchone()
        assert held <= 1.5 * MIB, held
        assert 8 <= count < 50
        assert ids == list(range(newest - count + 1, newest + 1))  # the newest, none missing between
        assert file_size(state_file(server)) < 4 * MIB
    finally:
        server.close()


def test_the_verdict_streams(kind: str) -> None:
    """A journal of a hundred 1 MB bodies kept whole: judging it holds one entry at a time
    (it took 590 MB for thirty 7 MB bodies)."""
    server = start(kind, MOKKU_JOURNAL_BODY_BYTES=str(2 * MIB), MOKKU_JOURNAL_BYTES=str(256 * MIB))
    try:
        for index in range(100):
            assert post(server, big_body(index, 1000 * 1000), {"Authorization": "Bearer sk-big"}) == 400
        request_json("GET", server.url + "/mokku/verdict")  # warm: imports, caches, connections
        before = server_rss_kb(server)
        with HealthProbe(server) as probe:
            status, _, verdict = request_json("GET", server.url + "/mokku/verdict", timeout=120)
        probe.check()
        grown = server_rss_kb(server) - before
        assert status == 200 and verdict["clients"][0]["requests"] == 100  # type: ignore[index]
        assert grown < 40 * 1024, f"{grown} KiB"
        # A page of GET /mokku/requests stops near 8 MiB however many entries were asked for.
        status, _, page = request_json("GET", server.url + "/mokku/requests?limit=1000", timeout=120)
        assert status == 200 and page["has_more"] is True  # type: ignore[index]
        assert 5 <= len(page["data"]) <= 9  # type: ignore[index]
    finally:
        server.close()


def test_paging(server: LiveServer) -> None:
    small = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "page me"}]}).encode()
    for _ in range(25):
        assert post(server, small) == 200
    status, _, newest = request_json("GET", server.url + "/mokku/requests?limit=10")
    assert status == 200 and newest["has_more"] is True  # type: ignore[index]
    ids = [entry["id"] for entry in newest["data"]]  # type: ignore[index]
    assert ids == sorted(ids) and len(ids) == 10 and newest["last_id"] == ids[-1]  # type: ignore[index]
    older = request_json("GET", server.url + f"/mokku/requests?limit=10&before={ids[0]}")[2]
    older_ids = [entry["id"] for entry in older["data"]]  # type: ignore[index]
    assert older_ids == sorted(older_ids) and older_ids[-1] < ids[0] and len(older_ids) == 10
    forward = [entry["id"] for entry in all_entries(server)]
    assert len(forward) == 25 and forward == sorted(set(forward))
    assert set(older_ids + ids) <= set(forward)
    for query in ("limit=0", "after=-1", "before=x", "limit=2.5"):
        status, _, error = request_json("GET", server.url + "/mokku/requests?" + query)
        assert status == 400 and error["error"]["type"] == "invalid_request_error", query  # type: ignore[index]
    huge = request_json("GET", server.url + "/mokku/requests?limit=100000")[2]
    assert len(huge["data"]) == 25 and huge["has_more"] is False  # type: ignore[index]


def test_a_lone_surrogate_is_journaled(server: LiveServer) -> None:
    """JSON may carry a lone surrogate (not UTF-8): the reply echoes it and the journal keeps it."""
    body = b'{"model": "gpt-4o\\ud800", "messages": [{"role": "user", "content": "half \\ud800 a pair"}]}'
    status, _, reply = request("POST", server.url + CHAT, body, {"Content-Type": "application/json"})
    assert status == 200
    assert json.loads(reply)["choices"][0]["message"]["content"] == "half \ud800 a pair"
    (entry,) = all_entries(server)
    assert entry["body"]["messages"][0]["content"] == "half \ud800 a pair"
    assert entry["body"]["model"] == "gpt-4o\ud800"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB file system of its own (tmpfs), to fill."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root, to mount a small file system")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode(errors='replace')}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Write until the disk is full (unbuffered: no partial block left to fail at close)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
        except OSError:
            pass
    return filler


def test_a_full_disk(kind: str, small_disk: Path) -> None:
    """The state directory on a full disk: chats answer (their entries are skipped, with a warning),
    admin writes answer 503 naming the file, nothing answers 500; with room again, all works."""
    server = start(kind, TMPDIR=str(small_disk))
    try:
        state = state_file(server)
        assert state.startswith(str(small_disk))
        small = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode()
        assert post(server, small) == 200
        filler = fill(small_disk)
        with HealthProbe(server) as probe, ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda _: post(server, big_body(0, 20_000)), range(80)))
        probe.check()
        assert statuses == [400] * 80  # answered as ever (the body asks for temperature 5)
        answers = [
            request_json("POST", server.url + "/mokku/scenarios", {"reply": {"content": "x" * 30_000}}),
            request_json("DELETE", server.url + "/mokku/requests"),
            request_json("GET", server.url + "/mokku/requests"),
            request_json("GET", server.url + "/mokku/verdict"),
        ]
        for status, _, body in answers:
            assert status in (200, 503), (status, body)
            if status == 503:
                error = body["error"]  # type: ignore[index]
                assert error["code"] == "state_unavailable" and state in error["message"]
        assert answers[0][0] == 503
        assert "cannot be written" in server.output()
        filler.unlink()
        assert request_json("POST", server.url + "/mokku/scenarios", {"reply": {"content": "back"}})[0] == 200
        request_json("DELETE", server.url + "/mokku/scenarios")
        request_json("DELETE", server.url + "/mokku/requests")
        assert post(server, small) == 200
        assert len(all_entries(server)) == 1
    finally:
        server.close()
