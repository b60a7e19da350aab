"""Three servers (gunicorn, 2 workers each) sharing one real Redis, as the replicas of a deployment
behind one Service: a rule posted to one fires exactly ``times`` across all, one rate limit holds
across all, the journal read from any shows every request once, and Redis going away answers 503s
(no hang, no dead worker) until it is back."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Tuple

import pytest

from ..servers import LiveServer, request, request_json


def chat(server: LiveServer, text: str, key: str = "sk-team") -> Tuple[int, Any]:
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    status, _, data = request("POST", server.url + "/v1/chat/completions", body, headers, timeout=30)
    return status, json.loads(data)


def spread(servers: List[LiveServer], count: int) -> List[Tuple[int, Any]]:
    with ThreadPoolExecutor(max_workers=30) as pool:
        return list(pool.map(lambda n: chat(servers[n % len(servers)], f"call {n}"), range(count)))


@pytest.fixture
def replicas(redis_server: Any) -> Any:
    env: Dict[str, str] = {
        **redis_server.env(),
        "MOKKU_ADMIN": "1",
        "MOKKU_JOURNAL": "1",
        "MOKKU_RPM": "30",
        "MOKKU_RATE_WINDOW": "3600",
    }
    servers = [LiveServer("gunicorn", env=env, workers=2) for _ in range(3)]
    yield servers
    for server in servers:
        server.close()


def test_three_replicas_share_rules_limits_and_the_journal(replicas: List[LiveServer]) -> None:
    rule = {"match": {"contains": "call"}, "reply": {"content": "scripted"}, "times": 3}
    assert request_json("POST", replicas[0].url + "/mokku/scenarios", rule)[0] == 200
    results = spread(replicas, 90)
    statuses = [status for status, _ in results]
    assert (statuses.count(200), statuses.count(429)) == (30, 60)  # one limit, not 30 per replica
    answers = [body["choices"][0]["message"]["content"] for status, body in results if status == 200]
    assert answers.count("scripted") == 3
    for server in replicas:
        status, _, page = request_json("GET", server.url + "/mokku/requests?limit=1000")
        entries = page["data"]  # type: ignore[index]
        assert status == 200 and len(entries) == 90 and len({e["id"] for e in entries}) == 90
        assert sorted(e["body"]["messages"][0]["content"] for e in entries) == sorted(
            f"call {n}" for n in range(90)
        )


def test_redis_gone_mid_load_then_back(redis_server: Any, replicas: List[LiveServer]) -> None:
    rule = {"match": {"contains": "never"}, "reply": {"content": "x"}}
    assert request_json("POST", replicas[0].url + "/mokku/scenarios", rule)[0] == 200
    redis_server.stop()
    try:
        results = spread(replicas, 30)  # each call's own 30 s client timeout catches a hang
        for status, body in results:
            assert status == 503 and body["error"]["code"] == "state_unavailable"
            assert "Redis at redis://127.0.0.1" in body["error"]["message"]
        assert request("GET", replicas[1].url + "/health")[0] == 200
    finally:
        redis_server.start()
    deadline = time.monotonic() + 20
    while chat(replicas[2], "after", key="sk-after")[0] != 200:
        assert time.monotonic() < deadline, "no recovery"
        time.sleep(0.2)
    assert [chat(server, "after", key="sk-later")[0] for server in replicas] == [200, 200, 200]
    for server in replicas:
        assert server.process.poll() is None
        assert server.output().count("cannot be used (") <= 2 * 2  # once per worker per outage at most


@pytest.mark.parametrize("kind", ["module", "gunicorn"])
def test_the_password_in_the_url_is_never_logged(redis_server: Any, kind: str) -> None:
    import redis

    redis.Redis.from_url(redis_server.url).acl_setuser(
        "mokku-test", enabled=True, passwords=["+s3cret-pw"], keys=["*"], channels=["*"], commands=["+@all"]
    )
    url = redis_server.url.replace("redis://", "redis://mokku-test:s3cret-pw@")
    server = LiveServer(kind, env={**redis_server.env(), "MOKKU_STATE": url})
    try:
        assert chat(server, "through an authenticated Redis")[0] == 200
        logged = server.output()
    finally:
        server.close()
    assert f"Redis at redis://127.0.0.1:{redis_server.port}/0" in logged and "s3cret-pw" not in logged


@pytest.mark.parametrize("kind", ["module", "gunicorn"])
def test_an_unreachable_redis_at_start_exits_2(kind: str) -> None:
    command = {
        "module": [sys.executable, "-m", "mokku"],
        "gunicorn": [sys.executable, "-m", "gunicorn", "-c", "python:mokku.gunicorn_conf", "mokku.wsgi:app"],
    }[kind]
    import os

    env = {**os.environ, "MOKKU_STATE": "redis://127.0.0.1:1/0", "MOKKU_PORT": "0"}
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "Redis at redis://127.0.0.1:1/0 cannot be used" in out.stderr


def test_a_response_stored_through_one_replica_is_retrieved_through_every_other(
    replicas: List[LiveServer],
) -> None:
    headers = {
        "Content-Type": "application/json",
        "Authorization": "Bearer sk-store",
        "X-Mokku-Token-Ms": "2000",
    }
    body = json.dumps({"model": "gpt-4o", "input": "keep this for a while", "background": True}).encode()
    status, _, data = request("POST", replicas[0].url + "/v1/responses", body, headers)
    assert status == 200
    stored = json.loads(data)["id"]
    for server in replicas * 2:  # fresh connections: each worker of each replica
        status, _, data = request("GET", f"{server.url}/v1/responses/{stored}", None, headers)
        assert status == 200 and json.loads(data)["id"] == stored
    status, _, data = request("POST", f"{replicas[2].url}/v1/responses/{stored}/cancel", b"", headers)
    assert status == 200, data  # still running: its tokens come 2 s apart
    status, _, data = request("GET", f"{replicas[1].url}/v1/responses/{stored}", None, headers)
    assert json.loads(data)["status"] == "cancelled"
