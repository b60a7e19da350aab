"""The Python mock servers from PyPI that mokku is measured against, each in its own venv.

Each runs the way its own CLI runs it (one uvicorn process), with access logging off as mokku's
is, and, where its server can, also with as many processes as mokku's gunicorn (``workers_args``):
a row each. A peer is measured on the workloads it can do; where it cannot, the reason is reported.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional

HOME = Path(__file__).resolve().parent / ".peers"
PROMPT = "Hello there, how are you doing today?"  # what every chat workload sends
# mockllm answers from a file of canned replies: the bench's prompt, answered with itself.
MOCKLLM_RESPONSES = f"""\
responses:
  "{PROMPT}": "{PROMPT}"
defaults:
  unknown_response: "{PROMPT}"
"""


class Peer(NamedTuple):
    name: str
    command: List[str]  # "{bin}" stands for the venv's bin directory, "{port}" for the port
    ready: str  # a path that answers 200 once it is up
    skips: Dict[str, str]  # workload -> why it is not measured
    slow_stream_args: Optional[List[str]] = None  # W5: a server pacing chunks 100 ms apart
    env: Optional[Dict[str, str]] = None
    workers_args: Optional[List[str]] = None  # as many processes as mokku runs (2 workers)


WORKERS = 2  # mokku's gunicorn workers in the bench
TWIN = " ({} processes)"  # the name of a peer's row with WORKERS processes


UVICORN = [
    "{bin}/python",
    "-m",
    "uvicorn",
    "--host",
    "127.0.0.1",
    "--port",
    "{port}",
    "--log-level",
    "warning",
]

PEERS = [
    Peer(
        "llmock",
        [
            *["{bin}/llmock", "serve", "--host", "127.0.0.1", "--port", "{port}"],
            *["--log-level", "warning", "--response-style", "echo"],
        ],
        "/v1/models",
        {},
        slow_stream_args=["--stream-chunk-delay-ms", "100"],
    ),
    Peer(
        "mock-ai-api",
        [*UVICORN, "app.openai_app:app"],
        "/v1/models",
        {
            "W2": "every stream pauses a fixed 40 ms between events, so streams/s would measure the pause",
            "W5": "its only stream delays are fixed (40 or 80 ms), not 100 ms",
        },
        workers_args=["--workers", str(WORKERS)],
    ),
    Peer(
        "mockllm",
        [*UVICORN, "mockllm.server:app"],
        "/models",
        {
            "W3": "no embeddings endpoint",
            "W4": "no GET /v1/models (models are listed at /models in its own shape)",
            "W5": "its delays are per character with ±50% random variation, so chunks keep no schedule",
        },
        env={"MOCKLLM_RESPONSES_FILE": str(HOME / "mockllm-responses.yml")},
        workers_args=["--workers", str(WORKERS)],
    ),
]


def install(peer: Peer) -> str:
    """The peer's venv (made on first use) and its installed version; raises when it cannot install."""
    venv = HOME / peer.name
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", peer.name],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    if peer.name == "mockllm":
        (HOME / "mockllm-responses.yml").write_text(MOCKLLM_RESPONSES)
    return subprocess.run(
        [str(python), "-c", f"from importlib.metadata import version; print(version({peer.name!r}))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def command(peer: Peer, slow: bool = False) -> List[str]:
    """The peer's command line, "{port}" left for the caller to fill."""
    extra = peer.slow_stream_args if slow and peer.slow_stream_args else []
    bin_dir = str(HOME / peer.name / "bin")
    return [part.replace("{bin}", bin_dir) for part in peer.command + extra]
