"""The client verdict against a real server: a careless retry loop fails it, the SDK's retries pass it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Iterator

import openai
import pytest

from ..servers import LiveServer, request, request_json

CHAT = "/v1/chat/completions"


@pytest.fixture(params=["module", "gunicorn"])
def server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    live = LiveServer(request.param, env={"MOKKU_JOURNAL": "1"})
    yield live
    live.close()


def verdict(server: LiveServer) -> dict:
    status, _, body = request_json("GET", server.url + "/mokku/verdict")
    assert status == 200
    return body


def kinds(report: dict) -> set:
    return {finding["kind"] for client in report["clients"] for finding in client["findings"]}


def careless_call(server: LiveServer, model: str, attempts: int, first_pause: float = 0.0) -> None:
    """A hand-written retry loop that ignores retry-after: it waits ``first_pause`` before its first
    retry, then retries at once."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}).encode()
    for attempt in range(attempts):
        if attempt == 1:
            time.sleep(first_pause)
        status, _, _ = request(
            "POST",
            server.url + CHAT,
            body,
            {"Content-Type": "application/json", "Authorization": "Bearer sk-careless-client"},
        )
        if status == 200:
            return


def test_ignoring_retry_after_fails(server: LiveServer) -> None:
    # Retries at once after being asked to wait a minute: too soon however slow the machine.
    careless_call(server, "gpt-4o@rate_limit:60000", 3)
    report = verdict(server)
    assert not report["passed"]
    assert "retried_too_soon" in kinds(report)
    (client,) = report["clients"]
    assert "sk-careless-client" not in json.dumps(report)
    finding = next(f for f in client["findings"] if f["kind"] == "retried_too_soon")
    assert finding["severity"] == "error" and len(finding["evidence"]) == 2
    cli = subprocess.run(
        [sys.executable, "-m", "mokku", "verdict", "--url", server.url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert cli.returncode == 1
    assert "retried_too_soon" in cli.stdout


def test_non_retryable_and_storm(server: LiveServer) -> None:
    careless_call(server, "permission-error", 2)
    # A second before the first retry, none before the others: the waits shrink, however slow the
    # machine (the last would have to take over 1.5 s to look like backing off).
    careless_call(server, "gpt-4o@server_error", 12, first_pause=1.0)
    found = kinds(verdict(server))
    assert {"retried_non_retryable", "retry_storm", "no_backoff"} <= found


def test_the_sdk_retries_pass(server: LiveServer) -> None:
    with openai.OpenAI(base_url=server.url + "/v1", api_key="sk-good-client", max_retries=2) as client:
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": "hi"}],
                extra_headers={"X-Mokku-Fault": "rate_limit:300"},
            )
    report = verdict(server)
    assert report["passed"], report
    assert report["clients"][0]["requests"] == 3
    cli = subprocess.run(
        [sys.executable, "-m", "mokku", "verdict", "--url", server.url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert cli.returncode == 0 and "passed" in cli.stdout


def test_accepted_broken_stream(server: LiveServer) -> None:
    with openai.OpenAI(base_url=server.url + "/v1", api_key="sk-x", max_retries=0) as client:
        list(
            client.chat.completions.create(
                model="gpt-4o@stream_truncated:2",
                messages=[{"role": "user", "content": "a b c d"}],
                stream=True,
            )
        )
    # A stream's entry is written when the server closes it, just after its last byte: wait for it.
    deadline = time.monotonic() + 10
    while "accepted_broken_stream" not in kinds(verdict(server)):
        assert time.monotonic() < deadline, verdict(server)
        time.sleep(0.05)
