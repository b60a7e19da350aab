"""The simulated prefix cache in-process: cached tokens on repeated prefixes in every dialect, the
prefill they save, and the KV-cache usage the running requests hold."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, List

import webtest
from prometheus_client.parser import text_string_to_metric_families

from mokku import config
from mokku.api.decide import Message, prompt_token_list
from mokku.server.app import App
from mokku.simulation.prefix import BLOCK_TOKENS

from . import wsgi

CHAT = "/v1/chat/completions"
SYSTEM = "You are a careful assistant who answers questions about the weather in great detail. " * 4
ANTHROPIC = {"anthropic-version": "2023-06-01"}


def build(tmp_path: Path, **env: str) -> webtest.TestApp:
    settings = config.load(
        {
            "MOKKU_STATE": str(tmp_path / "state.sqlite3"),
            "MOKKU_PREFIX_CACHE": "4096",
            "MOKKU_JOURNAL": "0",
            **env,
        }
    )
    return webtest.TestApp(App(settings), extra_environ={"wsgi.multithread": True})


def messages(*questions: str) -> List[Dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}] + [{"role": "user", "content": q} for q in questions]


def whole_blocks(conversation: List[Message]) -> int:
    return len(prompt_token_list(conversation)) // BLOCK_TOKENS * BLOCK_TOKENS


def cached(answer: Dict[str, Any]) -> int:
    return answer["usage"]["prompt_tokens_details"]["cached_tokens"]


def test_off_by_default_and_a_first_prompt_has_nothing_cached(tmp_path: Path) -> None:
    plain = webtest.TestApp(App(config.load({"MOKKU_STATE": str(tmp_path / "s")})))
    for _ in range(2):
        assert cached(plain.post_json(CHAT, {"model": "gpt-4o", "messages": messages("hi")}).json) == 0
    app = build(tmp_path)
    assert cached(app.post_json(CHAT, {"model": "gpt-4o", "messages": messages("hi")}).json) == 0


def test_a_repeated_prefix_is_cached_by_whole_blocks(tmp_path: Path) -> None:
    app = build(tmp_path)
    first = app.post_json(CHAT, {"model": "gpt-4o", "messages": messages("Will it rain?")}).json
    again = app.post_json(CHAT, {"model": "gpt-4o", "messages": messages("Will it rain?")}).json
    prefix = [Message("system", SYSTEM), Message("user", "Will it rain?")]
    assert cached(first) == 0
    assert cached(again) == whole_blocks(prefix) > 0
    assert cached(again) <= again["usage"]["prompt_tokens"]
    # A longer conversation with the same start: the shared blocks are cached, not the new ones.
    longer = app.post_json(
        CHAT, {"model": "gpt-4o", "messages": messages("Will it rain?", "And tomorrow, in the north?")}
    ).json
    assert whole_blocks(prefix) - BLOCK_TOKENS <= cached(longer) <= whole_blocks(prefix)
    # Another model keeps its own cache; a different start shares nothing.
    other = app.post_json(CHAT, {"model": "gpt-4o-mini", "messages": messages("Will it rain?")}).json
    assert cached(other) == 0
    changed = app.post_json(CHAT, {"model": "gpt-4o", "messages": [{"role": "user", "content": SYSTEM}]}).json
    assert cached(changed) == 0
    # Streamed, the usage chunk says the same.
    streamed = app.post_json(
        CHAT,
        {
            "model": "gpt-4o",
            "messages": messages("Will it rain?"),
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    usage = [
        json.loads(line[6:])["usage"] for line in streamed.text.splitlines() if line.startswith("data: {")
    ][-1]
    assert usage["prompt_tokens_details"]["cached_tokens"] == cached(again)


def test_a_long_prompt_sent_again_is_cached_whole_and_the_oldest_blocks_go_first(tmp_path: Path) -> None:
    """125 blocks in a 4,096-block cache: none of the prompt's blocks may push out another (a
    direct-mapped table lost most of them to its own later blocks). A full cache gives up the
    blocks used longest ago, as vLLM's LRU does."""
    long = [{"role": "system", "content": " ".join(f"w{index}" for index in range(2000))}]
    app = build(tmp_path)
    first = app.post_json(CHAT, {"model": "gpt-4o", "messages": long}).json
    again = app.post_json(CHAT, {"model": "gpt-4o", "messages": long}).json
    assert cached(first) == 0
    assert cached(again) == first["usage"]["prompt_tokens"] // BLOCK_TOKENS * BLOCK_TOKENS > 1900
    small = build(tmp_path, MOKKU_PREFIX_CACHE="64")  # 8 sets of 8 blocks
    twenty = [{"role": "user", "content": " ".join(f"v{index}" for index in range(311))}]
    small.post_json(CHAT, {"model": "gpt-4o", "messages": twenty})
    assert cached(small.post_json(CHAT, {"model": "gpt-4o", "messages": twenty}).json) >= 300
    for other in range(8):  # 8 other prompts of 20 blocks: 160 blocks through 64 places
        filler = [{"role": "user", "content": " ".join(f"x{other}-{index}" for index in range(311))}]
        small.post_json(CHAT, {"model": "gpt-4o", "messages": filler})
    assert cached(small.post_json(CHAT, {"model": "gpt-4o", "messages": twenty}).json) == 0


def test_every_dialect_reports_its_cached_tokens(tmp_path: Path) -> None:
    app = build(tmp_path)
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 20,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": "Rain?"}],
    }
    first = app.post_json("/v1/messages", body, headers=ANTHROPIC).json["usage"]
    second = app.post_json("/v1/messages", body, headers=ANTHROPIC).json["usage"]
    assert first["cache_read_input_tokens"] == 0
    assert second["cache_read_input_tokens"] > 0
    # Anthropic counts the tokens after the cached ones as input.
    assert second["input_tokens"] + second["cache_read_input_tokens"] == first["input_tokens"]
    responses = [
        app.post_json("/v1/responses", {"model": "gpt-4o", "instructions": SYSTEM, "input": "Rain?"}).json[
            "usage"
        ]
        for _ in range(2)
    ]
    assert [r["input_tokens_details"]["cached_tokens"] > 0 for r in responses] == [False, True]
    gemini = "/v1beta/models/gemini-2.5-flash:generateContent"
    contents = {
        "systemInstruction": {"parts": [{"text": SYSTEM}]},
        "contents": [{"parts": [{"text": "Rain?"}]}],
    }
    answers = [app.post_json(gemini, contents).json["usageMetadata"] for _ in range(2)]
    assert "cachedContentTokenCount" not in answers[0]
    assert 0 < answers[1]["cachedContentTokenCount"] <= answers[1]["promptTokenCount"]


def test_the_prefill_counts_only_the_tokens_not_cached(tmp_path: Path) -> None:
    app = build(tmp_path, MOKKU_PREFILL_MS="5")
    long = messages("Will it rain?")
    started = time.monotonic()
    first = app.post_json(CHAT, {"model": "gpt-4o", "messages": long}).json
    first_took = time.monotonic() - started
    assert first_took >= first["usage"]["prompt_tokens"] * 0.005
    started = time.monotonic()
    again = app.post_json(CHAT, {"model": "gpt-4o", "messages": long}).json
    uncached = again["usage"]["prompt_tokens"] - cached(again)
    assert time.monotonic() - started >= uncached * 0.005
    # The first waited for every token, the second for a tenth of them or fewer: far apart.
    assert uncached * 10 <= first["usage"]["prompt_tokens"]


def test_running_requests_hold_the_kv_cache(tmp_path: Path) -> None:
    app = build(tmp_path, MOKKU_METRICS="vllm", MOKKU_PREFIX_CACHE="64")

    def scrape() -> Dict[str, float]:
        text = app.get("/metrics").text
        return {
            sample.name: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name.startswith("vllm:kv_cache") or sample.name.startswith("vllm:prefix_cache")
        }

    body = wsgi.post(
        app.app, CHAT, {"model": "gpt-4o", "messages": messages("Will it rain?"), "stream": True}
    )
    next(iter(body))  # streaming: its prompt's blocks are held
    running = scrape()["vllm:kv_cache_usage_perc"]
    assert 0 < running <= 1
    body.close()  # type: ignore[attr-defined]
    samples = scrape()
    assert samples["vllm:kv_cache_usage_perc"] == 0
    prompt = app.post_json(CHAT, {"model": "gpt-4o", "messages": messages("Will it rain?")}).json["usage"]
    samples = scrape()
    assert samples["vllm:prefix_cache_queries_total"] == 2 * prompt["prompt_tokens"]
    assert samples["vllm:prefix_cache_hits_total"] == prompt["prompt_tokens_details"]["cached_tokens"] > 0
