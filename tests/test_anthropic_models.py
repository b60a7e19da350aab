"""The Claude model catalogue as the real API lists it today, and each model's window, read from its
family and version (``mokku.anthropic.claude``)."""

from __future__ import annotations

from typing import Any, Dict, Optional

import anthropic.types as types
import pytest
import webtest

from mokku.anthropic import claude

from .sdk_types import strict
from .test_anthropic import HEADERS, body, create, error

CURRENT = [
    "claude-fable-5-2",
    "claude-haiku-5-5",
    "claude-sonnet-5-5",
    "claude-opus-5-5",
    "claude-fable-5-1",
    "claude-opus-5",
    "claude-sonnet-5",
    "claude-fable-5",
    "claude-opus-4-8",
    "claude-opus-4-7",
    "claude-sonnet-4-6",
    "claude-opus-4-6",
    "claude-opus-4-5-20251101",
    "claude-haiku-4-5-20251001",
    "claude-sonnet-4-5-20250929",
]


@pytest.mark.parametrize(
    "model_id, read",
    [
        ("claude-opus-4-7", ("opus", (4, 7))),
        ("claude-opus-4-7-20260416", ("opus", (4, 7))),
        ("claude-opus-5", ("opus", (5, 0))),
        ("claude-fable-5-2", ("fable", (5, 2))),
        ("claude-haiku-4-5-20251001", ("haiku", (4, 5))),
        ("claude-opus-4-20250514", ("opus", (4, 0))),
        ("claude-3-5-haiku-20241022", None),
        ("claude-opus", None),
        ("claude-opus-4-7@overloaded", None),
        ("claude-mythos-5", None),
        ("mokku-echo-1", None),
    ],
)
def test_a_model_id_reads_as_its_family_and_version(model_id: str, read: Optional[Any]) -> None:
    assert claude.parse(model_id) == (claude.Claude(*read) if read else None)


def models(app: webtest.TestApp) -> Dict[str, Dict[str, Any]]:
    page = app.get("/v1/models?limit=1000", headers=HEADERS).json
    for info in page["data"]:
        strict(types.ModelInfo, info)
    return {info["id"]: info for info in page["data"]}


def test_the_list_names_todays_models_newest_first(app: webtest.TestApp) -> None:
    listed = models(app)
    claude_ids = [model_id for model_id in listed if model_id.startswith("claude-")]
    assert claude_ids == CURRENT  # the retired ones (Opus 4 and 4.1, Sonnet 4, Haiku 3.5) are gone
    dates = [listed[model_id]["created_at"] for model_id in CURRENT]
    assert dates == sorted(dates, reverse=True)
    assert listed["claude-opus-4-7"]["display_name"] == "Claude Opus 4.7"
    assert listed["claude-opus-4-7"]["created_at"] == "2026-04-16T00:00:00Z"
    assert listed["claude-fable-5-2"]["line"] == "fable" and listed["claude-haiku-5-5"]["line"] == "haiku"
    for retired in ("claude-opus-4-1-20250805", "claude-3-5-haiku-20241022", "claude-sonnet-4-20250514"):
        app.get(f"/v1/models/{retired}", headers=HEADERS, status=404)
    create(app, **body(model="claude-opus-4-1-20250805"))  # messages still answer any id


def test_deprecated_models_say_when_they_retire(app: webtest.TestApp) -> None:
    listed = models(app)
    lifecycle = {
        model_id: (info["lifecycle"], info["retires_at"], info["deprecated_at"])
        for model_id, info in listed.items()
    }
    assert lifecycle["claude-opus-4-5-20251101"] == ("deprecated", "2027-01-22T00:00:00Z", None)
    assert lifecycle["claude-sonnet-4-5-20250929"] == ("deprecated", "2026-11-30T00:00:00Z", None)
    assert {model_id for model_id, (stage, _, _) in lifecycle.items() if stage != "active"} == {
        "claude-opus-4-5-20251101",
        "claude-sonnet-4-5-20250929",
    }
    info = strict(types.ModelInfo, app.get("/v1/models/claude-sonnet-4-5", headers=HEADERS).json)
    assert info.lifecycle == "deprecated" and info.retires_at.isoformat() == "2026-11-30T00:00:00+00:00"


def test_models_from_4_6_on_have_a_million_token_window(app: webtest.TestApp) -> None:
    listed = models(app)
    windows = {
        model_id: (listed[model_id]["max_input_tokens"], listed[model_id]["max_tokens"])
        for model_id in CURRENT
    }
    assert {model_id for model_id, size in windows.items() if size == (1_000_000, 128_000)} == set(
        CURRENT[:12]
    )
    assert {windows[model_id] for model_id in CURRENT[12:]} == {(200_000, 64_000)}


def test_the_real_window_follows_the_version(make_app: Any) -> None:
    app = make_app({"MOKKU_CONTEXT_WINDOW": "real"})
    for model in ("claude-opus-4-7", "claude-opus-4-7-20260416", "claude-fable-5-2"):
        found = error(app, body(model=model, max_tokens=128_001), 400)
        assert found["message"] == (
            f"max_tokens: 128001 > 128000, which is the maximum allowed number of output tokens for {model}"
        )
        assert create(app, **body(model=model, max_tokens=128_000)).stop_reason == "end_turn"
    error(app, body(model="claude-sonnet-4-5", max_tokens=64_001), 400)


ADAPTIVE = (
    '"thinking.type.{}" is not supported for this model. Use "thinking.type.adaptive" and '
    '"output_config.effort" to control thinking behavior.'
)
BOTH = "`temperature` and `top_p` cannot both be specified for this model. Please use only one."
FORCED = 'tool_choice: type "tool" and "any" are not supported for this model.'
WEATHER_TOOL = {"name": "get_weather", "input_schema": {"type": "object"}}
ENABLED = {"type": "enabled", "budget_tokens": 1024}


@pytest.mark.parametrize(
    "models, extra, message",
    [
        (
            (
                "claude-opus-4-7",
                "claude-opus-4-7-20260416",
                "claude-sonnet-5",
                "claude-haiku-5-5",
                "claude-fable-5",
            ),
            {"temperature": 0.5},
            "temperature is deprecated for this model.",
        ),
        (("claude-opus-5-5", "claude-fable-5-2"), {"top_p": 0.9}, "top_p is deprecated for this model."),
        (("claude-sonnet-5-5",), {"top_k": 5}, "top_k is deprecated for this model."),
        (
            (
                "claude-haiku-4-5",
                "claude-sonnet-4-5-20250929",
                "claude-sonnet-4-6",
                "claude-opus-4-5",
                "claude-opus-4-6",
            ),
            {"temperature": 0.5, "top_p": 0.9},
            BOTH,
        ),
        (
            ("claude-opus-4-7", "claude-opus-4-8", "claude-sonnet-5", "claude-haiku-5-5", "claude-fable-5-1"),
            {"thinking": ENABLED},
            ADAPTIVE.format("enabled"),
        ),
        (
            ("claude-opus-5-5", "claude-fable-5", "claude-fable-5-2"),
            {"thinking": {"type": "disabled"}},
            ADAPTIVE.format("disabled"),
        ),
        (
            ("claude-sonnet-5-5",),
            {"thinking": {"type": "disabled"}},
            '"thinking.type.disabled" is not supported for this model. Use "thinking.type.between_tools" for the '
            "lowest thinking setting.",
        ),
        (
            ("claude-opus-5-5", "claude-fable-5-1", "claude-sonnet-5-5"),
            {"tools": [WEATHER_TOOL], "tool_choice": {"type": "any"}},
            FORCED,
        ),
        (
            ("claude-fable-5-2",),
            {"tools": [WEATHER_TOOL], "tool_choice": {"type": "tool", "name": "get_weather"}},
            FORCED,
        ),
    ],
)
def test_each_generation_refuses_what_it_no_longer_takes(
    app: webtest.TestApp, models: Any, extra: Dict[str, Any], message: str
) -> None:
    for model in models:
        found = error(app, body(model=model, max_tokens=2048, **extra), 400)
        assert found == {"type": "invalid_request_error", "message": message}, model
    # An id that is no Claude family's, and a fault's suffix, change nothing.
    for model in ("claude", "mokku-echo-1", "claude-3-5-haiku-20241022"):
        create(app, **body(model=model, max_tokens=2048, **extra))
    error(app, body(model=f"{models[0]}@content_filter", max_tokens=2048, **extra), 400)


@pytest.mark.parametrize(
    "model, extra",
    [
        ("claude-opus-4-7", {"temperature": 1, "top_p": 1}),
        ("claude-opus-4-7", {"thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}}),
        ("claude-opus-4-7", {"thinking": {"type": "disabled"}}),
        ("claude-opus-4-6", {"thinking": ENABLED, "temperature": 1}),
        ("claude-opus-4-6", {"top_p": 0.9, "top_k": 5}),
        ("claude-opus-4-1", {"temperature": 0.5, "top_p": 0.9}),
        ("claude-opus-5", {"tools": [WEATHER_TOOL], "tool_choice": {"type": "any"}}),
        ("claude-fable-5", {"tools": [WEATHER_TOOL], "tool_choice": {"type": "any"}}),
        ("claude-sonnet-5-5", {"thinking": {"type": "between_tools"}}),
        ("claude-sonnet-5", {"thinking": {"type": "disabled"}}),
    ],
)
def test_what_a_generation_still_takes(app: webtest.TestApp, model: str, extra: Dict[str, Any]) -> None:
    create(app, **body(model=model, max_tokens=2048, **extra))


def test_between_tools_thinks_nothing_before_the_answer(app: webtest.TestApp) -> None:
    reply = create(app, **body("one two", thinking={"type": "between_tools"}))
    assert [block.type for block in reply.content] == ["text"] and reply.usage.output_tokens == 2


def test_count_tokens_refuses_forced_tools_and_manual_thinking_too(app: webtest.TestApp) -> None:
    counted = {
        "model": "claude-opus-5-5",
        "messages": [{"role": "user", "content": "Hi"}],
        "tools": [WEATHER_TOOL],
    }
    refused = app.post_json(
        "/v1/messages/count_tokens", dict(counted, tool_choice={"type": "any"}), headers=HEADERS, status=400
    )
    assert refused.json["error"]["message"] == FORCED
    refused = app.post_json(
        "/v1/messages/count_tokens", dict(counted, thinking=ENABLED), headers=HEADERS, status=400
    )
    assert refused.json["error"]["message"] == ADAPTIVE.format("enabled")
    app.post_json("/v1/messages/count_tokens", dict(counted, temperature=0.5), headers=HEADERS)  # not read


def test_the_2026_10_21_sampling_refusal_comes_first(app: webtest.TestApp) -> None:
    latest = dict(HEADERS, **{"anthropic-version": "2026-10-21"})
    found = error(app, body(model="claude-opus-4-7", temperature=0.5), 400, latest)
    assert found["message"] == "temperature: Extra inputs are not permitted"
