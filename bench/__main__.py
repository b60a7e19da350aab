"""``python -m bench [--quick] [--no-peers]``: mokku against fixed baselines and its PyPI peers,
side by side, in one run.

Every server is started here on 127.0.0.1 and stopped at the end; load comes from ``wrk``
(Debian package ``wrk``: ``apt-get install wrk``) and, for time to first byte and many slow
streams, from the asyncio client in ``bench/streams.py``. Each wrk workload runs 9 interleaved
rounds (one with ``--quick``); the primary figure is each server's CPU time per request, and its ratio to
the baseline's is reported round by round (median and range), since only ratios mean anything on a
shared machine. A chart of every ratio goes to ``bench/chart.svg``. Peers are installed on first use into their
own venvs (``bench/peers.py``). Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from bench import chart, peers, streams

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CHART = ROOT / "bench" / "chart.svg"  # linked from bench/README.md
PEER_TARGET = 1.3  # on W1 and W2, a peer's CPU per request over mokku's
# Rounds per wrk workload. Five gave ranges that another machine's medians fell just outside of; the
# range of 9 rounds spans about 80% of a ratio's spread rather than 67%, and the median moves less.
ROUNDS = 9
WIDE_RANGE = 0.15  # a ratio's range across rounds past which the machine was too busy to trust it
# Before a round every server must be idle: under QUIET_CPU_S of CPU in QUIET_WINDOW_S, waited for up
# to QUIET_WAIT_S.
QUIET_CPU_S, QUIET_WINDOW_S, QUIET_WAIT_S = 0.05, 0.5, 30.0
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": peers.PROMPT}]}
STREAM = dict(CHAT, stream=True)
# The same prompt as an Anthropic Messages stream (the same core, another dialect's events).
MESSAGES = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": True, "messages": CHAT["messages"]}
ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "sk-ant-bench"}
EMBED = {"model": "text-embedding-3-small", "input": "The food was delicious and the waiter friendly."}
GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "python:mokku.gunicorn_conf"]
PATHS = {
    "chat": "/v1/chat/completions",
    "stream": "/v1/chat/completions",
    "embed": "/v1/embeddings",
    "get": "/v1/models",
}
STREAMS_PROFILE = [sys.executable, "-m", "gunicorn", "-c", "python:mokku.gunicorn_streams"]
# Every endpoint family with a different prompt each time, so that anything kept per request shows.
SOAK_SCRIPT = Path(__file__).resolve().parent / "soak.lua"
RAW_RECEIVER = """
import sys, time
from concurrent import futures
import grpc
handler = grpc.method_handlers_generic_handler(
    "opentelemetry.proto.collector.trace.v1.TraceService",
    {"Export": grpc.unary_unary_rpc_method_handler(lambda request, context: b"")},
)
server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
server.add_generic_rpc_handlers((handler,))
print(server.add_insecure_port("127.0.0.1:0"), flush=True)
server.start()
time.sleep(3600)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(port: int, path: str, payload: Optional[dict] = None, timeout: float = 60) -> Tuple[int, bytes]:
    """One request on its own connection: a GET, or a POST of ``payload`` as JSON."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if payload is None:
            connection.request("GET", path)
        else:
            connection.request("POST", path, json.dumps(payload), {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


class Server:
    """A server process; ``startup`` is the seconds from launch to its first 200."""

    def __init__(
        self, command: List[str], env: Optional[Dict[str, str]] = None, ready: str = "/health"
    ) -> None:
        self.port = free_port()
        command = [part.replace("{port}", str(self.port)) for part in command]
        # Only the settings named here: none inherited from the shell running the bench.
        full_env = {
            name: value for name, value in os.environ.items() if not name.startswith(("OTEL_", "MOKKU_"))
        }
        full_env.update(
            MOKKU_HOST="127.0.0.1", MOKKU_PORT=str(self.port), MOKKU_WORKERS="2", MOKKU_THREADS="8"
        )
        full_env.update(env or {})
        started = time.perf_counter()
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if call(self.port, ready, timeout=5)[0] == 200:
                    break
            except OSError:
                time.sleep(0.01)
        else:
            self.stop()
            raise RuntimeError(f"{command} did not start")
        self.startup = time.perf_counter() - started

    def pids(self) -> List[int]:
        """The process and its children (gunicorn's workers)."""
        pids = [self.process.pid]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == self.process.pid:
                    pids.append(int(entry.name))
        return pids

    def cpu_seconds(self) -> float:
        """User and system CPU time of the process and its children so far."""
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / CLOCK_TICKS

    def rss_mb(self) -> float:
        """Resident memory of the process and its children (gunicorn's workers)."""
        total = 0
        for pid in self.pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            match = re.search(r"VmRSS:\s+(\d+) kB", status)
            total += int(match.group(1)) if match else 0
        return total / 1024

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()


def quiet(servers: Dict[str, Server], limit: float = QUIET_WAIT_S) -> None:
    """Wait until no server works on after its round (streams a peer still sends to a client that
    left, say): a round shares the machine with nothing but its own load."""
    deadline = time.monotonic() + limit
    while True:
        before = {name: server.cpu_seconds() for name, server in servers.items()}
        time.sleep(QUIET_WINDOW_S)
        busy = [name for name, server in servers.items() if server.cpu_seconds() - before[name] > QUIET_CPU_S]
        if not busy:
            return
        if time.monotonic() > deadline:
            print(f"bench: {', '.join(busy)} still busy {limit:.0f} s after a round", file=sys.stderr)
            return


def wrk_script(
    directory: Path, name: str, method: str, body: Optional[dict], headers: Optional[Dict[str, str]] = None
) -> Path:
    path = directory / f"{name}.lua"
    lines = [f'wrk.method = "{method}"', 'wrk.headers["Content-Type"] = "application/json"']
    lines += [
        f"wrk.headers[{json.dumps(key)}] = {json.dumps(value)}" for key, value in (headers or {}).items()
    ]
    if body is not None:
        lines.append(f"wrk.body = {json.dumps(json.dumps(body))}")
    path.write_text("\n".join(lines) + "\n")
    return path


def wrk(port: int, path: str, script: Path, seconds: int) -> Dict[str, float]:
    output = subprocess.run(
        [
            "wrk",
            "-t2",
            "-c64",
            f"-d{seconds}s",
            "--timeout",
            "10s",  # a slow peer's answers still count
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def latency(label: str) -> float:
        match = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", output)
        if not match:
            return float("nan")
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]
        return float(match.group(1)) * scale

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    failed = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if failed and total:  # only successful answers count
        rps *= 1 - int(failed.group(1)) / total
        print(f"bench: {failed.group(1)} of {total} answers to {path} were errors", file=sys.stderr)
    return {"rps": rps, "p50": latency("50%"), "p99": latency("99%"), "requests": float(total)}


def own_rss_mb() -> float:
    """This process's resident memory: the bench's asyncio client."""
    match = re.search(r"VmRSS:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(match.group(1)) / 1024 if match else 0.0


def median_of(runs: List[Dict[str, float]]) -> Dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


class Bench:
    def __init__(self, quick: bool, with_peers: bool = True) -> None:
        self.quick = quick
        self.with_peers = with_peers
        self.versions: Dict[str, str] = {}
        self.peer_results: Dict[str, Dict[str, str]] = {}
        self.seconds = 1 if quick else 5
        self.repeats = 1 if quick else 5  # W5, time to first byte, startup and the float batch
        self.wrk_rounds = 1 if quick else ROUNDS
        self.directory = Path(tempfile.mkdtemp(prefix="mokku-bench-"))
        self.scripts = {
            "chat": wrk_script(self.directory, "chat", "POST", CHAT),
            "stream": wrk_script(self.directory, "stream", "POST", STREAM),
            "messages": wrk_script(self.directory, "messages", "POST", MESSAGES, ANTHROPIC_HEADERS),
            "embed": wrk_script(self.directory, "embed", "POST", EMBED),
            "get": wrk_script(self.directory, "get", "GET", None),
        }
        self.rows: List[Tuple[str, str, str, str]] = []
        self.rounds: Dict[int, List[float]] = {}  # a server's CPU µs per request, round by round
        self.peer_of: Dict[str, peers.Peer] = {}  # a peer's row (one process, or as many as mokku)
        self.ratios: List[chart.Ratio] = []  # for the chart
        self.lateness: Dict[str, List[float]] = {}  # W5's lateness percentiles by run, for the chart

    def load(self, servers: Dict[str, Server], path: str, script: str) -> Dict[str, Dict[str, float]]:
        """Each server under the same load, interleaved round by round; the median per server, and
        its CPU time per request (``cpu_us``: user + system of every server process over the round)
        in every round (``self.rounds``), for ratios by round."""
        print(
            f"bench: {script} on {', '.join(servers)}; load average {os.getloadavg()[0]:.2f}", file=sys.stderr
        )
        for server in servers.values():
            wrk(server.port, path, self.scripts[script], 1)  # warm up
        runs: Dict[str, List[Dict[str, float]]] = {name: [] for name in servers}
        for _ in range(self.wrk_rounds):
            for name, server in servers.items():
                quiet(servers)
                before = server.cpu_seconds()
                found = wrk(server.port, path, self.scripts[script], self.seconds)
                spent = server.cpu_seconds() - before
                found["cpu_us"] = spent / found["requests"] * 1e6 if found["requests"] else float("nan")
                runs[name].append(found)
        for name, each in runs.items():
            self.rounds[id(servers[name])] = [run["cpu_us"] for run in each]
        return {name: median_of(each) for name, each in runs.items()}

    def cpu_ratio(
        self, baseline: Server, server: Server, label: str = "", target: Optional[float] = None
    ) -> str:
        """baseline ÷ server in CPU time per request, by round: the median and the range, with a
        warning when the range is wider than ``WIDE_RANGE``; with a ``label``, also in the chart."""
        ratios = sorted(b / s for b, s in zip(self.rounds[id(baseline)], self.rounds[id(server)]) if s)
        if not ratios:
            return "n/a"
        median = statistics.median(ratios)
        if label:
            self.ratios.append(chart.Ratio(label, median, ratios[0], ratios[-1], target))
        text = f"{median:.2f} by CPU ({ratios[0]:.2f} to {ratios[-1]:.2f})"
        if ratios[-1] - ratios[0] > WIDE_RANGE:
            rounds = ", ".join(f"{ratio:.2f}" for ratio in ratios)
            print(f"bench: a wide range, {text}, rounds {rounds}: the machine is busy", file=sys.stderr)
            text += " (wide)"
        return text

    def first_byte(self, port: int) -> Tuple[float, float]:
        """Median p50 and p99 time to first byte of streamed chat at c=64."""
        runs = [streams.time_to_first_byte(port, STREAM, 64, self.seconds) for _ in range(self.repeats)]
        return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)

    def row(self, workload: str, figure: str, ratio: str, target: str) -> None:
        self.rows.append((workload, figure, ratio, target))

    def run(self) -> None:
        mokku = Server([*GUNICORN, "mokku.wsgi:app"])
        models = self.directory / "models.json"
        models.write_bytes(call(mokku.port, "/v1/models")[1])
        fixed = Server([*GUNICORN, "bench.baselines.fixed_json:app"], {"BENCH_FIXED_BODY": str(models)})
        echo = Server([*GUNICORN, "bench.baselines.echo:app"])
        sse = Server([*GUNICORN, "bench.baselines.sse:app"])
        embed = Server([*GUNICORN, "bench.baselines.embed:app"])
        module = Server([sys.executable, "-m", "mokku"])  # one process, its own HTTP/1.1 server
        others = self.start_peers()
        servers = [mokku, fixed, echo, sse, embed, module, *others.values()]
        try:
            idle_rss = mokku.rss_mb()
            w1 = self.compare(
                "W1", {"mokku": mokku, "echo": echo, "fixed": fixed, "module": module}, others, "chat"
            )
            self.row(
                "W1 chat, c=64",
                f"{w1['mokku']['rps']:,.0f} req/s (p50 {w1['mokku']['p50']:.1f} ms, p99 {w1['mokku']['p99']:.1f} ms); "
                f"echo baseline {w1['echo']['rps']:,.0f}; fixed JSON {w1['fixed']['rps']:,.0f}",
                f"{self.cpu_ratio(echo, mokku, 'W1 chat vs echo', 0.85)} x echo; "
                f"{w1['mokku']['rps'] / w1['echo']['rps']:.2f} by req/s",
                "≥ 0.85 x echo by CPU",
            )
            self.module_row("W1", w1, mokku, module)
            self.row(
                "RSS",
                f"{idle_rss:.0f} MB idle, {mokku.rss_mb():.0f} MB after W1 (arbiter + 2 workers)",
                "",
                "",
            )
            w2 = self.compare("W2", {"mokku": mokku, "sse": sse, "module": module}, others, "stream")
            first = {name: self.first_byte(server.port) for name, server in (("mokku", mokku), ("sse", sse))}
            self.row(
                "W2 streamed chat, c=64",
                f"{w2['mokku']['rps']:,.0f} streams/s (p50 {w2['mokku']['p50']:.1f} ms); SSE baseline {w2['sse']['rps']:,.0f}",
                f"{self.cpu_ratio(sse, mokku, 'W2 streamed chat vs SSE', 0.8)} x SSE; "
                f"{w2['mokku']['rps'] / w2['sse']['rps']:.2f} by req/s",
                "≥ 0.8 x SSE by CPU",
            )
            self.module_row("W2", w2, mokku, module)
            self.row(
                "W2 time to first byte, c=64 (new connection each)",
                f"p50 {first['mokku'][0]:.1f} ms, p99 {first['mokku'][1]:.1f} ms; "
                f"SSE baseline p50 {first['sse'][0]:.1f} ms, p99 {first['sse'][1]:.1f} ms",
                f"{first['sse'][0] / first['mokku'][0]:.2f} x SSE (p50)",
                "",
            )
            messages = self.load({"mokku": mokku}, "/v1/messages", "messages")["mokku"]
            self.row(
                "W2 streamed Anthropic Messages, c=64",
                f"{messages['rps']:,.0f} streams/s (p50 {messages['p50']:.1f} ms)",
                f"{messages['rps'] / w2['mokku']['rps']:.2f} x chat stream",
                "",
            )
            w3 = self.compare("W3", {"mokku": mokku, "embed": embed}, others, "embed")
            self.row(
                "W3 embeddings, 1 input x 1536",
                f"{w3['mokku']['rps']:,.0f} req/s; embeddings baseline {w3['embed']['rps']:,.0f}",
                f"{self.cpu_ratio(embed, mokku, 'W3 embeddings vs embed', 1.0)} x embed; "
                f"{w3['mokku']['rps'] / w3['embed']['rps']:.2f} by req/s",
                "≥ 1.0 x embed by CPU",
            )
            batch = {"model": "text-embedding-3-small", "input": [f"short text {i}" for i in range(2048)]}
            for encoding in ("base64", "float"):
                times = []
                for _ in range(self.repeats + 2):
                    started = time.perf_counter()
                    status, _ = call(mokku.port, "/v1/embeddings", dict(batch, encoding_format=encoding))
                    assert status == 200
                    times.append(time.perf_counter() - started)
                self.row(
                    f"W3 embeddings, 2048 inputs, {encoding}",
                    f"{statistics.median(times):.2f} s",
                    "",
                    "≤ 0.5 s" if encoding == "float" else "well under 1 s",
                )
            w4 = self.compare("W4", {"mokku": mokku, "fixed": fixed}, others, "get")
            self.row(
                "W4 GET /v1/models",
                f"{w4['mokku']['rps']:,.0f} req/s; fixed JSON {w4['fixed']['rps']:,.0f}",
                f"{self.cpu_ratio(fixed, mokku, 'W4 GET /v1/models vs fixed', 0.9)} x fixed; "
                f"{w4['mokku']['rps'] / w4['fixed']['rps']:.2f} by req/s",
                "≥ 0.9 x fixed by CPU",
            )
            self.replay(mokku, echo)
        finally:
            for server in servers:
                server.stop()
        self.tracing_and_journal()
        self.many_streams()
        self.soak()
        self.startup()

    def module_row(
        self, workload: str, found: Dict[str, Dict[str, float]], mokku: Server, module: Server
    ) -> None:
        """``python -m mokku`` (one process, its own server) against gunicorn's two workers."""
        self.row(
            f"{workload} under python -m mokku (one process, 8 threads)",
            f"{found['module']['cpu_us']:,.0f} µs CPU per request, {found['module']['rps']:,.0f} req/s; "
            f"gunicorn {found['mokku']['cpu_us']:,.0f} µs, {found['mokku']['rps']:,.0f} req/s",
            f"{self.cpu_ratio(mokku, module, f'{workload} python -m mokku vs gunicorn')} x gunicorn",
            "",
        )

    def replay(self, mokku: Server, echo: Server) -> None:
        """W8: W1's request recorded once (mokku as the upstream), then replayed offline at full speed."""
        cassettes = self.directory / "cassettes"
        upstream = f"http://127.0.0.1:{mokku.port}"
        recorder = Server(
            [*GUNICORN, "mokku.wsgi:app"],
            {"MOKKU_MODE": "record", "MOKKU_UPSTREAM": upstream, "MOKKU_CASSETTES": str(cassettes)},
        )
        try:
            assert call(recorder.port, PATHS["chat"], CHAT)[0] == 200
        finally:
            recorder.stop()
        replayer = Server(
            [*GUNICORN, "mokku.wsgi:app"],
            {"MOKKU_MODE": "replay", "MOKKU_CASSETTES": str(cassettes), "MOKKU_REPLAY_SPEED": "0"},
        )
        try:
            w8 = self.load({"replay": replayer, "mokku": mokku, "echo": echo}, PATHS["chat"], "chat")
        finally:
            replayer.stop()
        self.row(
            "W8 replayed chat (recorded once), c=64",
            f"{w8['replay']['rps']:,.0f} req/s (p50 {w8['replay']['p50']:.1f} ms); mokku's echo "
            f"{w8['mokku']['rps']:,.0f}; echo baseline {w8['echo']['rps']:,.0f}",
            f"{w8['replay']['rps'] / w8['echo']['rps']:.2f} x echo",
            "≥ 0.8 x echo",
        )

    def soak(self) -> None:
        """Moderate mixed load for 5 minutes (20 s with --quick), RSS sampled every 10 s."""
        seconds = 20 if self.quick else 300
        server = Server([*GUNICORN, "mokku.wsgi:app"])
        samples: List[Tuple[float, float]] = []
        try:
            load = subprocess.Popen(
                [
                    "wrk",
                    "-t1",
                    "-c8",
                    f"-d{seconds}s",
                    "-s",
                    str(SOAK_SCRIPT),
                    f"http://127.0.0.1:{server.port}",
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            started = time.monotonic()
            while load.poll() is None:
                samples.append((time.monotonic() - started, server.rss_mb()))
                time.sleep(min(10, seconds / 10))
            output = load.communicate()[0]
        finally:
            server.stop()
        total = re.search(r"(\d+) requests in", output)
        failed = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
        warm = next((rss for at, rss in samples if at >= seconds / 5), samples[0][1])
        self.row(
            f"soak, {seconds // 60 or seconds} {'min' if seconds >= 60 else 's'}, mixed load (c=8)",
            f"{int(total.group(1)) if total else 0:,} requests, {failed.group(1) if failed else 0} failed; "
            f"RSS {samples[0][1]:.0f} MB at start, {warm:.0f} MB after warm-up, {samples[-1][1]:.0f} MB at the end "
            f"(samples: {', '.join(f'{rss:.0f}' for _, rss in samples)})",
            f"{samples[-1][1] - warm:+.1f} MB after warm-up",
            "flat after warm-up",
        )

    def start_peers(self) -> Dict[str, Server]:
        """Each peer installed (first time only) and started; one that cannot is reported and left out."""
        started: Dict[str, Server] = {}
        if not self.with_peers:
            return started
        for peer in peers.PEERS:
            try:
                self.versions[peer.name] = peers.install(peer)
                started[peer.name] = Server(peers.command(peer), peer.env, peer.ready)
                self.peer_of[peer.name] = peer
                if peer.workers_args:  # also with as many processes as mokku
                    twin = peer.name + peers.TWIN.format(peers.WORKERS)
                    started[twin] = Server(peers.command(peer) + peer.workers_args, peer.env, peer.ready)
                    self.peer_of[twin] = peer
            except (subprocess.CalledProcessError, RuntimeError) as exc:
                self.peer_results[peer.name] = {"all": f"not measured: {exc}"}
        return started

    def compare(
        self, workload: str, servers: Dict[str, Server], others: Dict[str, Server], script: str
    ) -> Dict[str, Dict[str, float]]:
        """mokku, its baselines and the peers that can do ``workload``, side by side."""
        able = {}
        for name, server in others.items():
            skip = self.peer_of[name].skips.get(workload)
            if skip:
                self.peer_results.setdefault(name, {})[workload] = f"skipped: {skip}"
            else:
                able[name] = server
        result = self.load({**servers, **able}, PATHS[script], script)
        unit = "streams/s" if workload == "W2" else "req/s"
        mokku = result["mokku"]
        self.peer_results.setdefault("mokku", {})[workload] = (
            f"{mokku['cpu_us']:,.0f} µs CPU per request; {mokku['rps']:,.0f} {unit}"
        )
        target = PEER_TARGET if workload in ("W1", "W2") else None
        for name in able:
            figure = result[name]
            if not figure["rps"]:
                self.peer_results.setdefault(name, {})[workload] = "no successful requests"
                continue
            ratio = self.cpu_ratio(able[name], servers["mokku"], f"{workload} {name} vs mokku", target)
            self.peer_results.setdefault(name, {})[workload] = (
                f"{figure['cpu_us']:,.0f} µs CPU per request, {ratio.replace(' by CPU', '')} x mokku's; "
                f"{figure['rps']:,.0f} {unit}"
            )
        return result

    def many_streams(self) -> None:
        """W5 under the "many streams" profile; then faster tokens until p99 lateness passes 50 ms."""
        server = Server([*STREAMS_PROFILE, "mokku.wsgi:app"], {"MOKKU_THREADS": "640"})
        tokens = 50 if self.quick else 300  # 5 s or 30 s at 10 tokens/s
        try:
            for count in (250, 500, 1000):
                outcome, rss = self.hold(server, count, tokens, exact=True)
                self.lateness[f"mokku, {count} streams"] = list(outcome.lateness_percentiles_ms)
                self.row(
                    f"W5 {count} streams x {tokens} tokens at 10/s",
                    f"{outcome.completed} of {count} complete; chunk lateness p50 {outcome.lateness_p50_ms:.1f} ms, "
                    f"p99 {outcome.lateness_p99_ms:.1f} ms, max {outcome.lateness_max_ms:.0f} ms; "
                    f"RSS {rss:.0f} MB (server + client)",
                    "",
                    "all complete, p99 < 100 ms, RSS < 600 MB" if count == 1000 else "",
                )
            self.peer_results.setdefault("mokku", {})["W5"] = self.w5_figure(outcome, rss)
            self.row("W5 capacity (1,000 streams, faster tokens)", self.capacity(server, outcome), "", "")
        finally:
            server.stop()
        for peer in peers.PEERS:
            if not self.with_peers or peer.name not in self.versions:
                continue
            if "W5" in peer.skips:
                self.peer_results.setdefault(peer.name, {})["W5"] = f"skipped: {peer.skips['W5']}"
                continue
            slow = Server(peers.command(peer, slow=True), peer.env, peer.ready)
            try:
                outcome, rss = self.hold(slow, 1000, tokens, exact=False)
            finally:
                slow.stop()
            self.peer_results.setdefault(peer.name, {})["W5"] = self.w5_figure(outcome, rss)
            self.lateness[f"{peer.name}, 1000 streams"] = list(outcome.lateness_percentiles_ms)

    def hold(self, server: Server, count: int, tokens: int, exact: bool) -> Tuple[streams.Outcome, float]:
        """``count`` slow streams, ``repeats`` times: the run with the median p99 lateness, median RSS."""
        outcomes: List[streams.Outcome] = []
        rss: List[float] = []
        for _ in range(self.repeats):
            # Memory sampled halfway through, when every stream is open.
            sampler = threading.Timer(2 + tokens * 0.05, self.sample_rss, (server, rss))
            sampler.start()
            outcomes.append(streams.run(server.port, count, tokens, 100, exact=exact))
            sampler.join()
        return sorted(outcomes, key=lambda o: o.lateness_p99_ms)[len(outcomes) // 2], statistics.median(rss)

    @staticmethod
    def w5_figure(outcome: streams.Outcome, rss: float) -> str:
        return (
            f"{outcome.completed} of {outcome.streams} complete, p99 lateness {outcome.lateness_p99_ms:.0f} ms, "
            f"RSS {rss:.0f} MB"
        )

    @staticmethod
    def sample_rss(server: Server, into: List[float]) -> None:
        into.append(server.rss_mb() + own_rss_mb())

    def capacity(self, server: Server, at_ten_per_second: streams.Outcome) -> str:
        """The aggregate chunks/s at which p99 lateness passes 50 ms: 1,000 streams, 10 s each,
        from the 10 tokens/s run upwards."""
        seen = [(10_000.0, at_ten_per_second.lateness_p99_ms)]
        for token_ms in (80, 66, 57, 50, 44, 40, 36, 33):
            outcome = streams.run(server.port, 1000, int(10_000 / token_ms), token_ms)
            seen.append((1000 * 1000 / token_ms, outcome.lateness_p99_ms))
            if outcome.lateness_p99_ms > 50:
                break
        points = "; ".join(f"{rate:,.0f}/s: p99 {p99:.0f} ms" for rate, p99 in seen)
        if seen[-1][1] <= 50:
            return f"over {seen[-1][0]:,.0f} chunks/s ({points})"
        if len(seen) == 1:
            return f"under {seen[0][0]:,.0f} chunks/s ({points})"
        (low, low_p99), (high, high_p99) = seen[-2], seen[-1]
        estimate = low + (high - low) * (50 - low_p99) / (high_p99 - low_p99)
        return f"about {estimate:,.0f} chunks/s ({points})"

    def tracing_and_journal(self) -> None:
        receiver = subprocess.Popen(
            [sys.executable, "-c", RAW_RECEIVER], stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        try:
            port = int(receiver.stdout.readline())  # type: ignore[union-attr]
            off = Server([*GUNICORN, "mokku.wsgi:app"], {"MOKKU_JOURNAL": "0"})
            traced = Server(
                [*GUNICORN, "mokku.wsgi:app"],
                {"MOKKU_JOURNAL": "0", "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"},
            )
            sampled = Server(  # what a staging deployment would run: one trace in ten kept
                [*GUNICORN, "mokku.wsgi:app"],
                {
                    "MOKKU_JOURNAL": "0",
                    "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
                    "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                    "OTEL_TRACES_SAMPLER_ARG": "0.1",
                },
            )
            journaled = Server([*GUNICORN, "mokku.wsgi:app"])  # the journal is on by default
            servers = {"off": off, "traced": traced, "sampled": sampled, "journaled": journaled}
            if importlib.util.find_spec("prometheus_client") is not None:  # the extra mokku[metrics]
                servers["metrics"] = Server(
                    [*GUNICORN, "mokku.wsgi:app"], {"MOKKU_JOURNAL": "0", "MOKKU_METRICS": "1"}
                )
            redis = start_redis()
            if redis is not None:
                url = f"redis://127.0.0.1:{redis[1]}/0"
                servers["on_redis"] = Server([*GUNICORN, "mokku.wsgi:app"], {"MOKKU_STATE": url})
            try:
                result = self.load(servers, "/v1/chat/completions", "chat")
            finally:
                for server in servers.values():
                    server.stop()
                if redis is not None:
                    redis[0].kill()
        finally:
            receiver.kill()
        base = result["off"]["rps"]
        self.row(
            "W6 tracing on (OTLP gRPC) vs off, W1",
            f"{result['traced']['rps']:,.0f} vs {base:,.0f} req/s",
            f"{self.cpu_ratio(off, servers['traced'], 'W6 tracing on vs off', 0.65)}; "
            f"{result['traced']['rps'] / base:.2f} by req/s",
            "≥ 0.65",
        )
        self.row(
            "W6 tracing, parent-based 10% sampler, vs off, W1",
            f"{result['sampled']['rps']:,.0f} vs {base:,.0f} req/s",
            f"{self.cpu_ratio(off, servers['sampled'], 'W6 tracing 10% sampled vs off')}; "
            f"{result['sampled']['rps'] / base:.2f} by req/s",
            "",
        )
        self.row(
            "W7 journal on vs off, W1",
            f"{result['journaled']['rps']:,.0f} vs {base:,.0f} req/s",
            f"{self.cpu_ratio(off, servers['journaled'], 'W7 journal on vs off', 0.9)}; "
            f"{result['journaled']['rps'] / base:.2f} by req/s",
            "≥ 0.9",
        )
        if "metrics" in result:
            self.row(
                "W9 metrics on (MOKKU_METRICS=1) vs off, W1",
                f"{result['metrics']['rps']:,.0f} vs {base:,.0f} req/s",
                f"{self.cpu_ratio(off, servers['metrics'], 'W9 metrics on vs off', 0.9)}; "
                f"{result['metrics']['rps'] / base:.2f} by req/s",
                "≥ 0.9",
            )
        if "on_redis" in result:
            self.row(
                "W7 journal on Redis (same machine) vs off, W1",
                f"{result['on_redis']['rps']:,.0f} vs {base:,.0f} req/s",
                f"{self.cpu_ratio(off, servers['on_redis'], 'W7 journal on Redis vs off', 0.8)}; "
                f"{result['on_redis']['rps'] / base:.2f} by req/s",
                "≥ 0.8",
            )

    def startup(self) -> None:
        for label, command in (
            ("python -m mokku", [sys.executable, "-m", "mokku"]),
            ("gunicorn (shipped config)", [*GUNICORN, "mokku.wsgi:app"]),
        ):
            times = []
            for _ in range(self.repeats):
                server = Server(command)
                times.append(server.startup)
                server.stop()
            self.row(f"startup to first 200, {label}", f"{statistics.median(times):.2f} s", "", "< 1 s")

    def table(self) -> str:
        lines = [describe_machine(self.versions), ""]
        lines += ["| workload | measured | ratio | target |", "|---|---|---|---|"]
        lines += [f"| {w} | {m} | {r} | {t} |" for w, m, r, t in self.rows]
        if self.peer_results:
            names = ["mokku", *(name for name in self.peer_results if name != "mokku")]
            lines += ["", "| workload | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
            for workload in ("W1", "W2", "W3", "W4", "W5"):
                cells = [
                    self.peer_results[name].get(workload) or self.peer_results[name].get("all", "")
                    for name in names
                ]
                lines.append(f"| {workload} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


def start_redis() -> Optional[Tuple[subprocess.Popen, int]]:
    """A throwaway redis-server for the Redis rows (None, and those rows left out, without one)."""
    binary = shutil.which("redis-server") or shutil.which("valkey-server")
    if binary is None:
        return None
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    return process, port


def describe_machine(versions: Dict[str, str]) -> str:
    """Date, machine and the versions of everything measured: the figures mean little without them."""
    from importlib.metadata import version

    wrk_line = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.splitlines()
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    parts = [
        time.strftime("%Y-%m-%d"),
        f"{os.cpu_count()} cores ({cpu.group(1) if cpu else platform.machine()})",
        f"{platform.python_implementation()} {platform.python_version()}",
        f"mokku {version('mokku')}",
        f"gunicorn {version('gunicorn')}",
        wrk_line[0].split(" [")[0] if wrk_line else "wrk",
        *(f"{name} {found}" for name, found in versions.items()),
    ]
    return "Run on " + ", ".join(parts) + "."


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one short run per workload (a smoke test)")
    parser.add_argument("--no-peers", action="store_true", help="leave out the PyPI peers (no installs)")
    parser.add_argument(
        "--chart",
        type=Path,
        help=f"where the chart goes (SVG or PNG; default {CHART.relative_to(ROOT)}, or a temporary file with "
        "--quick); its figures go beside it as JSON",
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed; on Debian or Ubuntu: apt-get install wrk", file=sys.stderr)
        return 2
    bench = Bench(args.quick, with_peers=not args.no_peers)
    bench.run()
    print(bench.table())
    path = args.chart or (bench.directory / "chart.svg" if args.quick else CHART)
    chart.save(path.with_suffix(".json"), bench.ratios, bench.lateness)
    if chart.write(path, bench.ratios, bench.lateness) is None:
        print("bench: no chart (matplotlib is missing: pip install '.[bench]')", file=sys.stderr)
    else:
        print(f"bench: chart written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
