"""``anthropic-version``: the versions the real API knows, and what ``2026-10-21`` (the version the
SDK sends today) refuses that ``2023-06-01`` takes."""

from __future__ import annotations

from typing import Any, Dict

import pytest
import webtest

from .test_anthropic import HEADERS, URL, body, error

LATEST = dict(HEADERS, **{"anthropic-version": "2026-10-21"})
COUNT = URL + "/count_tokens"


def counted(**extra: Any) -> Dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "Hello"}], **extra}


@pytest.mark.parametrize("path, payload", [(URL, body()), (COUNT, counted())])
def test_a_version_the_api_does_not_know_is_refused(
    app: webtest.TestApp, path: str, payload: Dict[str, Any]
) -> None:
    for version in ("2023-06-01", "2026-10-21", "2023-01-01"):
        app.post_json(path, payload, headers=dict(HEADERS, **{"anthropic-version": version}))
    for version in ("2024-01-01", "latest", "2023-6-1"):
        found = error(app, payload, 400, dict(HEADERS, **{"anthropic-version": version}))
        assert found == {
            "type": "invalid_request_error",
            "message": f'anthropic-version: "{version}" is not a valid version',
        }


def test_the_model_list_takes_any_version(app: webtest.TestApp) -> None:
    listed = app.get("/v1/models", headers={"anthropic-version": "2024-01-01"}).json
    assert listed["data"][0]["type"] == "model"


@pytest.mark.parametrize(
    "sampling",
    [{"temperature": 1}, {"temperature": 0}, {"top_p": 1.0}, {"top_k": 5}, {"temperature": None}],
)
@pytest.mark.parametrize("path", [URL, COUNT])
def test_2026_10_21_takes_no_sampling_parameters(
    app: webtest.TestApp, path: str, sampling: Dict[str, Any]
) -> None:
    payload = body(**sampling) if path == URL else counted(**sampling)
    (name,) = sampling
    found = error(app, payload, 400, LATEST)
    assert found == {"type": "invalid_request_error", "message": f"{name}: Extra inputs are not permitted"}
    app.post_json(path, payload, headers=HEADERS)  # 2023-06-01 takes them
    app.post_json(path, body() if path == URL else counted(), headers=LATEST)


def test_the_first_sampling_parameter_is_named_before_other_checks(app: webtest.TestApp) -> None:
    thinking = {"type": "enabled", "budget_tokens": 1024}
    payload = body(max_tokens=2048, thinking=thinking, top_k=5, temperature=0.5)
    assert error(app, payload, 400, LATEST)["message"] == "top_k: Extra inputs are not permitted"
    assert "`temperature` may only be set to 1" in error(app, payload, 400)["message"]
