"""Record and replay: mokku in front of a real provider (``MOKKU_UPSTREAM``), its answers kept in
cassettes (``MOKKU_CASSETTES``) and played back offline.

``MOKKU_MODE``: ``record`` forwards every API call and records it; ``replay`` answers from
cassettes only (no match: an error in the dialect's envelope naming the closest recording and what
differs); ``replay_or_record`` replays a match, else records; ``passthrough`` forwards without
recording. Streams are passed on as they arrive, never buffered whole, each read noted with its
offset from the request's start; a replay keeps that timing (``MOKKU_REPLAY_SPEED``: 0 as fast as
possible, 1 real time, 2 twice as fast). Error faults (model suffix, header, chance) answer before
anything is forwarded or replayed; stream faults apply to the client's stream (what is recorded is
the upstream's answer whole). ``X-Mokku-*`` headers are mokku's: never forwarded.
"""

from __future__ import annotations

import base64
import http.client
import json
import time
from typing import Any, Callable, Dict, Generator, Iterator, List, Optional, Tuple
from urllib.parse import quote, urlsplit

from mokku import errors
from mokku.config import NEEDS_CASSETTES, NEEDS_UPSTREAM
from mokku.control.scenarios import Scenarios
from mokku.record import answers
from mokku.record.answers import Outcome
from mokku.record.cassettes import (
    Cassettes,
    Redaction,
    matching_key,
    normalise,
    query_without_key,
    secret_header,
)
from mokku.server import connection
from mokku.server.http import Request, Response, Result
from mokku.server.stream import Event, EventStream, Token
from mokku.simulation.faults import Simulator
from mokku.simulation.latency import Pace

# A scripted mode rule's ``endpoint``, from the path's end (every dialect).
_ENDPOINTS = (
    ("/chat/completions", "chat.completions"),
    ("/completions", "completions"),
    ("/responses", "responses"),
    ("/embeddings", "embeddings"),
    ("/messages", "messages"),
    (":generateContent", "generate_content"),
    (":streamGenerateContent", "generate_content"),
)
_HOP_BY_HOP = frozenset(
    "connection keep-alive transfer-encoding content-length host accept-encoding te upgrade "
    "proxy-authorization proxy-authenticate proxy-connection trailer".split()
)
READ_SIZE = 64 * 1024
MAX_MISSES_KEPT = 100  # calls that matched no recording, kept for the pytest plugin to report
MAX_RECORDED_BYTES = 64 * 1024 * 1024  # one answer; past it the rest is passed on, not recorded
UPSTREAM_TIMEOUT = 600.0


def upstream_unreachable(url: str, exc: BaseException) -> errors.APIError:
    return errors.APIError(
        502, f"The upstream {url} could not be reached: {exc}", "server_error", code="upstream_unavailable"
    )


def no_recording(
    method: str, path: str, closest: Optional[str], differences: List[str], status: int
) -> errors.APIError:
    """The replay miss: never a silent echo."""
    message = f"No recording matches {method} {path}."
    if closest:
        message += f" The closest, {closest}, differs in: {'; '.join(differences) or 'its sequence (recorded fewer times)'}."
    else:
        message += " Nothing was recorded for this path."
    return errors.APIError(status, message, "invalid_request_error", code="recording_not_found")


class Proxy:
    def __init__(
        self,
        mode: str,
        upstream: str,
        cassettes: Optional[Cassettes],
        simulator: Simulator,
        redaction: Redaction,
        ignored: Tuple[str, ...],
        speed: float,
        miss_status: int,
    ) -> None:
        self.mode, self.upstream, self.cassettes = mode, upstream.rstrip("/"), cassettes
        self.simulator, self.redaction, self.ignored = simulator, redaction, ignored
        self.speed, self.miss_status = speed, miss_status
        self.misses: List[str] = []  # what matched no recording (the pytest plugin fails the test on it)

    def available(self, mode: str) -> Optional[str]:
        """Why this server cannot handle a call in ``mode`` (a scripted rule's), or None."""
        if mode in NEEDS_UPSTREAM and not self.upstream:
            return f"mode {mode} needs MOKKU_UPSTREAM, which this server does not have"
        if mode in NEEDS_CASSETTES and self.cassettes is None:
            return f"mode {mode} needs MOKKU_CASSETTES, which this server does not have"
        return None

    def handle(self, request: Request, scenarios: Optional[Scenarios] = None) -> Optional[Response]:
        """The call recorded, replayed or forwarded; None when a scripted rule says mokku answers it."""
        raw = request.body()
        try:
            body: Any = json.loads(raw) if raw else None
        except (ValueError, RecursionError):
            body = raw.decode("utf-8", "replace")
        # The model a fault suffix rides on: the path's (Gemini, an Azure deployment) or the body's.
        model = request.params.get("model") or request.params.get("deployment")
        if model is None and isinstance(body, dict):
            model = body.get("model")
        model = model if isinstance(model, str) else ""
        mode = self.mode
        if scenarios is not None and scenarios.may_switch():  # the body is read as text only then
            path = request.path
            endpoint = next((name for end, name in _ENDPOINTS if path.endswith(end)), "")
            rule = scenarios.match(endpoint, model, raw.decode("utf-8", "replace"), modes=True)
            if rule is not None:
                request.scenario, mode = rule["rule_id"], rule["mode"]
                if mode == "mock":
                    return None
                why = self.available(mode)
                if why:
                    raise errors.invalid_request(
                        f"Scripted rule {rule['rule_id']}: {why}.", code="mode_unavailable"
                    )
        if isinstance(body, dict):  # for the journal, the metrics and the verdict, as mock answers have it
            request.parsed = body
        request.model = model or None
        behaviour = self.simulator.decide(request, model)
        query = request.environ.get("QUERY_STRING", "")
        sent = {
            "method": request.method,
            "path": request.path,
            "dialect": request.dialect.name,
            "query": query_without_key(query),
            "body": self.redaction.value(normalise(body, self.ignored)),
        }
        key = matching_key(sent["method"], sent["path"], sent["dialect"], sent["query"], sent["body"])
        record: Optional[Tuple[str, int, Dict[str, Any]]] = None
        cassettes = self.cassettes
        if cassettes is not None and mode == "replay":
            # Recordings do not change while replaying: which exist, and what they hold, is read once.
            numbers = cassettes.numbers(request.path, key)
            if numbers:
                number = cassettes.next(key, "replayed") if len(numbers) > 1 else 1
                chosen = max((n for n in numbers if n <= number), default=numbers[0])
                return self._replay(
                    request, cassettes.cached(request.path, key, chosen), behaviour.stream_fault
                )
            closest, differences = cassettes.closest(sent)
            miss = no_recording(request.method, request.path, closest, differences, self.miss_status)
            if len(self.misses) < MAX_MISSES_KEPT:  # a long-running replay server keeps only the first
                self.misses.append(miss.message)
            raise miss
        if cassettes is not None and mode == "replay_or_record":
            number = cassettes.next(key, "replayed")
            entry = (
                cassettes.find(request.path, key, number)
                if cassettes.exists(request.path, key, number)
                else None
            )
            if entry is not None:
                return self._replay(request, entry, behaviour.stream_fault)
            record = (key, number, sent)
        elif cassettes is not None and mode == "record":
            record = (key, 0, sent)  # numbered when saved: an upstream that fails uses up no number
        return self._forward(request, raw, record, behaviour.stream_fault)

    # Forwarding

    def _forward(
        self, request: Request, raw: bytes, record: Optional[Tuple[str, int, Dict[str, Any]]], fault: Any
    ) -> Response:
        started = time.monotonic()
        target = urlsplit(self.upstream)
        path = target.path.rstrip("/") + _upstream_path(request.environ.get("PATH_INFO", ""))
        kind = http.client.HTTPSConnection if target.scheme == "https" else http.client.HTTPConnection
        upstream = kind(target.netloc, timeout=UPSTREAM_TIMEOUT)
        query = request.environ.get("QUERY_STRING", "")
        # The connection's own headers (and those it names), and mokku's own, stay here.
        hop = _HOP_BY_HOP | {name.strip().lower() for name in request.header("Connection").split(",")}
        headers = {
            name: value
            for name, value in _request_headers(request.environ)
            if name.lower() not in hop and not name.lower().startswith("x-mokku-")
        }
        try:
            upstream.request(
                request.method, path + ("?" + query if query else ""), body=raw or None, headers=headers
            )
            answer = upstream.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            upstream.close()
            raise upstream_unreachable(self.upstream, exc) from None
        if not 200 <= answer.status <= 599:  # an interim 1xx as the answer, or no HTTP status at all
            upstream.close()
            raise errors.APIError(
                502,
                f"The upstream {self.upstream} answered status {answer.status}, which HTTP does not have.",
                "server_error",
                code="upstream_unavailable",
            )
        kept = [
            (name.lower(), value) for name, value in answer.getheaders() if name.lower() not in _HOP_BY_HOP
        ]
        # Passed on as it arrives, and recorded up to the cap: a stream, an answer of no stated length
        # (chunked, or up to the close), one past the cap. Only a small whole answer is read first.
        streamed = (
            "text/event-stream" in answer.getheader("content-type", "")
            or answer.length is None
            or answer.length > MAX_RECORDED_BYTES
        )
        entry: Dict[str, Any] = {
            "request": record[2] if record else None,
            "response": {
                "status": answer.status,
                "headers": [[n, v] for n, v in kept if not secret_header(n)],
            },
        }
        if not streamed:
            try:
                data = answer.read()
            except (OSError, http.client.HTTPException) as exc:  # short of its length, or stalled
                raise upstream_unreachable(self.upstream, exc) from None
            finally:
                upstream.close()
            entry["response"].update(_body(data), elapsed=round(time.monotonic() - started, 4))
            if record:
                self._save(request.path, record, entry)
            request.result = _result(answer.status, data)
            return Response(answer.status, kept, [data], forwarded=True)
        chunks: List[Dict[str, Any]] = []
        entry["response"]["chunks"] = chunks

        broke: List[bool] = []  # the upstream failed mid-answer: the client's connection is dropped too
        size = 0

        def keep(data: bytes) -> bool:
            """Record a read, up to the bound; False past it."""
            nonlocal size
            size += len(data)
            if size <= MAX_RECORDED_BYTES:
                chunks.append(dict(_body(data), at=round(time.monotonic() - started, 4)))
                return True
            entry["response"]["dropped"] = True  # the recording stops short: it replays broken, not whole
            return False

        def reads() -> Generator[bytes, None, None]:
            try:
                while True:
                    data = answer.read1(READ_SIZE)
                    if not data:
                        break
                    keep(data)
                    yield data
            except (OSError, http.client.HTTPException):
                entry["response"]["dropped"] = True
                broke.append(True)
            except GeneratorExit:
                if record and fault is not None:  # the fault was the client's: the answer is recorded whole
                    _drain(answer, keep, entry)
                else:  # the client left: what was recorded is not the whole answer
                    entry["response"]["dropped"] = True
                raise
            finally:
                upstream.close()
                if record:
                    self._save(request.path, record, entry)

        # A recording cut short (past its bound) is marked dropped, the client's answer is not.
        return self._stream(request, answer.status, kept, reads(), lambda: bool(broke), fault)

    def _save(self, path: str, record: Tuple[str, int, Dict[str, Any]], entry: Dict[str, Any]) -> None:
        key, number, sent = record
        assert self.cassettes is not None
        number = number or self.cassettes.next(key, "recorded")
        entry = dict(entry, request=sent, key=key, sequence=number)
        entry["response"] = self.redaction.value(entry["response"])
        self.cassettes.save(path, key, number, entry)

    # Replaying

    def _replay(self, request: Request, entry: Dict[str, Any], fault: Any) -> Response:
        answer = entry["response"]
        # The framing is the replay's own: a length edited into a recording would cut its body.
        headers = [
            (name, value) for name, value in answer.get("headers", []) if name.lower() not in _HOP_BY_HOP
        ]
        if "chunks" not in answer:
            if self.speed:
                connection.hold(answer.get("elapsed", 0) / self.speed, request.environ, "the replay waited")
            data = _bytes(answer)
            request.result = _result(answer["status"], data)
            return Response(answer["status"], headers, [data], forwarded=True)
        speed = self.speed

        def reads() -> Generator[bytes, None, None]:
            started = time.monotonic()
            for chunk in answer["chunks"]:
                if speed:
                    due = started + chunk["at"] / speed
                    connection.hold(due - time.monotonic(), request.environ, "the replay waited")
                yield _bytes(chunk)

        return self._stream(
            request, answer["status"], headers, reads(), lambda: bool(answer.get("dropped")), fault
        )

    def _stream(
        self,
        request: Request,
        status: int,
        headers: List[Tuple[str, str]],
        reads: Generator[bytes, None, None],
        broken: Callable[[], bool],
        fault: Any,
    ) -> Response:
        """An upstream's or a recording's reads passed on as they come, an event stream event by
        event (what it says of itself noted for the journal), cut off where the upstream cut it."""
        sse = any(name.lower() == "content-type" and "text/event-stream" in value for name, value in headers)
        outcome = Outcome()

        def produce() -> Iterator[Event]:
            try:
                for data in answers.events(reads) if sse else reads:
                    if sse:
                        outcome.event(data)
                    yield Token(data)
            finally:
                reads.close()
                request.result = outcome.result() if status < 400 else None
            if broken():
                connection.drop_connection(request.environ)

        stream = EventStream(request, produce(), Pace(), fault, live=True)
        return Response(status, headers, stream, forwarded=True)


def _upstream_path(path_info: str) -> str:
    """The path to forward, encoded again as it came (a ``?`` or ``#`` in it stays in the path, a
    space is sent as ``%20``); one with a ``.`` or ``..`` segment, which would leave the upstream's
    base path, is refused."""
    if {".", ".."} & set(path_info.split("/")):
        raise errors.invalid_request("The path has a . or .. segment, which mokku does not forward.")
    return quote(path_info.encode("latin-1", "replace"), safe="/:@!$&'()*+,;=")  # PEP 3333: latin-1


def _drain(answer: http.client.HTTPResponse, keep: Callable[[bytes], bool], entry: Dict[str, Any]) -> None:
    """Read the rest of an answer into its recording, up to its bound (the client is sent no more)."""
    try:
        while True:
            data = answer.read1(READ_SIZE)
            if not data or not keep(data):
                return
    except (OSError, http.client.HTTPException):
        entry["response"]["dropped"] = True


def _request_headers(environ: Dict[str, Any]) -> Iterator[Tuple[str, str]]:
    for name, value in environ.items():
        if name.startswith("HTTP_"):
            yield name[5:].replace("_", "-").title(), value
    if environ.get("CONTENT_TYPE"):
        yield "Content-Type", environ["CONTENT_TYPE"]


def _body(data: bytes) -> Dict[str, Any]:
    """Bytes as a cassette keeps them: text when they are UTF-8, else base64."""
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def _bytes(kept: Dict[str, Any]) -> bytes:
    if "base64" in kept:
        return base64.b64decode(kept["base64"])
    return str(kept.get("text", "")).encode("utf-8")


def _result(status: int, data: bytes) -> Optional[Result]:
    """What a whole answer says of itself, for the journal (None for an error)."""
    if status >= 400:
        return None
    outcome = Outcome()
    outcome.body(data)
    return outcome.result()
