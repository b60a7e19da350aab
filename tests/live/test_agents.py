"""The OpenAI Agents SDK example in docs/endpoints.md, run against the real server to completion."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from ..servers import LiveServer

ENDPOINTS_DOC = Path(__file__).resolve().parents[2] / "docs" / "endpoints.md"


def test_documented_agent_loop_runs_to_completion(live_server: LiveServer) -> None:
    text = ENDPOINTS_DOC.read_text(encoding="utf-8")
    block = re.search(r"```python\n(from openai import AsyncOpenAI\nfrom agents import.*?)```", text, re.S)
    assert block, "the agent example in docs/endpoints.md is missing"
    code = block.group(1).replace("http://127.0.0.1:8080/v1", live_server.url + "/v1")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "Sunny in Oslo"
