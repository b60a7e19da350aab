"""Fields of Anthropic's answers that the SDKs type as always present (null or not): the stop's
details, the diagnostics, the usage's inference region and thinking tokens, a tool call's caller."""

from __future__ import annotations

from typing import Any, Dict, List

import anthropic.types as types
import webtest

from mokku.api.decide import THOUGHT_TOKENS

from .sdk_types import strict
from .test_anthropic import HEADERS, URL, WEATHER, body, events

REFUSAL = {"type": "refusal", "category": None, "explanation": None}


def raw(app: webtest.TestApp, payload: Dict[str, Any]) -> Dict[str, Any]:
    """The message as sent (the SDK's types fill a missing optional field with None)."""
    answer: Dict[str, Any] = app.post_json(URL, payload, headers=HEADERS).json
    strict(types.Message, answer)
    return answer


def delta(sequence: List[Dict[str, Any]]) -> Dict[str, Any]:
    (found,) = [event for event in sequence if event["type"] == "message_delta"]
    return found


def test_a_message_carries_stop_details_diagnostics_and_its_usage_breakdown(app: webtest.TestApp) -> None:
    message = raw(app, body("one two three"))
    assert list(message)[-3:] == ["stop_details", "usage", "diagnostics"]
    assert message["stop_details"] is None and message["diagnostics"] is None
    assert list(message).index("stop_details") == list(message).index("stop_sequence") + 1
    usage = message["usage"]
    assert usage["inference_geo"] == "not_available"
    assert usage["output_tokens_details"] == {"thinking_tokens": 0} and usage["output_tokens"] == 3


def test_thinking_tokens_are_told_apart(app: webtest.TestApp) -> None:
    payload = body("one two three", max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024})
    usage = raw(app, payload)["usage"]
    assert usage["output_tokens_details"] == {"thinking_tokens": THOUGHT_TOKENS}
    assert usage["output_tokens"] == THOUGHT_TOKENS + 3
    sequence = events(app, **payload)
    assert delta(sequence)["usage"]["output_tokens_details"] == {"thinking_tokens": THOUGHT_TOKENS}
    assert sequence[0]["message"]["usage"]["output_tokens_details"] is None  # told at the end


def test_a_refusal_says_so_in_stop_details(app: webtest.TestApp) -> None:
    refused = raw(app, body("anything", model="claude@content_filter"))
    assert refused["stop_reason"] == "refusal" and refused["stop_details"] == REFUSAL
    sequence = events(app, **body("anything", model="claude@content_filter"))
    assert sequence[0]["message"]["stop_details"] is None
    assert delta(sequence)["delta"] == {
        "stop_reason": "refusal",
        "stop_sequence": None,
        "stop_details": REFUSAL,
    }


def test_the_stream_carries_the_same_fields(app: webtest.TestApp) -> None:
    sequence = events(app, **body("one two three"))
    start = sequence[0]["message"]
    assert start["stop_details"] is None and start["diagnostics"] is None
    assert start["usage"]["inference_geo"] == "not_available"
    final = delta(sequence)
    assert final["delta"] == {"stop_reason": "end_turn", "stop_sequence": None, "stop_details": None}
    assert final["usage"]["output_tokens_details"] == {"thinking_tokens": 0}


def test_a_tool_call_names_its_caller(app: webtest.TestApp) -> None:
    (call,) = raw(app, body("Oslo", tools=[WEATHER]))["content"]
    assert call["caller"] == {"type": "direct"}
    sequence = events(app, **body("Oslo", tools=[WEATHER]))
    (start,) = [event["content_block"] for event in sequence if event["type"] == "content_block_start"]
    assert start["type"] == "tool_use" and start["caller"] == {"type": "direct"} and start["input"] == {}
    # Sent back as it came, the call is accepted.
    turns = [
        {"role": "user", "content": "Oslo"},
        {"role": "assistant", "content": [call]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "Sunny"}]},
    ]
    assert raw(app, body(messages=turns, tools=[WEATHER]))["content"][0]["text"] == "Sunny"
