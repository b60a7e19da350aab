"""Cassettes in-process: which headers a recording keeps, how a broken recording is refused."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from mokku import config
from mokku.record import answers
from mokku.record.cassettes import Cassettes, matching_key, secret_header
from mokku.server.app import App
from mokku.server.http import Result

from .servers import cassette_why


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


CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "recorded"}]}
GOOD: Dict[str, Any] = {
    "request": {
        "method": "POST",
        "path": "/v1/chat/completions",
        "dialect": "openai",
        "query": "",
        "body": CHAT,
    },
    "response": {
        "status": 200,
        "headers": [["content-type", "application/json"], ["x-request-id", "req_recorded"]],
        "elapsed": 0.01,
        "text": '{"id":"chatcmpl-1","choices":[]}',
    },
}


def replay(
    tmp_path: Path, recording: Any, asked: Dict[str, Any] = CHAT
) -> Tuple[str, List[Tuple[str, str]], bytes]:
    """Ask ``asked`` in-process of a cassette holding ``recording`` (as written, whatever it is) for
    ``CHAT``."""
    key = matching_key("POST", "/v1/chat/completions", "openai", "", CHAT)
    target = Path(Cassettes(str(tmp_path / "c")).path("/v1/chat/completions", key, 1))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(recording if isinstance(recording, str) else json.dumps(recording))
    settings = config.load(
        {
            "MOKKU_STATE": str(tmp_path / "s.sqlite3"),
            "MOKKU_CASSETTES": str(tmp_path / "c"),
            "MOKKU_REPLAY_SPEED": "0",
        }
    )
    seen: Dict[str, Any] = {}
    raw = json.dumps(asked).encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/v1/chat/completions",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(raw)),
        "wsgi.input": io.BytesIO(raw),
        "wsgi.multithread": True,
    }
    out = App(settings)(environ, lambda status, headers: seen.update(status=status, headers=headers))
    return seen["status"], seen["headers"], b"".join(out)


def edited(**response: Any) -> Dict[str, Any]:
    return dict(GOOD, response=dict(GOOD["response"], **response))


@pytest.mark.parametrize(
    "recording",
    [
        "[]",
        '"a string"',
        "{}",
        {"response": []},
        "[" * 100_000 + "]" * 100_000,
        '{"response": {"status": 200, "elapsed": 1' + "0" * 5000 + "}}",
        edited(status="200"),
        edited(status=True),
        edited(status=100),
        edited(status=999),
        edited(headers="content-type"),
        edited(headers=[["x-a"]]),
        edited(headers=[["x-a", "b\r\nInjected: c"]]),
        edited(headers=[["x-a\r\nInjected", "c"]]),
        edited(headers=[["bad name", "c"]]),
        edited(elapsed="slow"),
        edited(elapsed=1e9),
        edited(elapsed=float("inf")),
        edited(text=5),
        edited(chunks="data"),
        edited(chunks=[{"at": "soon", "text": "data: 1\n\n"}]),
        edited(chunks=[{"at": 1e9, "text": "data: 1\n\n"}]),
        edited(chunks=["data: 1\n\n"]),
        edited(base64="not base64!"),
    ],
)
def test_a_broken_recording_is_recording_unreadable_never_a_generic_500(
    tmp_path: Path, recording: Any
) -> None:
    status, headers, body = replay(tmp_path, recording)
    assert status.startswith("500 ") and json.loads(body)["error"]["code"] == "recording_unreadable"
    assert all("\r" not in value and "\n" not in value for _, value in headers)


def test_a_recordings_stale_length_never_cuts_its_body(tmp_path: Path) -> None:
    status, headers, body = replay(
        tmp_path, edited(headers=[["Content-Length", "5"], ["content-type", "application/json"]])
    )
    assert status.startswith("200 ") and body == GOOD["response"]["text"].encode()
    assert [value for name, value in headers if name.lower() == "content-length"] in ([], [str(len(body))])


def test_a_miss_beside_a_broken_recording_still_names_what_differs(tmp_path: Path) -> None:
    other = matching_key("POST", "/v1/chat/completions", "openai", "", {"x": 1})
    (tmp_path / "c" / "v1_chat_completions").mkdir(parents=True)
    (tmp_path / "c" / "v1_chat_completions" / f"{other}-1.json").write_text("[]")  # not a recording
    status, _, body = replay(tmp_path, GOOD, asked=dict(CHAT, model="gpt-4o-mini"))
    error = json.loads(body)["error"]
    assert status.startswith("404 ") and error["code"] == "recording_not_found"
    assert '"gpt-4o" recorded, "gpt-4o-mini" sent' in error["message"]
    asked = tmp_path / "request.json"
    asked.write_text(json.dumps({"path": "/v1/chat/completions", "body": dict(CHAT, model="gpt-4o-mini")}))
    why = cassette_why(tmp_path / "c", asked)
    assert why.returncode == 1 and "Traceback" not in why.stderr
    assert '"gpt-4o" recorded, "gpt-4o-mini" sent' in why.stdout


def test_a_replay_miss_status_must_be_an_error_status() -> None:
    with pytest.raises(config.ConfigError, match="MOKKU_REPLAY_MISS_STATUS must be an HTTP error status"):
        config.load({"MOKKU_CASSETTES": "d", "MOKKU_REPLAY_MISS_STATUS": "999"})
    assert config.load({"MOKKU_CASSETTES": "d", "MOKKU_REPLAY_MISS_STATUS": "599"}).replay_miss_status == 599
