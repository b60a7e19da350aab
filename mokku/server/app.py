"""The WSGI callable: route the request, run its handler, render every failure.

All exceptions end here: an ``APIError`` becomes its envelope, anything else
is logged with its traceback and becomes a 500 envelope, so a bad request
never kills a worker or shows a traceback to a client.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any, Callable, Dict, Iterable, Optional

from mokku import config, errors, telemetry
from mokku.api.health import readiness
from mokku.api.ids import random_bits
from mokku.control.journal import Journal, entry_for
from mokku.control.scenarios import Scenarios
from mokku.control.state import default_path
from mokku.metrics import Metrics
from mokku.record.setup import make_proxy
from mokku.server import connection, cors
from mokku.server.dialect import Dialect
from mokku.server.http import Headers, Request, Response, status_line
from mokku.server.routes import build_routes, dialect_of
from mokku.server.routing import Route, Router
from mokku.server.stream import EventStream
from mokku.simulation import limits, load, prefix
from mokku.store import open_stores

log = logging.getLogger("mokku")

# The journal's status for a request whose client left before any response (nginx's code for it).
CLIENT_CLOSED_REQUEST = 499
# The providers' APIs (OpenAI's, Anthropic's and Gemini's under /v1, Gemini's under /v1beta, Azure's under /openai):
# journaled, keyed and limited.
API_PREFIXES = ("/v1/", "/v1beta/", "/openai/")
_CLIENT_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}\Z")

StartResponse = Callable[..., Any]


class App:
    """A WSGI application serving the OpenAI API surface from one route table."""

    def __init__(
        self,
        settings: Optional[config.Settings] = None,
        routes: Optional[Iterable[Route]] = None,
        choose_dialect: Callable[[Request], Dialect] = dialect_of,
    ) -> None:
        self.settings = settings or config.load()
        self.journal: Optional[Journal] = None
        self.scenarios: Optional[Scenarios] = None
        # The state file (none with Redis: everything shared is there).
        state = "" if self.settings.state_url else self.settings.state_path or default_path()
        # Nothing touches the store here: a worker boots whatever state it is in.
        stores = open_stores(self.settings, state)
        self.stored = stores.objects
        if self.settings.journal:
            self.journal = Journal(
                state,
                self.settings.journal_size,
                self.settings.journal_bytes,
                self.settings.journal_body_bytes,
                stores.journal,
            )
        if self.settings.admin:
            self.scenarios = Scenarios(state, store=stores.rules)
        # The load simulation's shared state: made once per server (gunicorn's arbiter) or per app.
        self.slots = load.slots(self.settings)
        self.prefix_cache = prefix.cache(self.settings)
        self.metrics = (
            Metrics(
                self.settings,
                self.journal.count if self.journal is not None else None,
                self.slots,
                self.prefix_cache,
            )
            if self.settings.metrics
            else None
        )
        self.router = Router(
            build_routes(
                self.settings,
                self.journal,
                self.scenarios,
                self.stored,
                readiness(stores.ready, stores.rules.name),
                self._scrape if self.metrics is not None else None,
                self.slots,
                self.prefix_cache,
            )
            if routes is None
            else routes
        )
        # The dialect of a request no route decides (the shared model list, an unknown path).
        self._dialect_of = choose_dialect
        self.access = limits.Access(self.settings, buckets=stores.buckets)
        self.counters = stores.counters
        self.proxy = make_proxy(self.settings, stores.counters) if self.settings.mode else None
        if self.proxy is not None and self.scenarios is not None:
            self.scenarios.mode_unavailable = self.proxy.available
        self._checked_threading = False

    def __call__(self, environ: Dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        if not self._checked_threading:
            self._check_threading(environ)
        request = Request(environ, self.settings, telemetry.current_span())
        request.id = _request_id(environ)
        if request.span is not None:
            telemetry.redact_url(request.span, environ.get("QUERY_STRING", ""))
        metrics = self.metrics
        preflight = request.method == "OPTIONS"  # answered by cors, never measured
        measured = metrics is not None and not preflight and request.path.startswith(API_PREFIXES)
        if measured:
            metrics.begin()  # type: ignore[union-attr]
        try:
            response = self.handle(request)
        except ConnectionResetError:
            # The client left before any response (during a simulated timeout, say): nothing is sent;
            # the journal notes the request with nginx's status for it, 499.
            self._give_back(request)
            if measured:
                self._measure(request, CLIENT_CLOSED_REQUEST, started)
            if self._journaled(request):
                self._record(request, Response(CLIENT_CLOSED_REQUEST, [], []), started)
            raise
        if request.held is not None or request.kv_blocks:  # given back when the answer is over
            if isinstance(response.body, EventStream):
                response.body.on_close(lambda stream: self._give_back(request))
            else:
                self._give_back(request)
        elapsed_ms = int((time.perf_counter() - started) * 1000)
        added = request.headers_out + request.dialect.response_headers(request.id, elapsed_ms)
        if "HTTP_ORIGIN" in environ and not preflight:  # a preflight says it itself
            added += request.dialect.cross_origin_headers(request)
        headers = response.headers
        # An error's own rate-limit headers (a fault's) win over the limiter's.
        if response.forwarded or (response.status >= 400 and request.headers_out):
            _add_missing(headers, added)
        else:
            headers.extend(added)
        start_response(status_line(response.status), headers)
        body = response.body
        if request.method == "HEAD":
            close = getattr(body, "close", None)
            if close is not None:
                close()
            if measured:
                self._measure(request, response.status, started)
            return []
        journaled = self._journaled(request)
        if isinstance(body, EventStream):  # measured and journaled when it ends, with how it ended
            if measured:
                body.token_times = []
                metrics.stream_began()  # type: ignore[union-attr]
                body.on_close(lambda stream: self._measure(request, response.status, started, stream))
            if journaled:
                body.on_end(self.journal.expect)  # type: ignore[union-attr]
                body.on_close(lambda stream: self._record(request, response, started, stream.ended))
        else:
            if measured:
                self._measure(request, response.status, started)
            if journaled:
                self._record(request, response, started)
            if isinstance(body, list) and sum(map(len, body)) > connection.LARGE_ANSWER:
                return connection.Watched(body, environ)
        return body

    def _give_back(self, request: Request) -> None:
        """What a generation held while it ran: its slot (``MOKKU_MAX_RUNNING``), its prompt's blocks
        of the prefix cache (``MOKKU_PREFIX_CACHE``)."""
        if request.held is not None:
            request.held.release()
        if request.kv_blocks and self.prefix_cache is not None:
            self.prefix_cache.release(request.kv_blocks)  # once: the answer ends once

    def _scrape(self, request: Request) -> Response:
        """``GET /metrics``: Prometheus's text format, or OpenMetrics when the scraper asks for it."""
        body, content_type = self.metrics.render(request.header("Accept"))  # type: ignore[union-attr]
        return Response(200, [("Content-Type", content_type)], [body])

    def _measure(
        self, request: Request, status: int, started: float, stream: Optional[EventStream] = None
    ) -> None:
        """Count the request in the metrics once its answer is over; never fails the request."""
        metrics: Metrics = self.metrics  # type: ignore[assignment]
        try:
            if stream is None:
                metrics.end(request, status, started)
            else:
                metrics.end(request, status, started, stream.first_at, stream.token_times)
                metrics.stream_ended()  # after: a scrape that sees the stream gone sees it counted
        except Exception:
            log.exception("could not count the request in the metrics")

    def _journaled(self, request: Request) -> bool:
        """The journal keeps the API's requests (``/v1``, ``/openai``), not health checks or admin calls."""
        return (
            self.journal is not None and request.route is not None and request.route.startswith(API_PREFIXES)
        )

    def _record(self, request: Request, response: Response, started: float, expected: bool = False) -> None:
        """One journal write per request, after its response is made; never fails the request.
        ``expected``: announced by ``Journal.expect`` (a stream that ran to its end)."""
        journal: Journal = self.journal  # type: ignore[assignment]
        try:
            entry = entry_for(request, response.status, started)
            for name, value in response.headers:
                if name == "retry-after-ms":
                    entry["retry_after_ms"] = int(value)
        except Exception:
            log.exception("could not write the request journal")
            if expected:
                journal.fulfil()  # never coming: readers stop waiting for it
            return
        journal.record(entry, expected)

    def handle(self, request: Request) -> Response:
        try:
            if request.method == "OPTIONS":  # a browser's preflight: never authenticated nor journaled
                request.dialect = self._dialect_of(request)
                return cors.preflight(request, self.router.methods(request))
            try:
                route, params = self.router.match(request)
            except errors.APIError:
                telemetry.record_route(request.span, request.method, None)
                request.dialect = self._dialect_of(request)  # no route: the headers say whose API
                if self.proxy is not None and request.path.startswith(API_PREFIXES):
                    request.route = request.path  # the upstream's own routes (a vLLM's /v1/tokenize)
                    answer = self.proxy.handle(request, self.scenarios)
                    if answer is not None:
                        return answer
                raise
            request.route, request.params = route.name, params
            request.dialect = route.dialect or self._dialect_of(request)
            telemetry.record_route(request.span, request.method, route.name)
            if self.access.active and route.name.startswith(API_PREFIXES):
                request.headers_out.extend(self.access.check(request))
            if self.proxy is not None and route.name.startswith(API_PREFIXES):
                answer = self.proxy.handle(request, self.scenarios)  # recorded, replayed or forwarded
                if answer is not None:
                    return answer
            return route.handler(request, **params)
        except ConnectionResetError:
            raise  # the client is gone, or dropped on purpose: no response to make, no error to log
        except errors.APIError as exc:
            telemetry.record_error(request.span, exc.status, exc.type, exc.code, exc.message)
            return request.dialect.error_response(exc, request)
        except Exception:
            log.exception("unhandled error in %s %s", request.method, request.path)
            error = errors.server_error()
            telemetry.record_error(request.span, error.status, error.type, error.code, error.message)
            return request.dialect.error_response(error, request)

    def _check_threading(self, environ: Dict[str, Any]) -> None:
        self._checked_threading = True
        if not environ.get("wsgi.multithread", False):
            log.warning(
                "this server runs one request per worker at a time: a stream blocks its "
                "worker until it ends; use threaded workers (gunicorn -c python:mokku.gunicorn_conf "
                "or --worker-class gthread)"
            )


def _add_missing(headers: Headers, added: Headers) -> None:
    """Add the headers ``headers`` lack: an upstream's, a recording's or an error's own (its request
    id, its rate limits) are kept, never sent twice beside mokku's."""
    present = {name.lower() for name, _ in headers}
    headers.extend(header for header in added if header[0].lower() not in present)


def _request_id(environ: Dict[str, Any]) -> str:
    """The client's ``X-Request-Id`` when it is a sane token, else a fresh ``req_...`` id."""
    sent = environ.get("HTTP_X_REQUEST_ID")
    if sent and _CLIENT_REQUEST_ID.match(sent):
        return sent
    return f"req_{random_bits(128):032x}"  # no system call (see ids)
