"""Moderations in-process: the official shape, one result per input, the input types each
category was scored on, and a clear 400 for anything else."""

from __future__ import annotations

from typing import Any, Dict

import pytest
import webtest

from .spec import validate

URL = "/v1/moderations"
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
TEXT = {"type": "text", "text": "a caption"}
IMAGE_CATEGORIES = {
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "violence",
    "violence/graphic",
}


def moderate(app: webtest.TestApp, **body: Any) -> Dict[str, Any]:
    answer = app.post_json(URL, body).json
    validate(answer, "CreateModerationResponse")
    return answer


def test_a_string_is_not_flagged(app: webtest.TestApp) -> None:
    answer = moderate(app, input="I want to kill them.")
    assert answer["id"].startswith("modr-") and answer["model"] == "omni-moderation-latest"
    (result,) = answer["results"]
    assert result["flagged"] is False and not any(result["categories"].values())
    assert set(result["category_scores"]) == set(result["categories"]) and len(result["categories"]) == 13
    assert all(0 <= score < 0.01 for score in result["category_scores"].values())
    assert all(types == ["text"] for types in result["category_applied_input_types"].values())


def test_one_result_per_string_and_one_for_parts(app: webtest.TestApp) -> None:
    strings = moderate(app, input=["one", "two", ""], model="text-moderation-latest")
    assert strings["model"] == "text-moderation-latest" and len(strings["results"]) == 3
    (mixed,) = moderate(app, input=[TEXT, IMAGE])["results"]
    applied = mixed["category_applied_input_types"]
    assert {category for category, types in applied.items() if types == ["text", "image"]} == IMAGE_CATEGORIES
    assert {category for category, types in applied.items() if types == ["text"]} == set(
        applied
    ) - IMAGE_CATEGORIES
    (image,) = moderate(app, input=[IMAGE])["results"]
    assert {
        category for category, types in image["category_applied_input_types"].items() if types
    } == IMAGE_CATEGORIES


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "input"),
        ({"input": []}, "input"),
        ({"input": 3}, "input"),
        ({"input": ["x"] * 2049}, "input"),
        ({"input": ["x", TEXT]}, "input[0]"),
        ({"input": [{"type": "audio"}]}, "input[0].type"),
        ({"input": [{"type": "text"}]}, "input[0].text"),
        ({"input": [{"type": "image_url", "image_url": {}}]}, "input[0].image_url.url"),
        ({"input": "x", "model": 4}, "model"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(app: webtest.TestApp, body: Dict[str, Any], param: str) -> None:
    error = app.post_json(URL, body, status=400).json
    validate(error, "ErrorResponse")
    assert error["error"]["param"] == param


def test_the_model_s_faults_apply(app: webtest.TestApp) -> None:
    error = app.post_json(URL, {"input": "x", "model": "credit-error"}, status=402).json["error"]
    assert error["code"] == "insufficient_quota"


def test_a_scripted_reply_flags_what_it_matches(app: webtest.TestApp) -> None:
    rule = {
        "match": {"endpoint": "moderations", "contains": "attack"},
        "reply": {"flagged": ["violence", "hate"]},
    }
    app.post_json("/mokku/scenarios", rule)
    results = moderate(app, input=["plan the attack", "and more"])["results"]
    for result in results:  # every result of the request matched
        assert result["flagged"] is True
        assert {category for category, flagged in result["categories"].items() if flagged} == {
            "violence",
            "hate",
        }
        assert result["category_scores"]["violence"] > 0.5 > result["category_scores"]["sexual"]
    assert moderate(app, input="a picnic")["results"][0]["flagged"] is False


@pytest.mark.parametrize(
    ("flagged", "param"),
    [([], "rule.reply.flagged"), (["violent"], "rule.reply.flagged[0]"), ("violence", "rule.reply.flagged")],
)
def test_a_rule_flags_known_categories_only(app: webtest.TestApp, flagged: Any, param: str) -> None:
    rule = {"match": {"endpoint": "moderations"}, "reply": {"flagged": flagged}}
    error = app.post_json("/mokku/scenarios", rule, status=400).json["error"]
    assert error["param"] == param
