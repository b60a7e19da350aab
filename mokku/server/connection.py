"""Waiting inside a request without losing track of the client, and ending a connection on purpose.

A delay (latency, a simulated timeout or stall) waits on the client's socket
rather than in ``time.sleep``: when the client hangs up, the wait ends at
once and the stream stops, so a waiting request costs a thread and nothing
else. The socket comes from the server: gunicorn puts it in
``environ["gunicorn.socket"]``, mokku's own server in ``environ["mokku.socket"]``
(its ``mokku.`` keys in the environ are the server's extensions, like gunicorn's).
"""

from __future__ import annotations

import errno
import select
import socket
import struct
import time
from typing import Any, Dict, Iterator, List, Optional


class ConnectionClosed(ConnectionResetError):
    """Ends a stream: the client went away, or mokku drops the connection on purpose.

    It is a ``ConnectionResetError`` so that both servers treat it as a client
    reset: quietly, with no error in the log.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(errno.ECONNRESET, reason)


def client_socket(environ: Dict[str, Any]) -> Optional[socket.socket]:
    return environ.get("gunicorn.socket") or environ.get("mokku.socket")


# The peer's close (its FIN), reported even while bytes it sent before wait unread: Linux only.
_RDHUP = getattr(select, "POLLRDHUP", 0)
_GONE = select.POLLHUP | select.POLLERR | select.POLLNVAL | _RDHUP


def wait(seconds: float, environ: Dict[str, Any]) -> bool:
    """Wait ``seconds``; False (early) when the client has closed its connection meanwhile.

    Bytes the client sends meanwhile (the next request on a kept-alive connection, or junk) are
    left where they are, and the wait still ends when the client goes: on Linux, ``POLLRDHUP``
    reports its close behind unread bytes; elsewhere mokku's own server moves them into the
    connection's buffer (``environ["mokku.read_ahead"]``) so that its close shows; only under
    another server on another system does the wait then sleep to its end without watching."""
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
        poller.register(sock, select.POLLIN | _RDHUP)
    except (OSError, ValueError):
        return False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return True
        events = poller.poll(remaining * 1000)
        if not events:
            continue
        if events[0][1] & _GONE:
            return False
        try:
            peeked = sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            continue
        except OSError:
            return False
        if not peeked:
            return False
        # The client sent more and is still there: from now on, watch for its close only.
        if _RDHUP:
            poller.modify(sock, _RDHUP)
            continue
        read_ahead = environ.get("mokku.read_ahead")
        if read_ahead is not None:
            if not read_ahead():
                return False
            continue
        time.sleep(max(0.0, deadline - time.monotonic()))
        return True


_NO_LINGER = struct.pack("ii", 1, 0)


def hold(seconds: float, environ: Dict[str, Any], what: str) -> None:
    """Wait ``seconds`` inside a request; a client that hangs up meanwhile ends the request there,
    so no work goes on for nobody (``ConnectionClosed``: both servers close quietly)."""
    if seconds > 0 and not wait(seconds, environ):
        raise ConnectionClosed(f"client disconnected while {what}")


def abandon(environ: Dict[str, Any]) -> None:
    """The client stopped taking the answer (or left) before its end: make the server's close of
    the connection immediate. Linger 0 (a reset, not a FIN queued behind bytes the client will not
    read) and the read side shut: gunicorn's close first waits up to 2 s for the client's own close,
    on its worker's main thread, so that a few dozen such clients stopped every worker's heartbeat."""
    sock = client_socket(environ)
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _NO_LINGER)
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass


# An answer past this may not fit the socket's buffers: a client that stops reading stalls its write.
LARGE_ANSWER = 256 * 1024


class Watched:
    """A large answer (past ``LARGE_ANSWER``) handed to the server through this, so that a client
    that does not take all of it gets the immediate close of ``abandon``, as a stream's does."""

    __slots__ = ("_body", "_environ", "_taken")

    def __init__(self, body: List[bytes], environ: Dict[str, Any]) -> None:
        self._body, self._environ, self._taken = body, environ, False

    def __iter__(self) -> Iterator[bytes]:
        yield from self._body
        self._taken = True  # the server came back after the last write: it went out

    def close(self) -> None:
        if not self._taken:
            abandon(self._environ)


def drop_connection(environ: Dict[str, Any]) -> None:
    """Abort the connection with a TCP reset, as a provider's failing load balancer would.

    The socket is set to linger 0, so that closing it sends a reset; mokku's own server closes a
    connection whose response ends in an exception at once, without a polite shutdown first.
    gunicorn's shuts it down first (a FIN, a clean end), so under gunicorn it is closed here."""
    sock = client_socket(environ)
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _NO_LINGER)
            if "gunicorn.socket" in environ:
                sock.close()  # the reset now; gunicorn's own close of it does nothing more
        except OSError:
            pass
    raise ConnectionClosed("connection dropped on purpose (simulated fault)")


class Wakeup:
    """A selector loop's doorbell: other threads ``ring`` it, the loop selects ``reader`` and
    ``drain``s it. Both ends are non-blocking: a ring while one is pending is dropped, not waited on."""

    def __init__(self) -> None:
        self.reader, self._writer = socket.socketpair()
        self.reader.setblocking(False)
        self._writer.setblocking(False)

    def ring(self) -> None:
        try:
            self._writer.send(b"\0")
        except OSError:
            pass  # a wake-up is already pending, or the loop is closed

    def drain(self) -> None:
        try:
            while self.reader.recv(4096):
                pass
        except OSError:
            pass

    def close(self) -> None:
        self.reader.close()
        self._writer.close()
