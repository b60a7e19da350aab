"""Prometheus metrics at /metrics, in-process: exact counts after a known mix of traffic."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import webtest
from prometheus_client.parser import text_string_to_metric_families

from mokku import config
from mokku.server.app import App

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "count me in please"}]
Samples = Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]


def build(tmp_path: Path, **env: str) -> webtest.TestApp:
    settings = config.load({"MOKKU_STATE": str(tmp_path / "state.sqlite3"), "MOKKU_METRICS": "1", **env})
    return webtest.TestApp(App(settings), extra_environ={"wsgi.multithread": True})


def scrape(app: webtest.TestApp) -> Samples:
    response = app.get("/metrics")
    assert response.content_type == "text/plain"
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= set(found))


def test_off_by_default(tmp_path: Path) -> None:
    app = webtest.TestApp(App(config.load({"MOKKU_STATE": str(tmp_path / "s")})))
    assert app.get("/metrics", status=404).json["error"]["message"].startswith("Invalid URL")


@pytest.mark.parametrize("raw", ["maybe", "2", "vllm2"])
def test_a_bad_setting_is_refused(raw: str) -> None:
    with pytest.raises(config.ConfigError, match="MOKKU_METRICS"):
        config.load({"MOKKU_METRICS": raw})


def test_a_known_mix_of_traffic_is_counted_exactly(tmp_path: Path) -> None:
    app = build(tmp_path, MOKKU_TOKEN_MS="1")
    usages: List[Dict[str, int]] = []
    for _ in range(3):
        usages.append(app.post_json(CHAT, {"model": "gpt-4o", "messages": HI}).json["usage"])
    streamed = app.post_json(CHAT, {"model": "gpt-4o", "messages": HI, "stream": True})
    assert streamed.text.endswith("data: [DONE]\n\n")
    for _ in range(2):
        app.post_json(CHAT, {"model": "credit-error", "messages": HI}, status=402)
    app.post_json(CHAT, {"model": "gpt-4o"}, status=400)
    app.post_json("/v1/embeddings", {"model": "text-embedding-3-small", "input": "four tokens right here"})
    app.get("/v1/models")
    app.get("/health")  # not the API's: not counted
    samples = scrape(app)

    chat = {"route": CHAT, "dialect": "openai"}
    assert value(samples, "mokku_requests_total", **chat, model="gpt-4o", status="200", fault="none") == 4
    assert (
        value(samples, "mokku_requests_total", **chat, model="credit-error", status="402", fault="credit")
        == 2
    )
    assert value(samples, "mokku_requests_total", **chat, model="gpt-4o", status="400", fault="none") == 1
    assert total(samples, "mokku_requests_total", route="/v1/models", status="200") == 1
    assert total(samples, "mokku_requests_total") == 9
    # Every answer's time; the first token only of the stream.
    assert total(samples, "mokku_request_duration_seconds_count") == 9
    assert value(samples, "mokku_time_to_first_token_seconds_count", **chat, model="gpt-4o") == 1
    assert total(samples, "mokku_time_to_first_token_seconds_count") == 1
    # Tokens as the answers reported them; the stream's as many as a non-streamed one's.
    prompt = sum(u["prompt_tokens"] for u in usages) * 4 // 3
    completion = sum(u["completion_tokens"] for u in usages) * 4 // 3
    assert value(samples, "mokku_prompt_tokens_total", **chat, model="gpt-4o") == prompt
    assert value(samples, "mokku_completion_tokens_total", **chat, model="gpt-4o") == completion
    # One gap between each two tokens of the stream, and none for the answers not streamed.
    assert (
        value(samples, "mokku_inter_token_latency_seconds_count", **chat, model="gpt-4o")
        == usages[0]["completion_tokens"] - 1
    )
    assert (
        value(samples, "mokku_inter_token_latency_seconds_sum", **chat, model="gpt-4o")
        >= 0.001 * (usages[0]["completion_tokens"] - 1) * 0.5
    )
    embedded = {"route": "/v1/embeddings", "dialect": "openai", "model": "text-embedding-3-small"}
    assert value(samples, "mokku_prompt_tokens_total", **embedded) > 0
    assert value(samples, "mokku_active_streams") == 0
    assert value(samples, "mokku_journal_entries") == 9
    # Buckets add up: the +Inf bucket holds every observation.
    assert value(samples, "mokku_request_duration_seconds_bucket", **chat, model="gpt-4o", le="+Inf") == 5


def test_scripted_replies_and_other_dialects_are_labelled(tmp_path: Path) -> None:
    app = build(tmp_path)
    app.post_json("/mokku/scenarios", {"match": {"model": "scripted"}, "reply": {"content": "as told"}})
    app.post_json(CHAT, {"model": "scripted", "messages": HI})
    app.post_json(CHAT, {"model": "scripted", "messages": HI})
    app.post_json(
        "/v1/messages",
        {"model": "claude-sonnet-4-5", "max_tokens": 20, "messages": HI},
        headers={"anthropic-version": "2023-06-01"},
    )
    app.post_json(
        "/v1beta/models/gemini-2.5-flash:generateContent", {"contents": [{"parts": [{"text": "hi"}]}]}
    )
    samples = scrape(app)
    assert value(samples, "mokku_scenario_hits_total", route=CHAT) == 2
    assert (
        total(samples, "mokku_requests_total", dialect="anthropic", model="claude-sonnet-4-5", status="200")
        == 1
    )
    assert (
        total(samples, "mokku_requests_total", dialect="gemini", model="gemini-2.5-flash", status="200") == 1
    )
    assert total(samples, "mokku_completion_tokens_total", dialect="anthropic") > 0
    assert total(samples, "mokku_completion_tokens_total", dialect="gemini") > 0


def test_model_labels_are_bounded(tmp_path: Path) -> None:
    from mokku.metrics import LABEL_CHARS, MAX_LABELS

    app = build(tmp_path, MOKKU_JOURNAL="0")
    app.post_json(CHAT, {"model": "m" * 200, "messages": HI})  # cut to LABEL_CHARS
    for index in range(MAX_LABELS + 20):  # the first MAX_LABELS - 1 get their own label
        app.post_json(CHAT, {"model": f"model-{index}", "messages": HI})
    samples = scrape(app)
    models = {dict(labels)["model"] for name, labels in samples if name == "mokku_requests_total"}
    assert len(models) == MAX_LABELS + 1 and "other" in models and "m" * LABEL_CHARS in models
    other = {"route": CHAT, "dialect": "openai", "model": "other", "status": "200", "fault": "none"}
    assert value(samples, "mokku_requests_total", **other) == 21


def test_a_model_id_that_is_not_valid_utf8_leaves_the_scrape_readable(tmp_path: Path) -> None:
    app = build(tmp_path)
    app.post_json(CHAT, {"model": "\ud800bad", "messages": HI})  # a lone surrogate, as JSON allows
    models = {dict(labels)["model"] for name, labels in scrape(app) if name == "mokku_requests_total"}
    assert models == {"?bad"}
    assert app.get("/metrics").status_int == 200  # and every later scrape too


def test_paths_only_an_upstream_serves_are_bounded_labels(tmp_path: Path) -> None:
    """In the proxy modes a path no route serves is its own label (a vLLM's /v1/tokenize): cut, and
    past the bound counted as other."""
    from mokku.metrics import LABEL_CHARS, MAX_LABELS

    app = build(tmp_path, MOKKU_MODE="replay", MOKKU_CASSETTES=str(tmp_path / "cassettes"))
    for index in range(MAX_LABELS + 20):
        app.get(f"/v1/extra-{index}-" + "r" * 300, status=404)  # not recorded: a miss
    routes = {dict(labels)["route"] for name, labels in scrape(app) if name == "mokku_requests_total"}
    assert len(routes) == MAX_LABELS + 1 and "other" in routes
    assert max(len(route) for route in routes) == LABEL_CHARS


def test_openmetrics_when_asked(tmp_path: Path) -> None:
    app = build(tmp_path)
    app.post_json(CHAT, {"model": "gpt-4o", "messages": HI})
    response = app.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    assert "mokku_requests_total{" in response.text


@pytest.mark.parametrize(
    "accept",
    [
        # Prometheus 2's scrape header, then Prometheus 3's.
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
        "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
        "application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
        "text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
    ],
)
def test_vllm_names_parse_as_openmetrics(tmp_path: Path, accept: str) -> None:
    from prometheus_client.openmetrics import parser

    app = build(tmp_path, MOKKU_METRICS="vllm", MOKKU_METRICS_MODEL="served-model")
    app.post_json(CHAT, {"model": "gpt-4o", "messages": HI})
    response = app.get("/metrics", headers={"Accept": accept})
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    families = {family.name: family for family in parser.text_string_to_metric_families(response.text)}
    samples = families["vllm:e2e_request_latency_seconds"].samples
    assert samples and all(sample.name.startswith("vllm:e2e_request_latency_seconds") for sample in samples)
    assert not [name for name in families if name.startswith("vllm_")]  # no name rewritten


def test_vllm_names_and_labels(tmp_path: Path) -> None:
    app = build(tmp_path, MOKKU_METRICS="vllm", MOKKU_METRICS_MODEL="served-model")
    usage = app.post_json(CHAT, {"model": "gpt-4o", "messages": HI}).json["usage"]
    cut = app.post_json(CHAT, {"model": "gpt-4o", "messages": HI, "max_tokens": 1}).json
    assert cut["choices"][0]["finish_reason"] == "length"
    app.post_json(CHAT, {"model": "gpt-4o", "messages": HI, "stream": True})
    samples = scrape(app)
    served = {"model_name": "served-model", "engine": "0"}
    for gauge in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"):
        assert (gauge, tuple(sorted(served.items()))) in samples and value(samples, gauge, **served) == 0
    model = {"model_name": "gpt-4o", "engine": "0"}
    assert value(samples, "vllm:request_success_total", **model, finished_reason="stop") == 2
    assert value(samples, "vllm:request_success_total", **model, finished_reason="length") == 1
    assert value(samples, "vllm:prompt_tokens_total", **model) == 3 * usage["prompt_tokens"]
    assert value(samples, "vllm:generation_tokens_total", **model) == 2 * usage["completion_tokens"] + 1
    for histogram in (
        "vllm:time_to_first_token_seconds",
        "vllm:e2e_request_latency_seconds",
        "vllm:request_queue_time_seconds",
        "vllm:request_prompt_tokens",
        "vllm:request_generation_tokens",
    ):
        assert value(samples, histogram + "_count", **model) == 3, histogram
    assert value(samples, "vllm:inter_token_latency_seconds_count", **model) == usage["completion_tokens"] - 1
    # vLLM's own buckets, so its dashboards read these series.
    assert (
        "vllm:e2e_request_latency_seconds_bucket",
        tuple(sorted({**model, "le": "7680.0"}.items())),
    ) in samples


def test_the_scrape_is_neither_counted_nor_journaled(tmp_path: Path) -> None:
    app = build(tmp_path)
    scrape(app)
    samples = scrape(app)
    assert total(samples, "mokku_requests_total") == 0
    assert app.get("/mokku/requests").json["data"] == []


def test_label_sets_are_bounded_whatever_the_mix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mokku import metrics

    monkeypatch.setattr(metrics, "MAX_SERIES", 5)
    app = build(tmp_path, MOKKU_JOURNAL="0")
    for index in range(12):  # each a new route, model and status mix
        app.post_json(CHAT, {"model": f"m{index}", "messages": HI})
        app.post_json(CHAT, {"model": f"m{index}"}, status=400)
    samples = scrape(app)
    requests = {labels for name, labels in samples if name == "mokku_requests_total"}
    durations = {labels for name, labels in samples if name == "mokku_request_duration_seconds_count"}
    assert len(requests) == 6 and len(durations) == 6  # five, then the one of all "other"
    overflow = {"route": "other", "dialect": "other", "model": "other", "status": "other", "fault": "other"}
    assert value(samples, "mokku_requests_total", **overflow) == 24 - 5
    assert total(samples, "mokku_requests_total") == 24
