"""``python -m bench.journal_cost``: what the journal costs a non-streaming chat, in process CPU.

Under wrk the server's CPU per request varies by ±15 µs between rounds, more than the journal's
parts cost, so they cannot be told apart there. Here the app is called directly by 8 threads (as a
gthread worker's), each pausing 0.2 ms per request as a socket would, and the CPU of the whole
process (the journal's writer thread included) is divided by the requests: steady to a few µs, and
the same GIL contention as in a worker.
"""

from __future__ import annotations

import io
import json
import statistics
import tempfile
import threading
import time
from typing import Any, Dict, List, Tuple

from mokku import config
from mokku.server.app import App

BODY = json.dumps(
    {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello there, how are you?"}]}
).encode()
THREADS = 8
PER_THREAD = 4000


def environ() -> Dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/v1/chat/completions",
        "QUERY_STRING": "",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(BODY)),
        "wsgi.input": io.BytesIO(BODY),
        "HTTP_AUTHORIZATION": "Bearer sk-bench",
        "HTTP_HOST": "127.0.0.1:8080",
        "HTTP_USER_AGENT": "bench",
        "wsgi.multithread": True,
        "SERVER_NAME": "127.0.0.1",
        "REMOTE_ADDR": "127.0.0.1",
    }


def measure(env: Dict[str, str]) -> Tuple[float, float]:
    """(CPU µs per request, requests/s) of an app with these settings."""
    app = App(config.load({"MOKKU_STATE": tempfile.mkdtemp() + "/state.sqlite3", **env}))

    def call() -> None:
        b"".join(app(environ(), lambda status, headers: None))
        time.sleep(0.0002)

    def worker() -> None:
        for _ in range(PER_THREAD):
            call()

    for _ in range(500):
        call()
    cpu, wall = time.process_time(), time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if app.journal is not None:
        app.journal.settle()  # what was handed over is written, and counted
    count = THREADS * PER_THREAD
    return (time.process_time() - cpu) / count * 1e6, count / (time.perf_counter() - wall)


def main() -> None:
    results: Dict[str, List[float]] = {"off": [], "on": []}
    for _ in range(3):
        for name, flag in (("off", "0"), ("on", "1")):
            results[name].append(measure({"MOKKU_JOURNAL": flag})[0])
    off, on = statistics.median(results["off"]), statistics.median(results["on"])
    print(
        f"journal off {off:.1f} µs/request, on {on:.1f} µs/request: +{on - off:.1f} µs, ratio {off / on:.2f}"
    )


if __name__ == "__main__":
    main()
