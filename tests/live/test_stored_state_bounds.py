"""Stored state against the real servers: the Responses store keeps at most its bytes, oldest out."""

from __future__ import annotations

import http.client
import json
from concurrent.futures import ThreadPoolExecutor
from typing import List

import pytest

from ..servers import LiveServer, request, server_rss_kb

# About 1 MB of tools, echoed into every stored response.
TOOLS = [
    {"type": "function", "name": f"tool_{i:05d}", "parameters": {"type": "object"}} for i in range(15_000)
]


@pytest.mark.parametrize("kind", ["module", "gunicorn"])
def test_the_responses_store_keeps_at_most_its_bytes(kind: str) -> None:
    server = LiveServer(kind)
    try:
        body = json.dumps({"model": "gpt-4o", "input": "hi", "tools": TOOLS, "tool_choice": "none"}).encode()
        headers = {"Content-Type": "application/json"}
        before = server_rss_kb(server)
        ids = []
        for _ in range(80):  # 80 MB of responses for a 64 MiB store
            status, _, answer = request("POST", server.url + "/v1/responses", body, headers, timeout=60)
            assert status == 200
            ids.append(json.loads(answer)["id"])
        assert request("GET", server.url + f"/v1/responses/{ids[0]}")[0] == 404  # the oldest went first
        status, _, kept = request("GET", server.url + f"/v1/responses/{ids[-1]}")
        assert status == 200 and len(json.loads(kept)["tools"]) == len(TOOLS)
        assert server_rss_kb(server) - before < 200 * 1024  # 64 MiB kept, plus what parsing leaves
    finally:
        server.close()


@pytest.mark.parametrize("kind", ["module", "gunicorn"])
def test_ever_new_api_keys_do_not_grow_the_rate_limit_table(kind: str) -> None:
    """More keys than the table holds (10,000): every key is served within its limit, memory stays flat."""
    server = LiveServer(kind, env={"MOKKU_RPM": "60"})
    try:
        host, port = "127.0.0.1", server.port
        request("GET", server.url + "/v1/models", headers={"Authorization": "Bearer sk-warm-up"})
        before = server_rss_kb(server)

        def send(first: int) -> List[int]:
            connection = http.client.HTTPConnection(host, port, timeout=60)
            statuses = []
            try:
                for number in range(first, first + 1_500):
                    connection.request(
                        "GET", "/v1/models", headers={"Authorization": f"Bearer sk-key-{number:06d}"}
                    )
                    response = connection.getresponse()
                    response.read()
                    statuses.append(response.status)
            finally:
                connection.close()
            return statuses

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = [status for part in pool.map(send, range(0, 12_000, 1_500)) for status in part]
        assert statuses == [200] * 12_000
        assert server_rss_kb(server) - before < 30 * 1024
    finally:
        server.close()
