"""Request and response objects: the small part of HTTP that handlers touch.

A ``Request`` reads and parses the body lazily and only up to the size cap; a
``Response`` is a status, headers and an iterable of bytes (a list for JSON, a
generator for streams). ``json_response`` is the one place JSON is encoded.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import sys
import time
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Tuple, Type

from opentelemetry.trace import Span

from mokku import errors
from mokku.config import Settings
from mokku.errors import json_type

Headers = List[Tuple[str, str]]

JSON_CONTENT_TYPE = "application/json"
_READ_CHUNK = 64 * 1024
# How long a request body may keep a thread waiting (``BodyClock``), under either server.
BODY_READ_SECONDS = 10.0  # for one read
BODY_SECONDS = 60.0  # for the whole body
WRITE_SECONDS = 30.0  # for one write of the answer the client does not take

STATUS_LINES: Dict[int, str] = {s.value: f"{s.value} {s.phrase}" for s in HTTPStatus}
STATUS_LINES[402] = "402 Payment Required"
STATUS_LINES[499] = "499 Client Closed Request"  # nginx's
STATUS_LINES[529] = "529 Overloaded"  # Anthropic's


def status_line(status: int) -> str:
    """The status line of any status, one HTTP names or not (a gateway's 520, 522, 524)."""
    return STATUS_LINES.get(status) or f"{status} Unknown"


class Response:
    """What a handler returns: ``body`` is iterated by the server as it is produced."""

    __slots__ = ("body", "forwarded", "headers", "status")

    def __init__(self, status: int, headers: Headers, body: Iterable[bytes], forwarded: bool = False) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.forwarded = forwarded  # an upstream's or a recording's answer: its headers are its own


# Made once: json.dumps and json.loads build a new encoder or decoder on every call given options.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_ASCII_ENCODER = json.JSONEncoder(separators=(",", ":"))


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON; falls back to ``\\u`` escapes for lone surrogates from the input."""
    try:
        return _ENCODER.encode(obj).encode("utf-8")
    except UnicodeEncodeError:
        return _ASCII_ENCODER.encode(obj).encode("ascii")


class JSONTemplate:
    """A JSON document fixed but for a few values, encoded once (at import, or once per stream).

    ``template`` holds ``SLOT`` wherever a value varies; ``render(*values)`` splices the encoded
    values in, in document order, and gives the same bytes as ``dumps`` of the whole document.
    A chat answer rendered this way costs about 1.5 us instead of 6 us for ``dumps`` of its dict.
    """

    # Unguessable, so that no value sent by a client (a model name, say) can pose as a slot.
    SLOT = f"\x00slot-{os.urandom(8).hex()}\x00"

    def __init__(self, template: Any, prefix: bytes = b"", suffix: bytes = b"") -> None:
        self._pieces = (prefix + dumps(template) + suffix).split(dumps(self.SLOT))
        if len(self._pieces) < 2:
            raise ValueError("template has no SLOT")

    def render(self, *values: Any) -> bytes:
        pieces = self._pieces
        if len(values) != len(pieces) - 1:
            raise ValueError(f"template has {len(pieces) - 1} slots, got {len(values)} values")
        out = [pieces[0]]
        for value, piece in zip(values, pieces[1:]):
            out.append(str(value).encode() if type(value) is int else dumps(value))
            out.append(piece)
        return b"".join(out)


def json_response(obj: Any, status: int = 200, headers: Optional[Headers] = None) -> Response:
    return encoded_json_response(dumps(obj), status, headers)


def encoded_json_response(body: bytes, status: int = 200, headers: Optional[Headers] = None) -> Response:
    """A JSON response from bytes already encoded, e.g. once at import for static answers."""
    out = [("Content-Type", JSON_CONTENT_TYPE), ("Content-Length", str(len(body)))]
    if headers:
        out.extend(headers)
    return Response(status, out, [body])


def error_response(error: errors.APIError) -> Response:
    return json_response(error.to_dict(), error.status, error.headers)


# The real API's error bodies: four-space indents (ASCII, ``\u`` escapes: a message may quote any
# text a request sent).
_INDENTED = json.JSONEncoder(indent=4)


def error_body(error: errors.APIError) -> bytes:
    """The OpenAI envelope as the real API writes it."""
    return _INDENTED.encode(error.to_dict()).encode("ascii") + b"\n"


def closing_error(error: errors.APIError, server: str = "") -> bytes:
    """A whole error response in the OpenAI envelope, for a request a server refuses before the app
    sees it (``server``: its ``Server`` header, if any); the connection closes after it."""
    body = error_body(error)
    named = f"Server: {server}\r\n" if server else ""
    head = (
        f"HTTP/1.1 {STATUS_LINES[error.status]}\r\nDate: {formatdate(usegmt=True)}\r\n{named}"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
# How deep a body's arrays and objects may nest. The decoder takes about 1,000 levels, but what it
# takes is stored and read back, journalled and rendered from deeper in the stack, where that much
# would run out of it; real requests (a schema nests 12 levels at most) come nowhere near.
MAX_NESTING = 256


def nests_deeper(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether ``value``'s arrays and objects nest more than ``limit`` levels."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False


@functools.lru_cache(maxsize=256)
def environ_key(header: str) -> str:
    """The WSGI environ key of an HTTP header (``X-Mokku-Fault`` -> ``HTTP_X_MOKKU_FAULT``)."""
    key = header.upper().replace("-", "_")
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key


class BodyError(ValueError):
    """A request body that breaks its own framing: a bad chunk, or an end before the announced one (400)."""


class BodyTooLarge(ValueError):
    """A chunked body whose size lines announce more than the app takes (413), refused at once."""


class BodyTimeout(TimeoutError):
    """A request body that did not arrive within the server's timeouts (408)."""


class BodyClock:
    """The time a request body may take to arrive: each read of the socket waits at most
    ``read_seconds``, and none starts past ``whole_seconds`` after the first, else ``BodyTimeout``
    (408). mokku's own server reads bodies by it, and so does the app under gunicorn."""

    __slots__ = ("deadline", "read_seconds", "whole_seconds")

    def __init__(self, read_seconds: float = BODY_READ_SECONDS, whole_seconds: float = BODY_SECONDS) -> None:
        self.read_seconds, self.whole_seconds = read_seconds, whole_seconds
        self.deadline: Optional[float] = None

    def read(self, sock: socket.socket, read: Callable[[], bytes]) -> bytes:
        """``read()``, which reads ``sock``, with the socket's timeout set to what is left."""
        now = time.monotonic()
        if self.deadline is None:
            self.deadline = now + self.whole_seconds
        left = self.deadline - now
        whole = f"the whole body takes at most {self.whole_seconds:g} s"
        if left <= 0:
            raise BodyTimeout(whole)
        wait = min(self.read_seconds, left)
        sock.settimeout(wait)
        try:
            return read()
        except socket.timeout:
            raise BodyTimeout(
                f"nothing came for {wait:g} s" if wait == self.read_seconds else whole
            ) from None


class _ClockedSocket:
    """gunicorn's socket as its body reader sees it while the app reads: every ``recv`` waits only
    what the ``BodyClock`` leaves, so a body dripping in a byte at a time still ends at its deadline."""

    __slots__ = ("clock", "sock")

    def __init__(self, sock: socket.socket, clock: BodyClock) -> None:
        self.sock, self.clock = sock, clock

    def recv(self, size: int) -> bytes:
        return self.clock.read(self.sock, lambda: self.sock.recv(size))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def _timed_reads(
    stream: Any, environ: Dict[str, Any], clock: Optional[BodyClock] = None
) -> Callable[[int], bytes]:
    """``wsgi.input.read``, bounded by a ``BodyClock`` under gunicorn, which would wait on a body
    that stops coming for as long as its client keeps the connection open; read in pieces of at
    most ``_READ_CHUNK``, each ``recv`` timed (gunicorn's reader receives until it has the piece).
    The socket is then left to time out a write the client does not take, as mokku's own server
    does (gunicorn's are blocking). mokku's own server times its reads itself."""
    if environ.get("gunicorn.socket") is None:
        return stream.read
    sock: socket.socket = environ["gunicorn.socket"]
    clock = clock or BodyClock()
    unreader: Any = getattr(getattr(stream, "reader", None), "unreader", None)
    clocked = _ClockedSocket(sock, clock) if getattr(unreader, "sock", None) is sock else None

    def read(size: int) -> bytes:
        if clocked is None:  # another reader: each read is timed whole
            try:
                return clock.read(sock, lambda: stream.read(min(size, _READ_CHUNK)))
            finally:
                sock.settimeout(WRITE_SECONDS)
        unreader.sock = clocked
        try:
            return stream.read(min(size, _READ_CHUNK))
        finally:
            unreader.sock = sock
            sock.settimeout(WRITE_SECONDS)

    return read


def _malformed_body_errors() -> Tuple[Type[BaseException], ...]:
    """What ``wsgi.input.read`` raises on a malformed body: ours, and gunicorn's when it serves.

    gunicorn raises its parse errors (a bad chunk size, a missing chunk terminator, an early end)
    from inside ``read``; they are looked up only once gunicorn is loaded, as then only they occur."""
    gunicorn_errors = sys.modules.get("gunicorn.http.errors")
    if gunicorn_errors is None:
        return (BodyError,)
    return (BodyError, gunicorn_errors.ParseException, gunicorn_errors.NoMoreData)


class Result(NamedTuple):
    """What a generation answered, as the journal keeps it."""

    id: Optional[str]
    finish_reasons: Optional[List[str]]
    usage: Dict[str, Any]


DRAIN_LIMIT = 64 * 1024 * 1024


def _drain(read: Callable[[int], bytes], length: int) -> None:
    """Read and drop a refused body of up to ``DRAIN_LIMIT`` bytes: a client that writes its whole
    body before it reads (http.client, requests) then gets the 413, not a reset from a socket closed
    with its bytes unread. Larger, a client that stops sending, or one waiting on ``Expect:
    100-continue`` (reading would ask it for the body): left unread."""
    if length > DRAIN_LIMIT:
        return
    try:
        while length > 0:
            chunk = read(min(_READ_CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)
    except Exception:  # a timeout, a client gone: the 413 is all there is to say
        return


class Request:
    """A view of the WSGI environ with a size-capped, lazily parsed JSON body, and what the
    request met on its way (its route, fault, scripted reply, result and how its stream ended),
    which the journal and the span read."""

    __slots__ = (
        "_json",
        "_raw",
        "cached_tokens",
        "dialect",
        "environ",
        "fault",
        "headers_out",
        "held",
        "id",
        "kv_blocks",
        "method",
        "model",
        "operation",
        "params",
        "path",
        "result",
        "route",
        "scenario",
        "settings",
        "span",
        "stream_events",
        "stream_outcome",
    )

    def __init__(self, environ: Dict[str, Any], settings: Settings, span: Optional[Span] = None) -> None:
        self.environ = environ
        self.method: str = environ.get("REQUEST_METHOD", "GET")  # case-sensitive, as HTTP says
        raw_path = environ.get("PATH_INFO", "") or "/"
        # PEP 3333 hands the path over as latin-1 text; model ids may be UTF-8.
        self.path: str = raw_path.encode("latin-1", "replace").decode("utf-8", "replace")
        self.settings = settings
        # The request's recording span, or None when tracing is off (see telemetry).
        self.span = span
        self.headers_out: Headers = []  # added to whatever response this request gets
        self.id = ""  # the request id every answer carries
        self.dialect: dialects.Dialect = dialects.OPENAI  # whose API the route speaks, once matched
        self.route: Optional[str] = None  # the route template, once matched
        self.params: Dict[str, str] = {}  # its parameters
        self.operation: Optional[str] = None  # a generation's gen_ai.operation.name, once known
        self.model: Optional[str] = None  # the model it asked for, once read
        self.held: Optional[Any] = None  # its running slot under MOKKU_MAX_RUNNING (simulation.load)
        self.cached_tokens = 0  # its prompt's tokens the prefix cache had (simulation.prefix)
        self.kv_blocks = 0  # the cache blocks its prompt holds while it runs
        self.fault: Optional[str] = None  # the simulated fault it met
        self.scenario: Optional[int] = None  # the scripted-reply rule that answered it
        self.result: Optional[Result] = None  # what a generation answered
        self.stream_outcome: Optional[str] = (
            None  # how its stream ended: completed, client_disconnected, failed, dropped
        )
        self.stream_events = 0  # events its stream sent
        self._raw: Optional[bytes] = None
        self._json: Optional[Dict[str, Any]] = None

    def header(self, name: str, default: str = "") -> str:
        return self.environ.get(environ_key(name), default)

    def body(self) -> bytes:
        """The raw body, refusing (without reading) more than ``max_body_bytes``; read once."""
        if self._raw is None:
            self._raw = self._read_body()
        return self._raw

    @property
    def received(self) -> Optional[bytes]:
        """The raw body if it was read, else None."""
        return self._raw

    def _read_body(self) -> bytes:
        stream = self.environ["wsgi.input"]
        try:
            return self._read_from(stream)
        except BodyTimeout as exc:
            raise errors.APIError(408, f"The request body did not arrive in time: {exc}") from None
        except BodyTooLarge:
            raise errors.body_too_large(self.settings.max_body_bytes) from None
        except ConnectionError:
            raise  # the client is gone: nothing to answer
        except _malformed_body_errors() as exc:
            reason = str(exc).rstrip(".") or type(exc).__name__
            raise errors.invalid_request(f"The request body could not be read: {reason}.") from None

    def _read_from(self, stream: Any) -> bytes:
        read = _timed_reads(stream, self.environ)
        raw_length = self.environ.get("CONTENT_LENGTH", "").strip()
        if raw_length:
            # Digits only: int() would also take "+62", " 6_2" or "٦٢", which HTTP does not.
            if not (raw_length.isascii() and raw_length.isdigit()):
                raise errors.invalid_request(f"Invalid Content-Length header: {raw_length!r}")
            length = int(raw_length)
            if length > self.settings.max_body_bytes:
                if self.environ.get("HTTP_EXPECT", "").lower() != "100-continue":  # else it waits, unsent
                    _drain(read, length)
                raise errors.body_too_large(self.settings.max_body_bytes)
            pieces: List[bytes] = []
            got = 0
            while got < length:  # a timed read answers one piece at a time
                piece = read(length - got)
                if not piece:
                    break
                pieces.append(piece)
                got += len(piece)
            if got < length:
                raise errors.invalid_request(
                    f"The request body is shorter than its Content-Length: {got} of {length} bytes arrived."
                )
            return pieces[0] if len(pieces) == 1 else b"".join(pieces)
        if not self.environ.get("wsgi.input_terminated"):
            return b""
        # Chunked upload: read until EOF, but never past the cap.
        parts: List[bytes] = []
        total = 0
        while True:
            chunk = read(min(_READ_CHUNK, self.settings.max_body_bytes + 1 - total))
            if not chunk:
                return b"".join(parts)
            total += len(chunk)
            if total > self.settings.max_body_bytes:
                raise errors.body_too_large(self.settings.max_body_bytes)
            parts.append(chunk)

    @property
    def parsed(self) -> Optional[Dict[str, Any]]:
        """The JSON body if it was read and valid, else None (for the journal)."""
        return self._json

    @parsed.setter
    def parsed(self, value: Dict[str, Any]) -> None:
        """A body parsed elsewhere: the proxy's, which forwards the body as it came."""
        self._json = value

    def json(self) -> Dict[str, Any]:
        """The body as a JSON object, or a 400 saying precisely what is wrong with it."""
        if self._json is not None:
            return self._json
        content_type = self.environ.get("CONTENT_TYPE", "")
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type and media_type != JSON_CONTENT_TYPE and not media_type.endswith("+json"):
            raise errors.invalid_request(
                f"Invalid Content-Type header ({media_type}), expected {JSON_CONTENT_TYPE}. "
                "The OpenAI API expects a JSON payload."
            )
        raw = self.body()
        if not raw.strip():
            raise errors.invalid_request(
                "We could not parse the JSON body of your request: the body is empty. "
                "The OpenAI API expects a JSON payload."
            )
        try:
            value = _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
        except ValueError as exc:
            raise unparsed(str(exc)) from None
        except RecursionError:  # deeper than the decoder goes, so far past the bound
            raise unparsed(_TOO_DEEP) from None
        if not isinstance(value, dict):
            raise errors.invalid_request(
                f"The request body must be a JSON object, but got {json_type(value)} instead."
            )
        # Only a body with more openers than the bound can pass it: counting them is cheap.
        if raw.count(b"[") + raw.count(b"{") > MAX_NESTING and nests_deeper(value):
            raise unparsed(_TOO_DEEP)
        self._json = value
        return value


_TOO_DEEP = f"it nests deeper than {MAX_NESTING} levels"


def unparsed(reason: str) -> errors.APIError:
    """A body that is not JSON, with the decoder's reason (each dialect words it its way)."""
    return errors.invalid_request(
        f"We could not parse the JSON body of your request ({reason}). The OpenAI API expects a JSON payload."
    )


# Last: the dialect module renders errors with this one's responses.
from mokku.server import dialect as dialects  # noqa: E402
