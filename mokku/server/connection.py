"""Waiting inside a request without losing track of the client, and ending a connection on purpose.

A delay (latency, a simulated timeout or stall) waits on the client's socket
rather than in ``time.sleep``: when the client hangs up, the wait ends at
once and the stream stops, so a waiting request costs a thread and nothing
else. The socket comes from the server: gunicorn puts it in
``environ["gunicorn.socket"]``, mokku's own server in ``environ["mokku.socket"]``
(the one ``mokku.`` key in the environ: the server's extension, like gunicorn's).
"""

from __future__ import annotations

import errno
import select
import socket
import struct
import time
from typing import Any, Dict, Optional


class ConnectionClosed(ConnectionResetError):
    """Ends a stream: the client went away, or mokku drops the connection on purpose.

    It is a ``ConnectionResetError`` so that both servers treat it as a client
    reset: quietly, with no error in the log.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(errno.ECONNRESET, reason)


def client_socket(environ: Dict[str, Any]) -> Optional[socket.socket]:
    return environ.get("gunicorn.socket") or environ.get("mokku.socket")


def wait(seconds: float, environ: Dict[str, Any]) -> bool:
    """Wait ``seconds``; False (early) when the client has closed its connection meanwhile."""
    if seconds <= 0:
        return True
    sock = client_socket(environ)
    if sock is None:
        time.sleep(seconds)
        return True
    deadline = time.monotonic() + seconds
    # poll, not select: a worker holding many streams has descriptors above select's 1024 limit.
    poller = select.poll()
    try:
        poller.register(sock, select.POLLIN)
    except (OSError, ValueError):
        return False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return True
        events = poller.poll(remaining * 1000)
        if not events:
            return True
        try:
            peeked = sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            continue
        except OSError:
            return False
        if not peeked:
            return False
        # The client sent more (a pipelined request): it is still there; wait without watching.
        time.sleep(max(0.0, deadline - time.monotonic()))
        return True


_NO_LINGER = struct.pack("ii", 1, 0)


def drop_connection(environ: Dict[str, Any]) -> None:
    """Abort the connection with a TCP reset, as a provider's failing load balancer would.

    The socket is set to linger 0, so that closing it sends a reset; the server then closes it
    without a polite shutdown first (see ``is_dropped``)."""
    sock = client_socket(environ)
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _NO_LINGER)
        except OSError:
            pass
    raise ConnectionClosed("connection dropped on purpose (simulated fault)")


def is_dropped(sock: socket.socket) -> bool:
    """Whether ``drop_connection`` marked this socket: closing it must not send a FIN first."""
    try:
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, len(_NO_LINGER)) == _NO_LINGER
    except OSError:
        return False
