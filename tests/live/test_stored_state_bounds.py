"""Stored state against the real servers: the Responses store keeps at most its bytes, oldest out."""

from __future__ import annotations

import json

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
