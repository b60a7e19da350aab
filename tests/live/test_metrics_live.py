"""Prometheus metrics under real servers: summed over gunicorn's workers, gauges that follow streams."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, Tuple

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ..otlp import GrpcReceiver
from ..servers import LiveServer, request_json

HI = [{"role": "user", "content": "count me in please"}]
Samples = Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]


def scrape(server: LiveServer) -> Samples:
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= set(found))


def wait_for(server: LiveServer, name: str, wanted: float, **labels: str) -> Samples:
    deadline = time.monotonic() + 20
    while True:
        samples = scrape(server)
        if total(samples, name, **labels) == wanted or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def test_two_gunicorn_workers_are_summed_exactly(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    env = {"MOKKU_METRICS": "vllm", "MOKKU_THREADS": "16", "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    server = LiveServer("gunicorn", env=env, workers=2)
    try:

        def call(index: int) -> int:
            with openai.OpenAI(base_url=server.url + "/v1", api_key="sk-metrics", max_retries=0) as client:
                if index % 10 == 0:
                    chunks = client.chat.completions.create(model="gpt-4o", messages=HI, stream=True)
                    return sum(1 for chunk in chunks if chunk.choices and chunk.choices[0].delta.content)
                try:
                    model = "credit-error" if index % 10 == 1 else "gpt-4o"
                    answer = client.chat.completions.create(model=model, messages=HI)
                    return answer.usage.completion_tokens if answer.usage else -1
                except openai.APIStatusError as exc:
                    assert exc.status_code == 402
                    return 0

        with ThreadPoolExecutor(max_workers=40) as pool:
            tokens = list(pool.map(call, range(200)))
        # Every worker wrote its values (each has its own files), and every scrape sums them all,
        # whichever worker answers it.
        writers = {re.sub(r"\D", "", name) for name in os.listdir(directory) if name.startswith("counter_")}
        assert len(writers) == 2
        # A file a worker is creating is empty for an instant (opened, not yet sized): the scrape
        # that meets it answers all the same.
        (directory / "histogram_999999.db").touch()
        for _ in range(4):
            samples = scrape(server)
            chat = {"route": "/v1/chat/completions", "dialect": "openai"}
            assert total(samples, "mokku_requests_total", **chat, model="gpt-4o", status="200") == 180
            assert total(samples, "mokku_requests_total", **chat, model="credit-error", status="402") == 20
            assert total(samples, "mokku_completion_tokens_total", model="gpt-4o") == sum(tokens)
            assert total(samples, "mokku_time_to_first_token_seconds_count", model="gpt-4o") == 20
            assert total(samples, "vllm:time_to_first_token_seconds_count", model_name="gpt-4o") == 180
            assert total(samples, "mokku_request_duration_seconds_count") == 200
            assert (
                total(samples, "vllm:request_success_total", model_name="gpt-4o", finished_reason="stop")
                == 180
            )
            assert total(samples, "vllm:generation_tokens_total", model_name="gpt-4o") == sum(tokens)
            assert total(samples, "vllm:num_requests_running") == 0
            assert total(samples, "mokku_journal_entries") == 200
    finally:
        server.close()


@pytest.mark.parametrize("kind", ["gunicorn", "module"])
def test_a_chosen_directory_forgets_an_earlier_run(kind: str, tmp_path: Path) -> None:
    """A run's counts start from nothing, not from what the run before left in the directory."""
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "notes.txt").write_text("not ours")
    env = {"MOKKU_METRICS": "1", "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    for calls in (3, 2):
        server = LiveServer(kind, env=env)
        try:
            for _ in range(calls):
                request_json("POST", server.url + "/v1/chat/completions", {"model": "gpt-4o", "messages": HI})
            assert total(scrape(server), "mokku_requests_total", model="gpt-4o") == calls
        finally:
            server.close()
    assert (directory / "notes.txt").read_text() == "not ours"


@pytest.mark.parametrize("kind", ["gunicorn", "module"])
def test_gauges_follow_a_stream_and_its_worker(kind: str) -> None:
    server = LiveServer(kind, env={"MOKKU_METRICS": "vllm", "MOKKU_THREADS": "8"})
    try:
        done = threading.Event()

        def slow_stream() -> None:
            with openai.OpenAI(base_url=server.url + "/v1", api_key="sk-metrics", max_retries=0) as client:
                chunks = client.chat.completions.create(
                    model="gpt-4o", messages=HI, stream=True, extra_headers={"X-Mokku-Token-Ms": "300"}
                )
                try:
                    for _ in chunks:
                        pass
                except openai.APIConnectionError:
                    return  # its worker was killed
            done.set()

        streaming = threading.Thread(target=slow_stream)
        streaming.start()
        samples = wait_for(server, "mokku_active_streams", 1)
        assert total(samples, "mokku_active_streams") == 1
        assert total(samples, "vllm:num_requests_running", model_name="mokku") == 1
        streaming.join(30)
        assert done.is_set()
        samples = wait_for(server, "mokku_active_streams", 0)
        assert total(samples, "mokku_active_streams") == 0
        assert total(samples, "vllm:num_requests_running") == 0
        gaps = total(samples, "mokku_inter_token_latency_seconds_count", model="gpt-4o")
        assert (
            gaps >= 2
            and total(samples, "mokku_inter_token_latency_seconds_sum", model="gpt-4o") >= 0.3 * gaps * 0.5
        )
        if kind == "module":
            return
        # A worker killed mid-stream stops counting: the arbiter marks it gone.
        killed = threading.Thread(target=slow_stream)
        killed.start()
        wait_for(server, "mokku_active_streams", 1)
        pids = re.findall(r"Booting worker with pid: (\d+)", server.output())
        os.kill(int(pids[-1]), signal.SIGKILL)
        killed.join(30)
        samples = wait_for(server, "mokku_active_streams", 0)
        assert total(samples, "mokku_active_streams") == 0
        assert total(samples, "vllm:num_requests_running") == 0
    finally:
        server.close()


def test_the_private_directory_is_made_and_removed_and_off_means_no_route(tmp_path: Path) -> None:
    server = LiveServer("gunicorn", env={"MOKKU_METRICS": "1", "TMPDIR": str(tmp_path)}, workers=2)
    try:
        request_json("POST", server.url + "/v1/chat/completions", {"model": "gpt-4o", "messages": HI})
        assert total(scrape(server), "mokku_requests_total") == 1
        (made,) = tmp_path.glob("mokku-metrics-*")
        assert made.stat().st_mode & 0o777 == 0o700
    finally:
        assert server.stop() == 0
        server.close()
    assert not made.exists()
    plain = LiveServer("gunicorn")
    try:
        status, _, body = request_json("GET", plain.url + "/metrics")
        assert status == 404 and body["error"]["message"].startswith("Invalid URL")
    finally:
        plain.close()


@pytest.mark.parametrize("kind", ["gunicorn", "module"])
def test_the_same_figures_go_out_over_otlp_as_gen_ai_metrics(kind: str) -> None:
    receiver = GrpcReceiver()
    env = {
        "MOKKU_METRICS": "1",
        "MOKKU_THREADS": "16",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_METRIC_EXPORT_INTERVAL": "200",
    }
    server = LiveServer(kind, env=env, workers=2 if kind == "gunicorn" else 1)
    try:

        def call(index: int) -> int:
            with openai.OpenAI(base_url=server.url + "/v1", api_key="sk-otlp", max_retries=0) as client:
                if index % 5 == 0:
                    chunks = client.chat.completions.create(
                        model="gpt-4o", messages=HI, stream=True, stream_options={"include_usage": True}
                    )
                    return sum(chunk.usage.completion_tokens for chunk in chunks if chunk.usage)
                if index % 9 == 1:
                    with pytest.raises(openai.APIStatusError):
                        client.chat.completions.create(model="credit-error", messages=HI)
                    return 0
                answer = client.chat.completions.create(model="gpt-4o", messages=HI)
                return answer.usage.completion_tokens if answer.usage else -1

        with ThreadPoolExecutor(max_workers=10) as pool:
            tokens = list(pool.map(call, range(50)))
        streams, failed = 10, sum(1 for index in range(50) if index % 5 and index % 9 == 1)
        answered = 50 - failed
        deadline = time.monotonic() + 20
        while receiver.count("gen_ai.server.request.duration") < 50 and time.monotonic() < deadline:
            time.sleep(0.1)
        chat = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai"}
        assert receiver.count("gen_ai.server.request.duration", **chat) == 50
        assert receiver.count("gen_ai.server.request.duration", **chat, **{"error.type": "402"}) == failed
        ttft = receiver.points(
            "gen_ai.server.time_to_first_token", **chat, **{"gen_ai.request.model": "gpt-4o"}
        )
        assert sum(point["count"] for point in ttft) == streams
        assert ttft[0]["unit"] == "s" and ttft[0]["bounds"][:3] == [0.001, 0.005, 0.01]
        assert receiver.count("gen_ai.server.time_per_output_token", **chat) == streams
        output = receiver.points("gen_ai.client.token.usage", **chat, **{"gen_ai.token.type": "output"})
        assert sum(point["count"] for point in output) == answered
        assert sum(point["sum"] for point in output) == sum(tokens)
        assert receiver.count("gen_ai.client.token.usage", **{"gen_ai.token.type": "input"}) == answered
        instances = {
            point["resource"]["service.instance.id"]
            for point in receiver.points("gen_ai.server.request.duration")
        }
        pids = {
            point["resource"]["process.pid"] for point in receiver.points("gen_ai.server.request.duration")
        }
        assert len(instances) == len(pids) >= 1
    finally:
        server.close()
        receiver.stop()
