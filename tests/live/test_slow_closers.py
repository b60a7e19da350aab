"""Clients that never close their end, under gunicorn: its polite close of a connection waits up to
2 s for the client's FIN, and on gunicorn's own worker thread that stopped every other request (and
got the worker killed for a missed heartbeat); mokku's worker waits for them all off that thread."""

from __future__ import annotations

import socket
import time
from typing import List

from ..servers import LiveServer, request

HELD = 120  # 2 s each, one after another: a minute per worker, past gunicorn's 30 s worker timeout
WITHIN_S = 30.0


def read_until(sock: socket.socket, received: bytes = b"", end: bytes = b"") -> bytes:
    """Until ``end`` arrives, or with no ``end`` until the server's FIN."""
    while not end or end not in received:
        chunk = sock.recv(65536)
        if not chunk:
            return received
        received += chunk
    return received


def test_clients_that_never_close_leave_gunicorn_serving() -> None:
    server = LiveServer("gunicorn", workers=2)
    held: List[socket.socket] = []
    try:
        for number in range(HELD):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            if number % 4:  # an answer that closes: the client asked for it
                sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            else:  # gunicorn's own 400, which closes too
                sock.sendall(b"NOT A REQUEST LINE\r\n\r\n")
            held.append(sock)
        # Every one is answered in a while (before: each in turn, after the one before's 2 s, so that
        # the last waited minutes); the bound is far from both, for a loaded machine.
        deadline = time.monotonic() + WITHIN_S
        heads = []
        for sock in held:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            heads.append(read_until(sock, end=b"\r\n\r\n"))
        # Another client is answered while they hold their end (before: after each one's 2 s, in turn).
        assert request("GET", server.url + "/health", timeout=25)[0] == 200
        # And each got the server's FIN after its whole answer.
        answers = [read_until(sock, head) for sock, head in zip(held, heads)]
        assert all(answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"}") for answer in answers[1::4])
        assert all(answer.startswith(b"HTTP/1.1 400") for answer in answers[::4]), answers[0][:200]
        log = server.output()
        assert "WORKER TIMEOUT" not in log and "Traceback" not in log, log[-4000:]
    finally:
        for sock in held:
            sock.close()
        server.close()
