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
