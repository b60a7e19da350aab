"""Prometheus metrics at ``GET /metrics`` (``MOKKU_METRICS``): what the test traffic did, summed
over every worker of the server.

``prometheus-client`` (the extra ``mokku[metrics]``) keeps the values. Under gunicorn with the
shipped config each worker writes them to files of shared memory in a private directory the arbiter
makes (the library's multiprocess mode, ``PROMETHEUS_MULTIPROC_DIR``) and a scrape sums them;
``python -m mokku`` is one process and keeps them in memory. ``MOKKU_METRICS=vllm`` adds the series
vLLM's server exports, by its names, labels and buckets, so a gateway's scraper reads mokku as it
reads vLLM. The library is imported only when metrics are on, and after the arbiter has chosen the
directory: it picks its mode once, when imported.

Labels stay bounded whatever clients send: a route is its template (in the proxy modes a path no
route serves is its own label), a route or model id is cut to ``LABEL_CHARS``, and past ``MAX_LABELS``
distinct ones a process counts the rest as ``other``; a label is valid UTF-8 whatever a client sent.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Tuple

from mokku import config, telemetry
from mokku.simulation import load, prefix

if TYPE_CHECKING:
    from mokku.server.http import Request

log = logging.getLogger("mokku")

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
MAX_LABELS = 100
LABEL_CHARS = 100
OTHER = "other"
# Label sets one process keeps (each a few KB of shared memory): past it, new ones count under
# labels that are all ``other``, whatever mix of routes, statuses and faults clients send.
MAX_SERIES = 1000

# mokku's own histograms start far below a real model's times: a mock answers in microseconds.
DURATION_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip
ITL_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)  # fmt: skip
# vLLM's (vllm/v1/metrics/loggers.py), kept as they are so its dashboards read these series.
VLLM_ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)  # fmt: skip
VLLM_E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)  # fmt: skip
VLLM_TOKEN_BUCKETS = tuple(float(m * 10**e) for e in range(7) for m in (1, 2, 5))  # 1, 2, 5, ... 5,000,000

KV_CACHE, KV_CACHE_HELP = "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage."
RUNNING, RUNNING_HELP = "vllm:num_requests_running", "Number of requests in model execution batches."
WAITING, WAITING_HELP = "vllm:num_requests_waiting", "Number of requests waiting to be processed."

# A provider's finish reason as vLLM's engine names it (stop, length, abort, error).
_FINISHED = {
    "length": "length",
    "max_tokens": "length",
    "MAX_TOKENS": "length",
    "model_context_window_exceeded": "length",
}


def check(settings: config.Settings) -> None:
    """At start: metrics asked for need the library (exit 2 with how to get it), and the directory
    ``PROMETHEUS_MULTIPROC_DIR`` names, when it is set, to be one this server can write in."""
    if not settings.metrics:
        return
    if importlib.util.find_spec("prometheus_client") is None:
        raise config.ConfigError("MOKKU_METRICS needs prometheus-client: pip install 'mokku[metrics]'")
    chosen = os.environ.get(MULTIPROC_DIR)
    if chosen and not (os.path.isdir(chosen) and os.access(chosen, os.W_OK | os.X_OK)):
        raise config.ConfigError(f"{MULTIPROC_DIR} must be a directory this server can write in: {chosen}")


# The files prometheus-client's multiprocess mode writes: "counter_<pid>.db", "gauge_livesum_<pid>.db"...
_VALUE_FILES = ("counter_", "gauge_", "histogram_", "summary_")


def clear_earlier_run(settings: config.Settings) -> None:
    """At start, before any value is written: the files an earlier run left in the directory the
    user chose, which a scrape would add to this run's counts, are removed (as prometheus-client
    asks of a directory between runs)."""
    chosen = os.environ.get(MULTIPROC_DIR)
    if not settings.metrics or not chosen:
        return
    for name in os.listdir(chosen):
        if name.startswith(_VALUE_FILES) and name.endswith(".db"):
            try:
                os.remove(os.path.join(chosen, name))
            except OSError as exc:
                raise config.ConfigError(f"{MULTIPROC_DIR} holds an earlier run's {name}: {exc}") from None


def prepare(settings: config.Settings) -> Optional[str]:
    """In gunicorn's arbiter, before workers start: check the library is there and make the directory
    every worker writes its values to (returned, to remove at exit; None when the user chose one)."""
    check(settings)
    clear_earlier_run(settings)
    if not settings.metrics or os.environ.get(MULTIPROC_DIR):
        return None
    path = tempfile.mkdtemp(prefix="mokku-metrics-")  # private: 0700
    os.environ[MULTIPROC_DIR] = path
    return path


def process_gone(pid: int) -> None:
    """A worker exited: its running and stream gauges stop counting (its counters stay summed)."""
    if os.environ.get(MULTIPROC_DIR):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def _label(value: str, seen: Dict[str, str]) -> str:
    """``value`` as a label: cut, made valid UTF-8 (a lone surrogate would break every later scrape),
    and ``other`` past the first ``MAX_LABELS`` of its kind."""
    known = seen.get(value)
    if known is not None:
        return known
    if len(seen) >= MAX_LABELS:
        return OTHER
    label = seen[value] = value[:LABEL_CHARS].encode("utf-8", "replace").decode("utf-8")
    return label


class _Series(NamedTuple):
    """The series of one route, dialect and model, looked up once per request."""

    duration: Any
    ttft: Any
    itl: Any
    prompt_tokens: Any
    completion_tokens: Any


class Metrics:
    """The series one process updates, and the scrape that reads every process's."""

    def __init__(
        self,
        settings: config.Settings,
        journal_size: Optional[Callable[[], int]] = None,
        slots: Optional[load.Slots] = None,
        cache: Optional[prefix.PrefixCache] = None,
    ) -> None:
        """``slots`` and ``cache``: the load simulation's, whose counts vLLM's gauges show."""
        check(settings)
        import prometheus_client as prom

        self._prom = prom
        self._shared = bool(os.environ.get(MULTIPROC_DIR))
        # Multiprocess: values live in the files, a scrape reads them; else in this registry.
        self._registry = prom.CollectorRegistry(auto_describe=True)
        own = None if self._shared else self._registry
        self._journal_size = journal_size
        self._models: Dict[str, str] = {}
        self._routes: Dict[str, str] = {}
        self._children: Dict[Tuple[Any, ...], Any] = {}
        self._per_model: Dict[Tuple[str, str, str], _Series] = {}
        # With an OTLP endpoint set, the same figures also go out as GenAI metrics.
        self._otlp = telemetry.metrics_enabled()
        self._gen_ai_instruments: Optional[GenAiInstruments] = None
        self._gen_ai_pid = -1
        labels = ("route", "dialect", "model")
        self.requests = prom.Counter(
            "mokku_requests", "API requests answered, by status and the fault they met.",
            [*labels, "status", "fault"], registry=own,
        )  # fmt: skip
        self.duration = prom.Histogram(
            "mokku_request_duration_seconds", "Time from the request to its last byte produced.",
            labels, buckets=DURATION_BUCKETS, registry=own,
        )  # fmt: skip
        self.ttft = prom.Histogram(
            "mokku_time_to_first_token_seconds", "Time to the first event of a stream that answered.",
            labels, buckets=TTFT_BUCKETS, registry=own,
        )  # fmt: skip
        self.itl = prom.Histogram(
            "mokku_inter_token_latency_seconds", "Time between two tokens of a stream.",
            labels, buckets=ITL_BUCKETS, registry=own,
        )  # fmt: skip
        self.prompt_tokens = prom.Counter(
            "mokku_prompt_tokens", "Prompt tokens counted.", labels, registry=own
        )
        self.completion_tokens = prom.Counter(
            "mokku_completion_tokens", "Completion tokens produced.", labels, registry=own
        )
        self.scenario_hits = prom.Counter(
            "mokku_scenario_hits", "Requests a scripted reply answered.", ("route",), registry=own
        )
        self.streams = prom.Gauge(
            "mokku_active_streams", "Streams in progress.", registry=own, multiprocess_mode="livesum"
        )
        self.streams.set(0)
        self.vllm: Optional[VllmSeries] = (
            VllmSeries(prom, settings.metrics_model, own, slots, cache)
            if settings.metrics == "vllm"
            else None
        )
        if not self._shared:
            self._registry.register(_Scraped(self))

    # -- on the request path ------------------------------------------------------------------

    def begin(self) -> None:
        if self.vllm is not None and self.vllm.running is not None:
            self.vllm.running.inc()

    def end(
        self,
        request: Request,
        status: int,
        started: float,
        first_at: float = 0.0,
        token_times: Optional[List[float]] = None,
    ) -> None:
        """Count a request once its answer is over (a stream: when the server closes it)."""
        ended = time.perf_counter()
        route = _label(request.route, self._routes) if request.route else "unmatched"
        key = (route, request.dialect.name, self._model(request))
        series = self._per_model.get(key) or self._add_series(key)
        self.child(self.requests, (*key, str(status), request.fault or "none")).inc()
        series.duration.observe(ended - started)
        result = request.result
        answered = result is not None and status < 400
        if first_at and answered:
            series.ttft.observe(first_at - started)
        itls = _gaps(token_times) if token_times else ()
        for gap in itls:
            series.itl.observe(gap)
        prompt = completion = 0
        if result is not None:
            usage = result.usage or {}
            prompt, completion = (
                int(usage.get("prompt_tokens") or 0),
                int(usage.get("completion_tokens") or 0),
            )
            if prompt:
                series.prompt_tokens.inc(prompt)
            if completion:
                series.completion_tokens.inc(completion)
        if request.scenario is not None:
            self.child(self.scenario_hits, key[:1]).inc()
        if self.vllm is not None:
            ttft = (first_at or ended) - started
            self.vllm.end(self, request, key[2], status, ended - started, ttft, itls, prompt, completion)
        if self._otlp:
            self._gen_ai().record(
                request,
                key[2],
                status,
                ended - started,
                first_at - started if first_at else 0.0,
                prompt,
                completion,
            )

    def _gen_ai(self) -> GenAiInstruments:
        """This process's instruments (its exporter thread starts after gunicorn forks)."""
        if self._gen_ai_pid != os.getpid():
            self._gen_ai_instruments = GenAiInstruments(telemetry.meter())
            self._gen_ai_pid = os.getpid()
        return self._gen_ai_instruments  # type: ignore[return-value]

    def stream_began(self) -> None:
        self.streams.inc()

    def stream_ended(self) -> None:
        self.streams.dec()

    def _add_series(self, key: Tuple[str, str, str]) -> _Series:
        if len(self._per_model) >= MAX_SERIES:
            key = (OTHER, OTHER, OTHER)
            found = self._per_model.get(key)
            if found is not None:
                return found
        series = self._per_model[key] = _Series(
            *(
                metric.labels(*key)
                for metric in (self.duration, self.ttft, self.itl, self.prompt_tokens, self.completion_tokens)
            )
        )
        return series

    def child(self, metric: Any, key: Tuple[str, ...]) -> Any:
        """``metric.labels(*key)``, looked up in a dict of this process's own: the library's takes a
        lock and checks every value each time."""
        child = self._children.get((id(metric), key))
        if child is None:
            if len(self._children) >= MAX_SERIES:
                key = (OTHER,) * len(key)
                child = self._children.get((id(metric), key))
                if child is not None:
                    return child
            child = self._children[(id(metric), key)] = metric.labels(*key)
        return child

    def _model(self, request: Request) -> str:
        """The model the request named (its path for Gemini and Azure deployments, else its body),
        bounded: see the module."""
        model = request.model or request.params.get("model") or request.params.get("deployment")
        if model is None:
            parsed = request.parsed
            model = parsed.get("model") if parsed is not None else None
        if not isinstance(model, str) or not model:
            return "none"
        return _label(model, self._models)

    # -- the scrape ---------------------------------------------------------------------------

    def render(self, accept: str) -> Tuple[bytes, str]:
        """Every process's values in the text format, or OpenMetrics when ``accept`` asks for it."""
        from prometheus_client import exposition

        registry = self._registry
        if self._shared:
            registry = self._prom.CollectorRegistry(auto_describe=False)  # else each file is read twice
            registry.register(_Files(os.environ[MULTIPROC_DIR]))
            registry.register(_Scraped(self))
        encoder, content_type = exposition.choose_encoder(_unescaped(accept))
        return encoder(registry), content_type


class VllmSeries:
    """vLLM's own series (``vllm:*``), labelled as vLLM labels them: ``model_name`` and ``engine``.
    The gauges are the server's, under ``MOKKU_METRICS_MODEL``; the rest are per requested model."""

    def __init__(
        self,
        prom: Any,
        model_name: str,
        registry: Any,
        slots: Optional[load.Slots],
        cache: Optional[prefix.PrefixCache],
    ) -> None:
        labels = ("model_name", "engine")
        self.served = (model_name, "0")
        # With MOKKU_MAX_RUNNING the running and waiting counts are the slots' (read when scraped);
        # else every request in progress runs, and none waits.
        self.slots = slots
        self.running: Any = None
        if slots is None:
            self.running = prom.Gauge(
                RUNNING, RUNNING_HELP, labels, registry=registry, multiprocess_mode="livesum"
            ).labels(*self.served)
            self.waiting = prom.Gauge(
                WAITING, WAITING_HELP, labels, registry=registry, multiprocess_mode="livesum"
            ).labels(*self.served)
            self.running.set(0)
            self.waiting.set(0)
        # With MOKKU_PREFIX_CACHE the cache's usage (read when scraped); else none is simulated.
        self.cache = cache
        if cache is None:
            prom.Gauge(
                KV_CACHE, KV_CACHE_HELP, labels, registry=registry, multiprocess_mode="livemax"
            ).labels(*self.served).set(0)
        self.prefix_queries = prom.Counter(
            "vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.",
            labels, registry=registry,
        )  # fmt: skip
        self.prefix_hits = prom.Counter(
            "vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.",
            labels, registry=registry,
        )  # fmt: skip
        self.ttft = prom.Histogram(
            "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
            labels, buckets=TTFT_BUCKETS, registry=registry,
        )  # fmt: skip
        self.itl = prom.Histogram(
            "vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
            labels, buckets=VLLM_ITL_BUCKETS, registry=registry,
        )  # fmt: skip
        self.e2e = prom.Histogram(
            "vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
            labels, buckets=VLLM_E2E_BUCKETS, registry=registry,
        )  # fmt: skip
        self.queue = prom.Histogram(
            "vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.",
            labels, buckets=VLLM_E2E_BUCKETS, registry=registry,
        )  # fmt: skip
        self.request_prompt = prom.Histogram(
            "vllm:request_prompt_tokens", "Number of prefill tokens processed.",
            labels, buckets=VLLM_TOKEN_BUCKETS, registry=registry,
        )  # fmt: skip
        self.request_generation = prom.Histogram(
            "vllm:request_generation_tokens", "Number of generation tokens processed.",
            labels, buckets=VLLM_TOKEN_BUCKETS, registry=registry,
        )  # fmt: skip
        self.prompt_tokens = prom.Counter(
            "vllm:prompt_tokens", "Number of prefill tokens processed.", labels, registry=registry
        )
        self.generation_tokens = prom.Counter(
            "vllm:generation_tokens", "Number of generation tokens processed.", labels, registry=registry
        )
        self.success = prom.Counter(
            "vllm:request_success", "Count of successfully processed requests.",
            (*labels, "finished_reason"), registry=registry,
        )  # fmt: skip

    def end(
        self,
        metrics: Metrics,
        request: Request,
        model: str,
        status: int,
        e2e: float,
        ttft: float,
        itls: Iterable[float],
        prompt: int,
        completion: int,
    ) -> None:
        if self.running is not None:
            self.running.dec()
        result = request.result
        if result is None:  # not a generation (a model list, an error before one)
            return
        child, labels = metrics.child, (model, "0")
        reason = _finished_reason(request, status)
        child(self.success, (*labels, reason)).inc()
        child(self.e2e, labels).observe(e2e)
        child(self.queue, labels).observe(request.held.waited if request.held is not None else 0.0)
        if status < 400:
            child(self.ttft, labels).observe(ttft)
        itl = child(self.itl, labels)
        for gap in itls:
            itl.observe(gap)
        child(self.request_prompt, labels).observe(prompt)
        child(self.request_generation, labels).observe(completion)
        if prompt:
            child(self.prompt_tokens, labels).inc(prompt)
        if completion:
            child(self.generation_tokens, labels).inc(completion)
        if request.kv_blocks:  # looked up in the prefix cache
            child(self.prefix_queries, labels).inc(prompt)
            if request.cached_tokens:
                child(self.prefix_hits, labels).inc(request.cached_tokens)


# The GenAI semantic conventions' bucket advice for each instrument.
_DURATION_ADVICE = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
_TTFT_ADVICE = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_TPOT_ADVICE = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
_TOKENS_ADVICE = tuple(4**e for e in range(14))  # 1, 4, 16, ... 67,108,864


class GenAiInstruments:
    """The GenAI semantic conventions' server metrics, over OTLP: request duration, time to first
    token and time per output token (of streams that answered), and token usage. The conventions
    define token usage only as ``gen_ai.client.token.usage``: it is sent under that name, with the
    counts the answers report, as a client of mokku would measure them."""

    def __init__(self, meter: Any) -> None:
        self.duration = meter.create_histogram(
            "gen_ai.server.request.duration", unit="s",
            description="Generative AI server request duration such as time-to-last byte or last output token.",
            explicit_bucket_boundaries_advisory=_DURATION_ADVICE,
        )  # fmt: skip
        self.ttft = meter.create_histogram(
            "gen_ai.server.time_to_first_token", unit="s",
            description="Time to generate first token for successful responses.",
            explicit_bucket_boundaries_advisory=_TTFT_ADVICE,
        )  # fmt: skip
        self.tpot = meter.create_histogram(
            "gen_ai.server.time_per_output_token", unit="s",
            description="Time per output token generated after the first token for successful responses.",
            explicit_bucket_boundaries_advisory=_TPOT_ADVICE,
        )  # fmt: skip
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=_TOKENS_ADVICE,
        )  # fmt: skip

    def record(
        self,
        request: Request,
        model: str,
        status: int,
        duration: float,
        ttft: float,
        prompt: int,
        completion: int,
    ) -> None:
        """``model``: the bounded label (see the module)."""
        if request.operation is None:  # not a generation (a model list, an unknown path)
            return
        attributes: Dict[str, Any] = {
            "gen_ai.operation.name": request.operation,
            "gen_ai.provider.name": request.dialect.provider,
        }
        if model != "none":
            attributes["gen_ai.request.model"] = model
        if status >= 400:
            self.duration.record(duration, {**attributes, "error.type": str(status)})
            return
        self.duration.record(duration, attributes)
        if ttft:
            self.ttft.record(ttft, attributes)
            if completion > 1:
                self.tpot.record((duration - ttft) / (completion - 1), attributes)
        if request.result is not None:
            self.tokens.record(prompt, {**attributes, "gen_ai.token.type": "input"})
            self.tokens.record(completion, {**attributes, "gen_ai.token.type": "output"})


def _finished_reason(request: Request, status: int) -> str:
    if status >= 500 or request.stream_outcome in ("failed", "dropped"):  # dropped: by the server
        return "error"
    if request.stream_outcome == "client_disconnected" or status == 499:
        return "abort"
    reasons = request.result.finish_reasons if request.result is not None else None
    return _FINISHED.get(reasons[0], "stop") if reasons else "stop"


def _gaps(times: List[float]) -> List[float]:
    return [later - earlier for earlier, later in zip(times, times[1:])]


class _Files:
    """Every process's values, read from the directory they write to. A process creating a file
    opens it, then sizes it: a scrape in between finds it empty, and skips it (it holds no values
    yet) where the library's own collector fails on it."""

    def __init__(self, path: str) -> None:
        self._path = path

    def collect(self) -> Iterable[Any]:
        from prometheus_client import multiprocess

        files = []
        for entry in os.scandir(self._path):
            if not entry.name.endswith(".db"):
                continue
            try:
                if entry.stat().st_size:
                    files.append(entry.path)
            except FileNotFoundError:  # a gone worker's live gauges, removed since the listing
                continue
        return multiprocess.MultiProcessCollector.merge(files, accumulate=True)


class _Scraped:
    """Figures read when scraped, not counted per request: the journal's size."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        found = []
        vllm = self._metrics.vllm
        if vllm is not None and vllm.slots is not None:
            for name, help_text, count in zip(
                (RUNNING, WAITING), (RUNNING_HELP, WAITING_HELP), vllm.slots.counts()
            ):
                family = GaugeMetricFamily(name, help_text, labels=("model_name", "engine"))
                family.add_metric(vllm.served, count)
                found.append(family)
        if vllm is not None and vllm.cache is not None:
            family = GaugeMetricFamily(KV_CACHE, KV_CACHE_HELP, labels=("model_name", "engine"))
            family.add_metric(vllm.served, vllm.cache.usage())
            found.append(family)
        size = self._metrics._journal_size
        if size is not None:
            try:
                found.append(
                    GaugeMetricFamily("mokku_journal_entries", "Entries the journal holds.", value=size())
                )
            except Exception:  # the store is gone: the scrape answers without it
                log.warning("the journal's size could not be read for /metrics", exc_info=True)
        return found

    def describe(self) -> Iterable[Any]:
        return []


def _unescaped(accept: str) -> str:
    """``accept`` asking for names as they are: every name here is a valid classic name (``vllm:``
    colons included), but prometheus-client's default escaping for OpenMetrics rewrites the samples'
    colons and not the ``# TYPE`` line's, which parsers refuse (Prometheus 2's scrape header)."""
    return ",".join(
        f"{part};escaping=allow-utf-8"
        if part.split(";")[0].strip() == "application/openmetrics-text" and "escaping=" not in part
        else part
        for part in accept.split(",")
    )
