"""A threaded stdlib WSGI server: ``wsgiref`` with one thread per connection.

``wsgiref`` alone serves one request at a time, which a single long stream
would block. This server gives each connection a daemon thread, caps how many
run at once (``MOKKU_THREADS``; the rest wait in the listen backlog), sends
access lines to the ``mokku.access`` logger, and treats a client that hangs up
as normal rather than as an error.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
from typing import IO, TYPE_CHECKING, Any, Dict, Tuple, cast
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication

from mokku import __version__
from mokku.server.connection import is_dropped

log = logging.getLogger("mokku")
access_log = logging.getLogger("mokku.access")


class _ServerHandler(ServerHandler):
    server_software = f"mokku/{__version__}"
    request_handler: WSGIRequestHandler  # a back-pointer for logging, as wsgiref's own server sets

    def log_exception(self, exc_info: Any) -> None:
        log.error("error while serving a response", exc_info=exc_info)


class _RequestHandler(WSGIRequestHandler):
    server_version = f"mokku/{__version__}"

    def get_environ(self) -> Dict[str, Any]:
        environ = super().get_environ()
        if self.headers.get("content-type") is None:
            # wsgiref reports a missing Content-Type as text/plain; keep it absent.
            environ["CONTENT_TYPE"] = ""
        environ["mokku.socket"] = self.connection  # lets a waiting stream notice a hang-up
        return environ

    def handle(self) -> None:
        """One request per connection, as ``wsgiref`` does, but marked multithreaded."""
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = self.request_version = self.command = ""
            self.send_error(414)
            return
        if not self.parse_request():
            return
        handler = _ServerHandler(
            self.rfile, cast(IO[bytes], self.wfile), self.get_stderr(), self.get_environ(), multithread=True
        )
        handler.request_handler = self
        handler.run(cast(ThreadingWSGIServer, self.server).app)

    def log_message(self, format: str, *args: Any) -> None:
        access_log.debug("%s %s", self.address_string(), format % args)


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, address: Tuple[str, int], threads: int, app: WSGIApplication) -> None:
        self.app = app
        self._slots = threading.BoundedSemaphore(threads)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _RequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve the host name (a DNS round trip at start-up).
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])
        self.setup_environ()

    def shutdown_request(self, request: Any) -> None:
        if is_dropped(request):  # a simulated drop: close without the polite FIN, the client sees a reset
            self.close_request(request)
        else:
            super().shutdown_request(request)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection in a daemon thread once one of the ``threads`` slots is free."""
        self._slots.acquire()
        slot = _Slot(self._slots)
        thread = threading.Thread(target=self._serve, args=(request, client_address, slot), daemon=True)
        try:
            thread.start()
        except BaseException:
            # The thread may not exist (it could not start) or may already run (a signal came while
            # start() waited for it): the slot is given back once either way.
            slot.free()
            raise

    def _serve(self, request: Any, client_address: Any, slot: _Slot) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            slot.free()


class _Slot:
    """One of the server's thread slots, given back at most once."""

    def __init__(self, slots: threading.BoundedSemaphore) -> None:
        self._slots = slots
        self._lock = threading.Lock()
        self._held = True

    def free(self) -> None:
        with self._lock:
            held, self._held = self._held, False
        if held:
            self._slots.release()


def make_server(app: WSGIApplication, host: str, port: int, threads: int) -> ThreadingWSGIServer:
    """Bind (``port`` 0 picks a free one) and attach the app; call ``serve_forever`` to run."""
    return ThreadingWSGIServer((host, port), threads, app)
