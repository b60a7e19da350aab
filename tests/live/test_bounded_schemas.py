"""Schema and regex attacks against the real servers: refused (or answered) at once, memory flat,
/health answered throughout."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, List, Tuple

import openai
import pytest

from ..servers import LiveServer, request, request_json, server_rss_kb
from ..spec import assert_invalid_request
from ..test_bounded_work import _nested_arrays

TEXT = "a" * 24 + "!"


# The worst of the attacks measured before the bounds: about 30 minutes, never ending, +400 MB, 3.7 MB.
SCHEMAS: List[Tuple[Any, str]] = [
    ({"anyOf": [{"$ref": "#"}] * 20}, "schema nodes"),
    ({"type": "array", "minItems": 10**30}, "minItems"),
    ({"type": "string", "minLength": 20_000_000}, "minLength"),
    (_nested_arrays(100), "schema nodes"),
    ({"type": "string", "pattern": "(a)\\1"}, "backreferences"),
]


def _tools(client: openai.OpenAI, schema: Any) -> None:
    client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": TEXT}],
        tools=[{"type": "function", "function": {"name": "f", "parameters": schema}}],
    )


def _response_format(client: openai.OpenAI, schema: Any) -> None:
    client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": TEXT}],
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    )


def _text_format(client: openai.OpenAI, schema: Any) -> None:
    client.responses.create(
        model="gpt-4o", input=TEXT, text={"format": {"type": "json_schema", "name": "x", "schema": schema}}
    )


# Each way in through the official SDK, and the parameter its 400 names.
CALLS: List[Tuple[Callable[[openai.OpenAI, Any], None], str]] = [
    (_tools, "tools[0].function.parameters"),
    (_response_format, "response_format.json_schema.schema"),
    (_text_format, "text.format.schema"),
]


def _refused(
    server: LiveServer, call: Callable[[openai.OpenAI, Any], None], param: str, schema: Any, message: str
) -> None:
    with openai.OpenAI(base_url=server.url + "/v1", api_key="sk-test", max_retries=0, timeout=60) as client:
        started = time.monotonic()
        with pytest.raises(openai.BadRequestError) as caught:
            call(client, schema)
        assert time.monotonic() - started < 10
    assert caught.value.status_code == 400
    assert_invalid_request(caught.value.response.json(), param, None, message)


def _regexes(server: LiveServer) -> None:
    """An unsafe rule regex is refused; a pattern that backtracks exponentially in re matches at once."""
    status, _, body = request_json(
        "POST", server.url + "/mokku/scenarios", {"match": {"regex": "(a)\\1"}, "reply": {"content": "x"}}
    )
    assert status == 400
    assert_invalid_request(body, "rule.match.regex", None, "backreferences")
    for text in ("a" * 30 + "!", "a" * 9_000 + "!"):
        started = time.monotonic()
        status, _, reply = request_json(
            "POST",
            server.url + "/v1/chat/completions",
            {"model": "m", "messages": [{"role": "user", "content": text}]},
            timeout=60,
        )
        assert time.monotonic() - started < 10
        assert status == 200
        assert reply["choices"][0]["message"]["content"] == text  # type: ignore[index]


@pytest.mark.parametrize("kind", ["module", "gunicorn"])
def test_schema_and_regex_attacks_leave_the_server_serving(kind: str) -> None:
    server = LiveServer(kind)
    try:
        status, _, _ = request_json(
            "POST",
            server.url + "/mokku/scenarios",
            {"match": {"regex": "^(a+)+$"}, "reply": {"content": "all a"}},
        )
        assert status == 200
        before = server_rss_kb(server)
        health: List[Tuple[int, float]] = []
        stop = threading.Event()

        def probe() -> None:
            while not stop.is_set():
                started = time.monotonic()
                status = request("GET", server.url + "/health", timeout=30)[0]
                health.append((status, time.monotonic() - started))
                time.sleep(0.05)

        prober = threading.Thread(target=probe)
        prober.start()
        try:
            jobs = [(call, param, schema, message) for call, param in CALLS for schema, message in SCHEMAS]
            with ThreadPoolExecutor(max_workers=4) as pool:
                for _ in range(2):
                    list(pool.map(lambda job: _refused(server, *job), jobs))
                    _regexes(server)
            raw = json.dumps(
                {
                    "model": "gpt-4o",
                    "messages": [{"role": "user", "content": TEXT}],
                    "response_format": {
                        "type": "json_schema",
                        "json_schema": {"name": "x", "schema": {"type": "number", "minimum": "__inf__"}},
                    },
                }
            ).replace('"__inf__"', "1e400")
            status, _, data = request(
                "POST",
                server.url + "/v1/chat/completions",
                raw.encode(),
                {"Content-Type": "application/json"},
            )
            assert status == 400  # was a 500 (OverflowError)
            assert_invalid_request(
                json.loads(data),
                "response_format.json_schema.schema",
                None,
                "minimum must be a finite number",
            )
        finally:
            stop.set()
            prober.join()
        assert health and {status for status, _ in health} == {200}
        assert max(elapsed for _, elapsed in health) < 5
        # Before: +400 MB for the minLength attack alone.
        assert server_rss_kb(server) - before < 100 * 1024
    finally:
        server.close()
