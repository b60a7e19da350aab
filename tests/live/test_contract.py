"""schemathesis against the live server: openapi.yml is a contract the server keeps."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from ..servers import LiveServer

ROOT = Path(__file__).resolve().parents[2]
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def test_schemathesis_finds_nothing() -> None:
    server = LiveServer("gunicorn")
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "run",
                server.url + "/openapi.json",
                "--checks",
                CHECKS,
                "--mode",
                "all",
                "--max-examples",
                "100",
                "--no-color",
                # The same examples on every run, whatever earlier runs stored: a failure is the
                # code's, reproducible, not the luck of the draw.
                "--seed",
                "1",
                "--generation-database",
                "none",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=ROOT,
            env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.live.contract_hooks"},
        )
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
        # Warnings (e.g. random response ids that 404) are fine; failures and errors are not.
        assert not re.search(r"\d+ (failures?|errors?)\b", result.stdout), result.stdout[-6000:]
        assert re.search(r"\d+ generated, \d+ passed", result.stdout), result.stdout[-3000:]
        assert "Traceback" not in server.output()
    finally:
        server.close()
