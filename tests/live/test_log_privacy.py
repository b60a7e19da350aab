"""No credential reaches a log line, on both entry points: the stdlib server's access line at DEBUG,
and gunicorn's access log when asked for, whatever its format names."""

from __future__ import annotations

import socket
import time
from typing import Dict

import pytest

from ..servers import LiveServer, request

KEY = "AIzaSyLOGSECRET0123456789"
BEARER = "sk-log-secret-0123456789abcdef"
GEMINI = "/v1beta/models/gemini-2.5-flash:generateContent"
BODY = b'{"contents":[{"parts":[{"text":"hi"}]}]}'
# Every atom a format may hold that could carry a credential: the request line, the query, headers.
FORMAT = '%(h)s "%(r)s" q=%(q)s a=%({authorization}i)s g=%({x-goog-api-key}i)s e=%({raw_uri}e)s'


@pytest.mark.parametrize(
    "kind, env",
    [
        ("module", {"MOKKU_LOG_LEVEL": "DEBUG"}),
        ("gunicorn", {"GUNICORN_CMD_ARGS": f"--access-logfile - --access-logformat '{FORMAT}'"}),
    ],
)
def test_access_lines_carry_no_key(kind: str, env: Dict[str, str]) -> None:
    server = LiveServer(kind, env=env)
    try:
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {BEARER}",
            "X-Goog-Api-Key": KEY,
        }
        status, _, _ = request("POST", f"{server.url}{GEMINI}?key={KEY}&alt=json", BODY, headers=headers)
        assert status == 200
        deadline = time.monotonic() + 20
        while GEMINI not in server.output() and time.monotonic() < deadline:
            time.sleep(0.05)  # the line is written after the answer
        # Request lines refused before any route is known, logged as they came but for the key.
        for line in (
            f"GET /v1/models?key={KEY} extra HTTP/1.1",
            f"GET /v1/models?a=1;key={KEY}\x01 HTTP/1.1",
        ):
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
                raw.sendall(line.encode() + b"\r\nHost: x\r\n\r\n")
                assert raw.recv(100).startswith(b"HTTP/1.1 400")
        refused = "refused: 400" if kind == "module" else "Invalid request from"
        while server.output().count(refused) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        output = server.output()
        assert f"{GEMINI}?key=REDACTED&alt=json" in output  # the line is there, the key is not
        assert output.count(refused) == 2 and "key=REDACTED" in output.split(refused, 1)[1]
        assert KEY not in output and BEARER not in output
    finally:
        server.close()
