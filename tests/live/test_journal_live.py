"""The journal under real servers: shared by gunicorn's workers, separate between servers."""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest

from ..servers import LiveServer, request_json, state_file


def test_two_workers_share_one_journal() -> None:
    server = LiveServer("gunicorn", env={"MOKKU_THREADS": "16", "MOKKU_JOURNAL": "1"}, workers=2)
    try:

        def call(index: int) -> str:
            with openai.OpenAI(base_url=server.url + "/v1", api_key="sk-journal", max_retries=0) as client:
                return client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": f"request {index}"}]
                ).id

        with ThreadPoolExecutor(max_workers=50) as pool:
            ids = list(pool.map(call, range(200)))
        status, _, body = request_json("GET", server.url + "/mokku/requests?limit=1000")
        assert status == 200
        entries = body["data"]
        assert sorted(e["response_id"] for e in entries) == sorted(ids)
        texts = sorted(e["body"]["messages"][0]["content"] for e in entries)
        assert texts == sorted(f"request {i}" for i in range(200))
        pids = re.findall(r"Booting worker with pid: (\d+)", server.output())
        assert len(pids) == 2
    finally:
        server.close()


def test_servers_do_not_share_and_clean_up(tmp_path: Path) -> None:
    chosen = tmp_path / "kept.sqlite3"
    first = LiveServer("module", env={"MOKKU_JOURNAL": "1"})
    second = LiveServer("module", env={"MOKKU_JOURNAL": "1", "MOKKU_STATE": str(chosen)})
    try:
        for server, model in ((first, "first-model"), (second, "second-model")):
            request_json(
                "POST",
                server.url + "/v1/chat/completions",
                {"model": model, "messages": [{"role": "user", "content": "x"}]},
            )
        assert [e["model"] for e in request_json("GET", first.url + "/mokku/requests")[2]["data"]] == [
            "first-model"
        ]
        assert [e["model"] for e in request_json("GET", second.url + "/mokku/requests")[2]["data"]] == [
            "second-model"
        ]
        default_file = Path(state_file(first))
        assert default_file.exists() and default_file.parent.parent == Path(tempfile.gettempdir())
        assert state_file(second) == str(chosen)
    finally:
        assert first.stop() == 0 and second.stop() == 0
        first.close()
        second.close()
    assert not default_file.parent.exists()  # the private directory, made and removed by the server
    assert chosen.exists()
    assert os.path.getsize(chosen) > 0


@pytest.mark.parametrize("kind", ["module", "gunicorn"])
def test_a_stream_closed_before_its_first_byte_is_journaled(kind: str) -> None:
    """The client hangs up while the stream waits for its first token: the entry says so."""
    server = LiveServer(kind, env={"MOKKU_JOURNAL": "1"})
    try:
        body = json.dumps(
            {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        )
        head = (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"X-Mokku-Latency-Ms: 60000\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(head.encode() + body.encode())
            time.sleep(0.3)  # the request is being served, its first token not yet due
        deadline = time.monotonic() + 30
        entries: list = []
        while not entries and time.monotonic() < deadline:
            time.sleep(0.05)
            entries = request_json("GET", server.url + "/mokku/requests")[2]["data"]  # type: ignore[index]
        assert [e["stream"] for e in entries] == [{"outcome": "client_disconnected", "events": 0}]
        assert entries[0]["status"] == 200 and entries[0]["route"] == "/v1/chat/completions"
    finally:
        server.close()
