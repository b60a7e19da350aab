"""Cassettes in-process: which headers a recording keeps, how a broken recording is refused."""

from __future__ import annotations

import pytest

from mokku.record import answers
from mokku.record.cassettes import secret_header
from mokku.server.http import Result


@pytest.mark.parametrize(
    "name",
    [
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
        "anthropic-ratelimit-input-tokens-limit",
        "anthropic-ratelimit-output-tokens-remaining",
        "anthropic-ratelimit-tokens-reset",
        "x-ratelimit-remaining-requests",
        "content-type",
    ],
)
def test_rate_limits_counted_in_tokens_are_kept(name: str) -> None:
    assert not secret_header(name)


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "x-api-key",
        "x-goog-api-key",
        "set-cookie",
        "x-amz-security-token",
        "x-auth-token",
        "openai-organization",
        "www-authenticate",
        "x-session-token",
    ],
)
def test_credentials_are_never_kept(name: str) -> None:
    assert secret_header(name)


def test_a_stream_is_cut_into_its_events_however_it_was_read() -> None:
    reads = [b"data: 1\n\ndata: ", b"2\n", b"\nevent: x\r\ndata: 3\r\n\r", b"\ndata: 4"]
    assert list(answers.events(reads)) == [
        b"data: 1\n\n",
        b"data: 2\n\n",
        b"event: x\r\ndata: 3\r\n\r\n",
        b"data: 4",
    ]


def test_what_an_answer_says_of_itself_whatever_its_dialect() -> None:
    outcome = answers.Outcome()
    for event in (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":7,"output_tokens":1}}}\n\n',
        b'data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":5}}\n\n',
        b"data: [DONE]\n\n",
    ):
        outcome.event(event)
    assert outcome.result() == Result("msg_1", ["end_turn"], {"prompt_tokens": 7, "completion_tokens": 5})
    gemini = answers.Outcome()
    gemini.body(
        b'{"responseId":"r1","candidates":[{"finishReason":"STOP"}],'
        b'"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":4,"totalTokenCount":7}}'
    )
    assert gemini.result() == Result("r1", ["STOP"], {"prompt_tokens": 3, "completion_tokens": 4})
    listing = answers.Outcome()
    listing.body(b'{"object":"list","data":[{"id":"gpt-4o"}]}')
    assert listing.result() is None  # not a generation
