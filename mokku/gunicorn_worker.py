"""gunicorn's threaded (``gthread``) worker, with its polite close of a connection moved off the
worker's main thread, and a new connection's wait for its first bytes off its threads (``accept``).

gunicorn 25+ closes a connection that will not be kept alive (the client's ``Connection: close``,
HTTP/1.0, its own 400 and 408 answers) as RFC 9112 asks: it sends its FIN, then waits up to 2 s for
the client's, so that request bytes left unread do not turn the close into a reset that could cut
the answer short. It waits on the worker's main thread, one connection after another, and sends no
heartbeat meanwhile: a few dozen clients that never close stalled every request for tens of
seconds, and 80 got a worker killed (``WORKER TIMEOUT``) with every stream it held. Here the FIN
goes out at once as before, and one thread per worker waits for all such clients together, closing
each at its FIN, after 64 KiB drained, or after the same 2 s. Past ``MAX_LINGERING`` waiting
sockets a new one is closed at once: the descriptors it holds stay bounded.
"""

from __future__ import annotations

import errno
import functools
import os
import selectors
import socket
import threading
import time
from typing import Any, Dict, List, Tuple

from gunicorn import util
from gunicorn.workers import gthread

from mokku import errors
from mokku.server.connection import Wakeup
from mokku.server.http import closing_error

LINGER_S = 2.0  # as gunicorn's own close
MAX_DRAIN = 64 * 1024  # as gunicorn's own close
# How long gunicorn's thread waits for a new connection's first bytes before it gives it back.
FIRST_BYTES_S = getattr(gthread, "DEFAULT_WORKER_DATA_TIMEOUT", 5.0)
MAX_LINGERING = 256  # sockets one worker waits on at once (each holds a descriptor)


class Lingerer:
    """One thread that waits for many half-closed sockets' FINs, each up to ``LINGER_S``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._new: List[socket.socket] = []
        self._pid = -1

    def _start(self) -> None:
        """A selector and thread of this process's own (a worker is forked after the import)."""
        self._selector = selectors.DefaultSelector()
        self._wakeup = Wakeup()
        self._selector.register(self._wakeup.reader, selectors.EVENT_READ)
        self._waiting: Dict[socket.socket, Tuple[float, int]] = {}  # deadline, bytes drained
        self._new = []
        threading.Thread(target=self._run, name="mokku-linger", daemon=True).start()
        self._pid = os.getpid()

    def take(self, sock: socket.socket) -> None:
        """Send the FIN now; the close follows the client's, off the caller's thread."""
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            _close(sock)
            return
        with self._lock:
            if self._pid != os.getpid():
                self._start()
            if len(self._new) + len(self._waiting) >= MAX_LINGERING:
                full = True
            else:
                full = False
                self._new.append(sock)
        if full:
            _close(sock)
            return
        self._wakeup.ring()

    def _run(self) -> None:
        while True:
            now = time.monotonic()
            timeout = min((deadline for deadline, _ in self._waiting.values()), default=now + 60) - now
            for key, _ in self._selector.select(max(0.0, timeout)):
                sock: Any = key.fileobj
                if sock is self._wakeup.reader:
                    self._adopt()
                else:
                    self._drain(sock)
            now = time.monotonic()
            for sock in [s for s, (deadline, _) in self._waiting.items() if deadline <= now]:
                self._forget(sock)

    def _adopt(self) -> None:
        self._wakeup.drain()
        with self._lock:
            new, self._new = self._new, []
        deadline = time.monotonic() + LINGER_S
        for sock in new:
            try:
                sock.setblocking(False)
                self._selector.register(sock, selectors.EVENT_READ)
            except (OSError, ValueError):
                _close(sock)
                continue
            self._waiting[sock] = (deadline, 0)

    def _drain(self, sock: socket.socket) -> None:
        deadline, drained = self._waiting[sock]
        try:
            data = sock.recv(MAX_DRAIN)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        drained += len(data)
        if not data or drained >= MAX_DRAIN:
            self._forget(sock)
        else:
            self._waiting[sock] = (deadline, drained)

    def _forget(self, sock: socket.socket) -> None:
        del self._waiting[sock]
        try:
            self._selector.unregister(sock)
        except (KeyError, ValueError):
            pass
        _close(sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


LINGERER = Lingerer()


class Connection(gthread.TConn):
    def close(self, graceful: bool = False) -> None:
        if graceful:  # gunicorn 25+; older versions never ask, and close at once
            LINGERER.take(self.sock)
        else:
            super().close()


def write_error(sock: socket.socket, status: int, reason: str, message: str) -> None:
    """gunicorn's answer to a request it refuses before the app sees it (a request line or header
    past its limits, broken framing), in the OpenAI envelope as mokku's own server answers one, not
    as an HTML page that no client's error handling reads."""
    kind = "server_error" if status >= 500 else "invalid_request_error"
    util.write_nonblock(sock, closing_error(errors.APIError(status, message or reason, kind)))


class Worker(gthread.ThreadWorker):
    """gunicorn's ``gthread`` worker whose connections close politely off its main thread, and whose
    own refusals are JSON."""

    def init_process(self) -> None:
        gthread.TConn = Connection  # what its ``accept`` makes, in this worker process only
        util.write_error = write_error  # what its ``handle_error`` writes, likewise
        super().init_process()

    if hasattr(gthread.ThreadWorker, "on_pending_socket_readable"):  # gunicorn 25+

        def accept(self, listener: socket.socket) -> None:
            """A new connection waits on the poller for its first bytes, as a kept-alive one does.
            gunicorn hands it to a thread at once, which waits up to 5 s for them: connections
            opened ahead and left idle (Node's fetch after an abort, a browser's preconnect) took
            every thread, and requests queued behind them for seconds. It is closed unanswered past
            the same 5 s and a keep-alive timeout more, as gunicorn closes one."""
            try:
                client, address = listener.accept()
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                    raise
                return
            self.nr_conns += 1
            conn = Connection(self.cfg, client, address, listener.getsockname())  # non-blocking
            conn.timeout = time.monotonic() + FIRST_BYTES_S + self.cfg.keepalive
            self.pending_conns.append(conn)
            self.poller.register(
                conn.sock, selectors.EVENT_READ, functools.partial(self.on_pending_socket_readable, conn)
            )

        def murder_pending(self) -> None:
            """A stopping worker waits for a silent new connection's request only as long as for a
            kept-alive one's (gunicorn's linger), not its whole 10 s, which held every stop up."""
            if not self.alive:
                deadline = time.monotonic() + getattr(gthread, "STOP_KEEPALIVE_LINGER", 2.0)
                for conn in self.pending_conns:  # the same deadline for all: still in order
                    conn.timeout = min(conn.timeout, deadline)
            super().murder_pending()
