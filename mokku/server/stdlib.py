"""mokku's own HTTP/1.1 server, behind ``python -m mokku``: an event loop for connections, threads for requests.

The main thread runs a selector loop. It accepts connections and reads each request's line and
headers (and a body of up to ``PREREAD`` bytes) without a thread, so that an idle kept-alive
connection, a slow or junk request head costs a file descriptor, never a thread, and is closed when
it takes too long (``Timeouts``). A request takes one of ``threads`` worker threads only once it is
complete enough to serve: the thread reads the rest of its body (within timeouts), runs the app and
writes the response (chunked when it has no Content-Length and the client speaks HTTP/1.1), then
hands the connection back to the loop for the next request, or closes it. Two more threads serve
only ``GET /health``, so that a health check is answered even when every thread is busy.

On stop, requests in flight get ``Timeouts.drain`` to finish; the connections still open are then
reset, so that no client takes a cut stream for a finished one.
"""

from __future__ import annotations

import collections
import errno
import heapq
import itertools
import logging
import queue
import re
import selectors
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, Iterable, List, Optional, Set, Tuple
from urllib.parse import unquote

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication

from mokku import __version__, errors
from mokku.credentials import redact_query, redact_text
from mokku.server.connection import Wakeup
from mokku.server.http import (
    BODY_READ_SECONDS,
    BODY_SECONDS,
    WRITE_SECONDS,
    BodyClock,
    BodyError,
    BodyTooLarge,
    closing_error,
)

log = logging.getLogger("mokku")
access_log = logging.getLogger("mokku.access")

SERVER = f"mokku/{__version__}"


@dataclass(frozen=True)
class Timeouts:
    """How long the server waits on a client, in seconds (see docs/limits.md)."""

    idle: float = 5.0  # a connection with no request begun: new, or kept alive after a response
    head: float = 10.0  # a request's line and headers (and a body up to PREREAD), from its first byte
    body_read: float = BODY_READ_SECONDS  # one read of a larger body, in a worker thread
    body: float = BODY_SECONDS  # a larger body in all
    write: float = WRITE_SECONDS  # one write the client does not take
    drain: float = 2.0  # on stop, for the requests in flight; the connections left are then reset
    linger: float = 2.0  # closing after an error: the client's unread bytes are read and dropped this long


MAX_REQUEST_LINE = 8190  # 414 beyond
MAX_HEAD = 64 * 1024  # the request line and headers; 431 beyond
MAX_HEADERS = 100  # header lines; 431 beyond
PREREAD = 64 * 1024  # a body this small is read with the head, in the loop
MAX_CONNECTIONS = 1000  # open at once (fewer when the descriptor limit is low); the oldest waiting goes first
HEALTH_THREADS = 2  # threads beyond ``threads`` that serve only GET /health
MAX_CHUNK_LINE = 4096  # a chunk's size line in a chunked body
MAX_TRAILERS = 8192  # a chunked body's trailer section
_RECV = 64 * 1024
# Dropped at most while closing politely: enough that a client sending a body past the largest
# accepted one whole before it reads (http.client, requests) sees the 413, not a reset.
_LINGER_BYTES = 64 * 1024 * 1024
_AHEAD = 1024 * 1024  # sent ahead while a request waits, where POLLRDHUP is missing
_NO_LINGER = struct.pack("ii", 1, 0)
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([^\x00-\x20\x7f]+) HTTP/([0-9])\.([0-9])")
_HEADER_NAME = re.compile(_TOKEN)
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

# What ends a request for want of a client: gone, reset, or not reading (a write timed out).
_CLIENT_GONE = (ConnectionError, socket.timeout, TimeoutError)


class _Reject(Exception):
    """A request refused before it reaches the app: its status and the message of its envelope."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Head:
    """A request's line and headers, and what they say of its body and of the connection."""

    __slots__ = ("chunked", "expect_continue", "headers", "keep_alive", "length", "method", "minor", "target")

    def __init__(self, method: str, target: str, minor: int, headers: List[Tuple[str, str]]) -> None:
        self.method = method
        self.target = target
        self.minor = minor  # HTTP/1.<minor>
        self.headers = headers
        self.length: Optional[int] = None
        self.chunked = False
        self.expect_continue = False
        self.keep_alive = minor >= 1
        self._frame()

    def values(self, name: str) -> List[str]:
        return [value for key, value in self.headers if key.lower() == name]

    def _frame(self) -> None:
        """How the body is delimited, refusing what two parsers could read two ways (RFC 9112 6.3)."""
        codings = [c.strip().lower() for v in self.values("transfer-encoding") for c in v.split(",")]
        lengths = self.values("content-length")
        if codings:
            if lengths:
                raise _Reject(400, "A request may not have both Content-Length and Transfer-Encoding.")
            if self.minor == 0:
                raise _Reject(400, "Transfer-Encoding is not allowed in an HTTP/1.0 request.")
            if codings != ["chunked"]:
                raise _Reject(501, f"Unsupported Transfer-Encoding {', '.join(codings)!r}: only chunked is.")
            self.chunked = True
        elif lengths:
            if len(lengths) > 1:
                raise _Reject(400, "A request may have one Content-Length header, not several.")
            if not (lengths[0].isascii() and lengths[0].isdigit()):
                raise _Reject(400, f"Invalid Content-Length header: {lengths[0]!r}")
            self.length = int(lengths[0])
        expect = [v.strip().lower() for v in self.values("expect")]
        if expect:
            if expect != ["100-continue"]:
                raise _Reject(417, f"Unsupported Expect header {', '.join(expect)!r}: only 100-continue is.")
            self.expect_continue = self.minor >= 1  # an HTTP/1.0 client does not know 100 (RFC 9110 10.1.1)
        options = {o.strip().lower() for v in self.values("connection") for o in v.split(",")}
        self.keep_alive = "close" not in options if self.minor >= 1 else "keep-alive" in options

    @property
    def is_health(self) -> bool:
        return self.method in ("GET", "HEAD") and self.target in ("/health", "/healthz")


def _parse_line(line: bytes) -> Tuple[str, str, int]:
    match = _REQUEST_LINE.fullmatch(line)
    if match is None:
        shown = line[:100].decode("latin-1")
        raise _Reject(400, f"Invalid HTTP request line {shown!r} (HTTP/1.0 and HTTP/1.1 are served).")
    if match.group(3) != b"1":
        raise _Reject(505, "HTTP version not supported: HTTP/1.0 and HTTP/1.1 are.")
    return match.group(1).decode("ascii"), match.group(2).decode("latin-1"), min(int(match.group(4)), 1)


def _abort(sock: socket.socket) -> None:
    """Close with a reset, not a FIN: the client must not take what it got for a whole response."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _NO_LINGER)
    except OSError:
        pass
    sock.close()


class _Conn:
    """A client connection; its buffer holds what was read from it and not yet used."""

    __slots__ = ("buf", "deadline", "head", "line", "lingered", "peer", "scanned", "sock", "state")

    def __init__(self, sock: socket.socket, peer: Any) -> None:
        self.sock = sock
        self.peer = peer
        self.buf = bytearray()
        self.head: Optional[_Head] = None
        # idle (no request begun), head (one begun), body (its small body coming), ready (for a
        # thread), active (in a thread), linger (closing politely), closed (by the loop)
        self.state = "idle"
        self.deadline = 0.0
        self.lingered = 0
        self.line: Optional[Tuple[str, str, int]] = None  # the request line, once in and valid
        self.scanned = 0  # where the search for the end of the head goes on

    def take_head(self) -> Optional[_Head]:
        """The request head at the start of the buffer (taken out of it), or None until it is in.

        The request line is checked as soon as it ends, so that an HTTP/0.9 line or junk is
        refused at once rather than waited on; the search for the head's end goes on where it
        stopped, so that a head sent a byte at a time costs no more than one sent at once."""
        buf = self.buf
        if self.line is None:
            if buf[:1] in (b"\r", b"\n"):  # empty lines before a request are ignored (RFC 9112 2.2)
                del buf[: len(buf) - len(buf.lstrip(b"\r\n"))]
            line_end = buf.find(b"\r\n", 0, MAX_REQUEST_LINE + 2)
            if line_end < 0:
                if len(buf) > MAX_REQUEST_LINE:
                    raise _Reject(414, f"The request line is longer than {MAX_REQUEST_LINE} bytes.")
                if b"\n" in buf:
                    raise _Reject(400, "Request lines end with CRLF.")
                return None
            self.line = _parse_line(bytes(buf[:line_end]))
            self.scanned = line_end
        end = buf.find(b"\r\n\r\n", self.scanned)
        if (end + 4 if end >= 0 else len(buf)) > MAX_HEAD:
            raise _Reject(431, f"The request's line and headers are longer than {MAX_HEAD} bytes.")
        if end < 0:
            self.scanned = max(self.scanned, len(buf) - 3)
            return None
        line_end = buf.find(b"\r\n")
        lines = bytes(buf[line_end + 2 : end]).split(b"\r\n") if end > line_end else []
        del buf[: end + 4]
        method, target, minor = self.line
        self.line = None
        self.scanned = 0
        if len(lines) > MAX_HEADERS:
            raise _Reject(431, f"The request has more than {MAX_HEADERS} header lines.")
        headers: List[Tuple[str, str]] = []
        for line in lines:
            name, colon, value = line.partition(b":")
            # A name is a token: no space before the colon, no line folded onto the one before.
            if not colon or not _HEADER_NAME.fullmatch(name):
                raise _Reject(400, f"Invalid HTTP header line {line[:100].decode('latin-1')!r}")
            value = value.strip(b" \t")
            if _BAD_VALUE.search(value):
                raise _Reject(400, f"Invalid character in the value of the {name.decode('ascii')} header.")
            headers.append((name.decode("ascii"), value.decode("latin-1")))
        return _Head(method, target, minor, headers)

    def read_ahead(self) -> bool:
        """Move what the client sent ahead of its next request into the buffer, so that a wait can
        see the client close behind it; False when it closed, or sent more than is kept."""
        try:
            data = self.sock.recv(_RECV, getattr(socket, "MSG_DONTWAIT", 0))  # it is readable
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        if not data or len(self.buf) + len(data) > _AHEAD:
            return False
        self.buf += data
        return True


class _Input:
    """``wsgi.input``: the request body, from the connection's buffer then its socket.

    Content-Length or chunked; ``100 Continue`` goes out the first time the body is waited for.
    An early end raises ``BodyError``, a client too slow ``BodyTimeout``, chunks announcing more than
    ``max_body`` ``BodyTooLarge`` (the app answers 400, 408, 413).
    """

    def __init__(self, conn: _Conn, head: _Head, timeouts: Timeouts, max_body: Optional[int] = None) -> None:
        self._conn = conn
        self._max_body = max_body
        self._announced = 0  # the bytes a chunked body's size lines have announced so far
        self._timeouts = timeouts
        self._chunked = head.chunked
        self._length = head.length or 0
        self._remaining = self._length  # of a Content-Length body
        self._chunk_left = 0
        self._step = "size"  # of a chunked body: size, data, crlf
        self._continue = head.expect_continue
        self._clock = BodyClock(timeouts.body_read, timeouts.body)
        self.done = not head.chunked and not head.length

    def read(self, size: Optional[int] = -1) -> bytes:
        want = sys.maxsize if size is None or size < 0 else size
        out = bytearray()
        while len(out) < want and not self.done:
            out += self._piece(want - len(out))
        return bytes(out)

    def readline(self, size: Optional[int] = -1) -> bytes:
        limit = sys.maxsize if size is None or size < 0 else size
        out = bytearray()
        while len(out) < limit and not out.endswith(b"\n") and not self.done:
            out += self._piece(1)
        return bytes(out)

    def readlines(self, hint: int = -1) -> List[bytes]:
        lines: List[bytes] = []
        total = 0
        while hint < 0 or total < hint:
            line = self.readline()
            if not line:
                break
            lines.append(line)
            total += len(line)
        return lines

    def __iter__(self) -> Iterable[bytes]:
        return iter(self.readline, b"")

    def settle(self) -> bool:
        """Whether the body is all read, dropping what is left of it when it is all in already."""
        if not self.done and not self._chunked and self._remaining <= len(self._conn.buf):
            del self._conn.buf[: self._remaining]
            self._remaining = 0
            self.done = True
        return self.done

    def _piece(self, want: int) -> bytes:
        """Up to ``want`` bytes of the body, at least one unless it has ended."""
        buf = self._conn.buf
        if not self._chunked:
            self._need(1)
            piece = bytes(buf[: min(want, self._remaining, len(buf))])
            del buf[: len(piece)]
            self._remaining -= len(piece)
            self.done = self._remaining == 0
            return piece
        while True:
            if self._step == "data":
                self._need(1)
                piece = bytes(buf[: min(want, self._chunk_left, len(buf))])
                del buf[: len(piece)]
                self._chunk_left -= len(piece)
                if not self._chunk_left:
                    self._step = "crlf"
                return piece
            if self._step == "crlf":
                self._need(2)
                if buf[:2] != b"\r\n":
                    raise BodyError("a chunk does not end where its size says")
                del buf[:2]
                self._step = "size"
            line = self._line(MAX_CHUNK_LINE, "a chunk size line is too long")
            size = line.split(b";", 1)[0].rstrip(b" \t")  # whitespace only before an extension
            digits = size.lstrip(b"0") or size[:1]  # leading zeros are digits too (RFC 9112: 1*HEXDIG)
            if not size or len(digits) > 16 or not re.fullmatch(rb"[0-9A-Fa-f]+", size):
                raise BodyError(f"invalid chunk size {size[:20].decode('latin-1')!r}")
            self._chunk_left = int(size, 16)
            self._announced += self._chunk_left
            if self._max_body is not None and self._announced > self._max_body:
                raise BodyTooLarge(f"its chunks announce more than {self._max_body} bytes")
            if self._chunk_left:
                self._step = "data"
                continue
            trailers = 0
            while True:  # the trailer section, dropped
                trailer = self._line(MAX_TRAILERS - trailers, "the trailer section is too long")
                trailers += len(trailer) + 2
                if not trailer:
                    self.done = True
                    return b""

    def _line(self, limit: int, too_long: str) -> bytes:
        buf = self._conn.buf
        searched = 0
        while True:
            end = buf.find(b"\n", searched, limit + 2)
            if end >= 0:
                if end == 0 or buf[end - 1] != 13:  # refused at once, not waited on to a timeout
                    raise BodyError("a chunk line ends with LF alone, not CRLF")
                line = bytes(buf[: end - 1])
                del buf[: end + 1]
                return line
            if len(buf) >= limit + 2:
                raise BodyError(too_long)
            searched = len(buf)
            self._more()

    def _need(self, count: int) -> None:
        while len(self._conn.buf) < count:
            self._more()

    def _more(self) -> None:
        sock = self._conn.sock
        if self._continue:
            self._continue = False
            if not self._conn.buf:
                sock.settimeout(self._timeouts.write)
                sock.sendall(_CONTINUE)
        data = self._clock.read(sock, lambda: sock.recv(_RECV))
        if not data:
            if self._chunked:
                raise BodyError("the chunked body ended before its last chunk")
            raise BodyError(
                f"the body is shorter than its Content-Length: {self._length - self._remaining} "
                f"of {self._length} bytes arrived"
            )
        self._conn.buf += data


class _Exchange:
    """One request's response: ``start_response``, the writes, their framing, how the connection ends."""

    def __init__(self, server: Server, conn: _Conn, head: _Head, body: _Input) -> None:
        self.server = server
        self.conn = conn
        self.head = head
        self.body = body
        self.status: Optional[str] = None
        self.headers: List[Tuple[str, str]] = []
        self.head_sent = False
        self.bodyless = head.method == "HEAD"
        self.chunked = False
        self.length: Optional[int] = None  # the Content-Length the app declared
        self.sent = 0  # body bytes written
        self.keep = False

    def run(self, app: WSGIApplication, environ: Dict[str, Any]) -> str:
        """Serve the request; how the connection goes on: keep (alive), linger (close politely), closed."""
        result: Optional[Iterable[bytes]] = None
        try:
            result = app(environ, self.start_response)
            if isinstance(result, (list, tuple)) and self.status is not None and not self.head_sent:
                self._measure(result)
            for data in result:
                if data or not self.head_sent:  # an empty first write sends the headers, as gunicorn's does
                    self.write(data)
            self.finish()
        except _CLIENT_GONE as exc:  # gone, dropped on purpose, or not reading
            log.debug("connection from %s ended: %r", self.conn.peer, exc)
            _abort(self.conn.sock)
            return "closed"
        except Exception:
            log.exception("error while serving %s %s", self.head.method, self.head.target)
            if self.head_sent:
                _abort(self.conn.sock)
                return "closed"
            self.status = "500"
            try:
                self._send_now(closing_error(errors.server_error(), SERVER))
            except OSError:
                _abort(self.conn.sock)
                return "closed"
            return "linger"
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    log.exception("error while closing a response")
        if self.length is not None and self.sent < self.length and not self.bodyless:
            _abort(self.conn.sock)  # shorter than it said: the client must not wait for the rest
            return "closed"
        return "keep" if self.keep else "linger"

    def start_response(
        self, status: str, headers: List[Tuple[str, str]], exc_info: Optional[Any] = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response was already called")
        self.status = status
        self.headers = list(headers)
        return self.write

    def write(self, data: bytes) -> None:
        if self.status is None:
            raise AssertionError("write() before start_response()")
        head = b"" if self.head_sent else self._head_bytes()
        if self.bodyless:
            data = b""
        elif self.length is not None:
            data = data[: max(0, self.length - self.sent)]
        self.sent += len(data)
        if data and self.chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        if head or data:
            self._send_now(head + data)

    def finish(self) -> None:
        if not self.head_sent:
            if self.status is None:
                raise AssertionError("the app returned without calling start_response()")
            self._measure(())
            self._send_now(self._head_bytes())
        elif self.chunked:
            self._send_now(b"0\r\n\r\n")

    def _measure(self, result: Iterable[bytes]) -> None:
        """A body known whole before it is sent gets its Content-Length."""
        if not any(name.lower() == "content-length" for name, _ in self.headers):
            self.headers.append(("Content-Length", str(sum(len(data) for data in result))))

    def _head_bytes(self) -> bytes:
        """The status line and headers, with the framing and the keep-alive decision added."""
        assert self.status is not None
        self.head_sent = True
        code = int(self.status[:3])
        self.bodyless = self.bodyless or code in (204, 304) or code < 200
        names = {name.lower(): value for name, value in self.headers}
        framed = True
        if "content-length" in names:
            try:
                self.length = int(names["content-length"])
            except ValueError:
                framed = False
        elif not self.bodyless:
            if self.head.minor >= 1:
                self.chunked = True
                self.headers.append(("Transfer-Encoding", "chunked"))
            else:
                framed = False  # the end of the body is the end of the connection
        self.keep = framed and self.head.keep_alive and not self.server.closing and self.body.settle()
        if not self.keep:
            self.headers.append(("Connection", "close"))
        elif self.head.minor == 0:
            self.headers.append(("Connection", "keep-alive"))
        lines = [f"HTTP/1.1 {self.status}\r\n"]
        if "date" not in names:
            lines.append(f"Date: {formatdate(usegmt=True)}\r\n")
        if "server" not in names:
            lines.append(f"Server: {SERVER}\r\n")
        lines.extend(f"{name}: {value}\r\n" for name, value in self.headers)
        lines.append("\r\n")
        return "".join(lines).encode("latin-1")

    def _send_now(self, data: bytes) -> None:
        sock = self.conn.sock
        sock.settimeout(self.server.timeouts.write)
        sock.sendall(data)


class Server:
    """The server: ``serve_forever`` runs the loop; ``shutdown`` (from another thread) ends it;
    ``server_close`` stops serving (see the module)."""

    def __init__(
        self,
        address: Tuple[str, int],
        threads: int,
        app: WSGIApplication,
        timeouts: Optional[Timeouts] = None,
        max_body: Optional[int] = None,
    ) -> None:
        """``max_body``: the body the app takes at most (``MOKKU_MAX_BODY_BYTES``); chunks announcing
        more are refused as they are announced, not waited on."""
        host, port = address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.create_server((host, port), family=family, backlog=1024)
        self.socket.setblocking(False)
        self.server_address: Tuple[str, int] = self.socket.getsockname()[:2]
        self.app = app
        self.threads = threads
        self.timeouts = timeouts or Timeouts()
        self.max_body = max_body
        self.max_connections = _connection_cap(threads)
        self.closing = False
        self._selector = selectors.DefaultSelector()
        self._wakeup = Wakeup()
        self._selector.register(self.socket, selectors.EVENT_READ, _LISTEN)
        self._selector.register(self._wakeup.reader, selectors.EVENT_READ, _WAKE)
        self._accepting = True
        self._accept_again = 0.0  # when accepting out of descriptors, when to try again
        self._open = 0  # connections open, wherever they are
        self._waiting: Dict[_Conn, None] = {}  # watched by the loop, oldest first
        self._deadlines: List[Tuple[float, int, _Conn]] = []
        self._order = itertools.count()
        self._ready: Deque[_Conn] = collections.deque()
        self._ready_health: Deque[_Conn] = collections.deque()
        self._returned: Deque[Tuple[_Conn, str]] = collections.deque()  # from the threads
        self._busy = 0  # requests handed to threads and not yet returned
        self._work: queue.SimpleQueue[Optional[_Conn]] = queue.SimpleQueue()
        self._workers = 0
        self._active: Set[_Conn] = set()
        self._changed = threading.Condition()
        self._shutdown_request = False
        self._stopped = threading.Event()
        self._stopped.set()
        self._closed = False
        self._base_environ: Dict[str, Any] = {
            "SERVER_NAME": str(self.server_address[0]),
            "SERVER_PORT": str(self.server_address[1]),
            "SERVER_SOFTWARE": SERVER,
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SCRIPT_NAME": "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
        }

    # The loop (main thread).

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._stopped.clear()
        try:
            while not self._shutdown_request:
                self._turn(poll_interval)
        finally:
            self._shutdown_request = False
            self._stopped.set()

    def shutdown(self) -> None:
        """End ``serve_forever`` (called from another thread) and wait until it has."""
        self.stop_soon()
        self._stopped.wait()

    def stop_soon(self) -> None:
        """End ``serve_forever`` after its current turn, without waiting: safe in a signal handler,
        where raising would leave the loop's bookkeeping half done wherever the signal came."""
        self._shutdown_request = True
        self._wake()

    def _turn(self, poll_interval: float) -> None:
        now = time.monotonic()
        timeout = poll_interval
        if self._deadlines:
            timeout = max(0.0, min(timeout, self._deadlines[0][0] - now))
        for key, _ in self._selector.select(timeout):
            if key.data is _LISTEN:
                self._accept()
            elif key.data is _WAKE:
                self._wakeup.drain()
            elif key.data.state == "linger":
                self._linger_read(key.data)
            elif key.data.state != "closed":  # not closed by an earlier event of this turn
                self._read(key.data)
        self._take_returned()
        self._expire(time.monotonic())
        self._dispatch()
        if (
            not self._accepting
            and self._open < self.max_connections
            and time.monotonic() >= self._accept_again
        ):
            self._accepting = True
            self._selector.register(self.socket, selectors.EVENT_READ, _LISTEN)

    def _accept(self) -> None:
        for _ in range(64):
            if self._open >= self.max_connections and not self._evict():
                self._pause_accepting(0.0)
                return
            try:
                sock, peer = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("cannot accept connections for now: %s", exc)
                    self._pause_accepting(0.5)
                return
            sock.setblocking(False)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each token goes out at once
            except OSError:
                pass
            self._open += 1
            self._watch(_Conn(sock, peer), self.timeouts.idle)

    def _pause_accepting(self, seconds: float) -> None:
        if self._accepting:
            self._accepting = False
            self._selector.unregister(self.socket)
        self._accept_again = time.monotonic() + seconds

    def _evict(self) -> bool:
        """Close the connection that has waited longest for its request, to make room for a new one."""
        for conn in self._waiting:
            self._close(conn)
            return True
        return False

    def _watch(self, conn: _Conn, seconds: float) -> None:
        conn.deadline = time.monotonic() + seconds
        self._waiting.pop(conn, None)
        self._waiting[conn] = None
        heapq.heappush(self._deadlines, (conn.deadline, next(self._order), conn))
        try:
            self._selector.register(conn.sock, selectors.EVENT_READ, conn)
        except KeyError:
            pass  # still registered

    def _unwatch(self, conn: _Conn) -> None:
        if conn in self._waiting:
            del self._waiting[conn]
            self._selector.unregister(conn.sock)

    def _close(self, conn: _Conn) -> None:
        if conn.state == "closed":
            return
        self._unwatch(conn)
        conn.sock.close()
        conn.state = "closed"
        self._open -= 1

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            if conn.state == "body":  # the body ends short of its length: the app says so (400)
                self._dispatch_later(conn)
            else:
                self._close(conn)
            return
        if conn.state == "idle":
            conn.state = "head"
            self._watch(conn, self.timeouts.head)
        conn.buf += data
        if conn.head is None and b"\n" not in data and len(conn.buf) <= MAX_REQUEST_LINE:
            return  # no line has ended: nothing new to read the head from
        self._advance(conn)

    def _advance(self, conn: _Conn) -> None:
        """Hand the request to a thread once its head (and a small body) is in; refuse a bad one."""
        try:
            if conn.head is None:
                conn.head = conn.take_head()
                if conn.head is None:
                    return
            head = conn.head
            if (
                head.length is not None
                and head.length <= PREREAD
                and not head.expect_continue
                and len(conn.buf) < head.length
            ):
                conn.state = "body"
                return
        except _Reject as reject:
            self._refuse(conn, errors.APIError(reject.status, reject.message))
            return
        self._dispatch_later(conn)

    def _dispatch_later(self, conn: _Conn) -> None:
        """Queue the request for a thread (``GET /health`` in its own queue, see ``HEALTH_THREADS``)."""
        self._unwatch(conn)
        conn.state = "ready"
        assert conn.head is not None
        (self._ready_health if conn.head.is_health else self._ready).append(conn)

    def _refuse(self, conn: _Conn, error: errors.APIError) -> None:
        """Answer a request the app never sees, then close."""
        access_log.debug("%s:%s refused: %d %s", *_peer(conn.peer), error.status, redact_text(error.message))
        try:
            conn.sock.send(closing_error(error, SERVER))  # small: it fits the socket's buffer
        except OSError:
            self._close(conn)
            return
        self._linger(conn)

    def _linger(self, conn: _Conn) -> None:
        """Close politely: a FIN, then what the client still sends is read and dropped for a while,
        so that closing with its bytes unread does not reset the connection before it reads the answer."""
        self._unwatch(conn)
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.state = "linger"
        conn.buf = bytearray()
        self._watch(conn, self.timeouts.linger)

    def _linger_read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        conn.lingered += len(data)
        if not data or conn.lingered > _LINGER_BYTES:
            self._close(conn)

    def _expire(self, now: float) -> None:
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            deadline, _, conn = heapq.heappop(deadlines)
            if conn.deadline != deadline or conn not in self._waiting:
                continue  # watched again since, or no longer
            if conn.state in ("idle", "linger"):
                self._close(conn)
            else:
                self._refuse(
                    conn,
                    errors.APIError(
                        408, f"The request did not arrive within {self.timeouts.head:g} s of its first byte."
                    ),
                )

    def _dispatch(self) -> None:
        while self._ready_health and self._busy < self.threads + HEALTH_THREADS:
            self._start(self._ready_health.popleft())
        while self._ready and self._busy < self.threads:
            self._start(self._ready.popleft())

    def _start(self, conn: _Conn) -> None:
        conn.state = "active"
        self._busy += 1
        self._work.put(conn)
        if self._busy > self._workers:
            self._workers += 1
            thread = threading.Thread(target=self._work_loop, name=f"mokku-{self._workers}", daemon=True)
            try:
                thread.start()
            except RuntimeError as exc:  # out of threads: the request waits for one that runs
                self._workers -= 1
                log.warning("cannot start a thread (%s): %d serve requests", exc, self._workers)

    def _take_returned(self) -> None:
        while self._returned:
            conn, outcome = self._returned.popleft()
            self._busy -= 1
            if outcome == "closed":
                self._open -= 1
                continue
            conn.sock.setblocking(False)
            if outcome == "linger":
                self._linger(conn)
                continue
            conn.head = None
            if conn.buf:  # the next request, sent ahead
                conn.state = "head"
                self._watch(conn, self.timeouts.head)
                self._advance(conn)
            else:
                conn.state = "idle"
                self._watch(conn, self.timeouts.idle)

    def _wake(self) -> None:
        self._wakeup.ring()

    # The threads.

    def _work_loop(self) -> None:
        while True:
            conn = self._work.get()
            if conn is None:
                return
            outcome = "closed"
            try:
                with self._changed:
                    if self.closing:
                        conn.sock.close()
                        continue
                    self._active.add(conn)
                outcome = self._serve(conn)
            except Exception:
                log.exception("error while serving a connection")
                _abort(conn.sock)
                outcome = "closed"
            finally:
                with self._changed:
                    self._active.discard(conn)
                    closing = self.closing
                    self._changed.notify_all()
                if closing and outcome != "closed":
                    conn.sock.close()
                    outcome = "closed"
                self._returned.append((conn, outcome))
                self._wake()

    def _serve(self, conn: _Conn) -> str:
        head = conn.head
        assert head is not None
        conn.sock.settimeout(self.timeouts.write)
        body = _Input(conn, head, self.timeouts, self.max_body)
        exchange = _Exchange(self, conn, head, body)
        outcome = exchange.run(self.app, self._environ(conn, head, body))
        if access_log.isEnabledFor(logging.DEBUG):
            path, mark, query = head.target.partition("?")
            access_log.debug(
                '%s:%s "%s %s HTTP/1.%d" %s %d',
                *_peer(conn.peer),
                head.method,
                path + mark + redact_query(query),  # never a key sent as ?key=
                head.minor,
                exchange.status.split(" ", 1)[0] if exchange.status else "-",
                exchange.sent,
            )
        return outcome

    def _environ(self, conn: _Conn, head: _Head, body: _Input) -> Dict[str, Any]:
        environ = dict(self._base_environ)
        target = head.target
        if target.startswith(("http://", "https://")):  # absolute form: the path is after the authority
            authority_end = target.find("/", target.index("//") + 2)
            target = target[authority_end:] if authority_end >= 0 else "/"
        path, _, query = target.partition("?")
        host, port = _peer(conn.peer)
        environ.update(
            REQUEST_METHOD=head.method,
            PATH_INFO=unquote(path, "latin-1"),
            QUERY_STRING=query,
            SERVER_PROTOCOL=f"HTTP/1.{head.minor}",
            REMOTE_ADDR=host,
            REMOTE_PORT=str(port),
            CONTENT_TYPE="",
            CONTENT_LENGTH="" if head.length is None else str(head.length),
        )
        for name, value in head.headers:
            if "_" in name:
                continue  # it would read as the same variable as its dashed twin
            key = name.upper().replace("-", "_")
            if key == "CONTENT_TYPE":
                environ[key] = value
            elif key != "CONTENT_LENGTH":
                key = "HTTP_" + key
                environ[key] = f"{environ[key]},{value}" if key in environ else value
        environ["wsgi.input"] = body
        environ["mokku.socket"] = conn.sock  # lets a waiting request notice a hang-up
        environ["mokku.read_ahead"] = conn.read_ahead
        return environ

    # Stopping.

    def server_close(self) -> None:
        """Stop serving: accept nothing more, close the connections waiting for a request, give the
        requests in flight ``timeouts.drain`` to finish, then reset the connections still open
        (a client reading a stream sees an error, never a clean end without its last event)."""
        if self._closed:
            return
        self._closed = True
        with self._changed:
            self.closing = True
        try:
            self._selector.unregister(self.socket)
        except (KeyError, ValueError):
            pass
        self.socket.close()
        for conn in list(self._waiting):
            self._close(conn)
        for conn in (*self._ready, *self._ready_health):
            conn.sock.close()
        self._ready.clear()
        self._ready_health.clear()
        while self._returned:
            conn, outcome = self._returned.popleft()
            if outcome != "closed":
                conn.sock.close()
        for _ in range(self._workers):
            self._work.put(None)  # idle threads end; busy ones, after their request
        deadline = time.monotonic() + self.timeouts.drain
        with self._changed:
            if self._active:
                log.info(
                    "stopping: %d in flight, given %g s to finish", len(self._active), self.timeouts.drain
                )
            while self._active and time.monotonic() < deadline:
                self._changed.wait(deadline - time.monotonic())
            left = list(self._active)
        for conn in left:
            # A reset when closed; and a reading or waiting thread wakes up to close it now.
            try:
                conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _NO_LINGER)
                conn.sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass
        if left:
            log.info("stopping: resetting %d connections still open", len(left))
            with self._changed:
                deadline = time.monotonic() + 0.5
                while self._active and time.monotonic() < deadline:
                    self._changed.wait(deadline - time.monotonic())
        self._selector.close()
        self._wakeup.close()


_LISTEN = object()
_WAKE = object()


def _peer(peer: Any) -> Tuple[str, int]:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return str(peer[0]), int(peer[1])
    return str(peer), 0


def _connection_cap(threads: int) -> int:
    """``MAX_CONNECTIONS``, or fewer when the process may not open that many descriptors."""
    soft = 1024
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft == resource.RLIM_INFINITY:
            soft = 1 << 20
    except (ImportError, OSError, ValueError):
        pass
    return max(threads + HEALTH_THREADS + 8, min(MAX_CONNECTIONS, soft - 64))


def make_server(
    app: WSGIApplication,
    host: str,
    port: int,
    threads: int,
    timeouts: Optional[Timeouts] = None,
    max_body: Optional[int] = None,
) -> Server:
    """Bind (``port`` 0 picks a free one) and attach the app; call ``serve_forever`` to run."""
    return Server((host, port), threads, app, timeouts, max_body)
