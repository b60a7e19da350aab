"""The README's OpenAI Agents SDK example, run against the real server to completion."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from ..servers import LiveServer

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_agent_loop_runs_to_completion(live_server: LiveServer) -> None:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"```python\n(from openai import AsyncOpenAI\nfrom agents import.*?)```", text, re.S)
    assert block, "the README's agent example is missing"
    code = block.group(1).replace("http://127.0.0.1:8080/v1", live_server.url + "/v1")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "Sunny in Oslo"
