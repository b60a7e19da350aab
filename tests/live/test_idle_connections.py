"""Connections opened ahead and left idle, under gunicorn: Node's fetch opens one after an aborted
stream, browsers preconnect. gunicorn hands each new connection to a thread that waits up to 5 s
for its request, so a few more idle ones than threads held up every other request."""

from __future__ import annotations

import signal
import socket
import time
from typing import List

from ..servers import LiveServer, request

THREADS = 2
IDLE = 6  # three times the threads: before, a request queued behind them for 5 s or more
FIRST_BYTES_S = 5.0  # what gunicorn's thread waited


def test_idle_new_connections_hold_no_thread_and_are_closed_in_time() -> None:
    server = LiveServer("gunicorn", env={"MOKKU_THREADS": str(THREADS)})
    idle: List[socket.socket] = []
    try:
        for _ in range(IDLE):
            idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=60))
        time.sleep(0.2)  # accepted by the worker before the request below
        began = time.monotonic()
        status, _, _ = request("GET", server.url + "/health", timeout=30)
        assert status == 200
        assert time.monotonic() - began < FIRST_BYTES_S - 1, "a request waited behind idle connections"
        # One that speaks at last is answered on the connection it opened.
        idle[0].sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert idle[0].recv(65536).startswith(b"HTTP/1.1 200")
        # The silent ones are not kept for ever: closed unanswered, as gunicorn closes them.
        for sock in idle[1:]:
            assert sock.recv(65536) == b""
        log = server.output()
        assert "Traceback" not in log, log[-4000:]
    finally:
        for sock in idle:
            sock.close()
        server.close()


GRACEFUL_S = 10.0  # gunicorn's graceful timeout in mokku.gunicorn_conf


def test_idle_new_connections_do_not_hold_a_stop_up() -> None:
    """A stopping worker gives a silent new connection gunicorn's 2 s linger, not the 10 s a running
    one waits: it held every stop up to the graceful timeout."""
    server = LiveServer("gunicorn")
    idle: List[socket.socket] = []
    try:
        idle = [socket.create_connection(("127.0.0.1", server.port), timeout=60) for _ in range(3)]
        time.sleep(0.2)  # accepted by the worker
        began = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
        assert time.monotonic() - began < GRACEFUL_S - 2, "the stop waited for idle connections"
    finally:
        for sock in idle:
            sock.close()
        server.close()
