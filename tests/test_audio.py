"""Spoken answers on chat, in-process: the transcript, audio a real decoder (FFmpeg's, through PyAV)
plays for as long as saying it takes, the usage, streams, and the refusals."""

from __future__ import annotations

import base64
import io
from typing import Any, Dict, List

import av
import openai.types.chat
import pytest
import webtest

from mokku.api import audio
from mokku.api.tokens import count

from . import sse
from .spec import assert_invalid_request, validate

URL = "/v1/chat/completions"
ASKED = [{"role": "user", "content": "Is a golden retriever a good family dog?"}]
SPOKEN = {"model": "gpt-4o-audio-preview", "modalities": ["text", "audio"], "messages": ASKED}
# How each format is read: FFmpeg's demuxer names.
DEMUXERS = {"wav": "wav", "mp3": "mp3", "aac": "aac", "flac": "flac", "opus": "ogg"}


def decoded(data: bytes, format_: str) -> List[Any]:
    """The audio's frames, as FFmpeg decodes them."""
    with av.open(io.BytesIO(data), format=DEMUXERS[format_]) as container:
        return list(container.decode(audio=0))


@pytest.mark.parametrize("format_", ["wav", "mp3", "aac", "flac", "opus", "pcm16"])
def test_a_spoken_answer_plays_as_long_as_its_transcript_takes(app: webtest.TestApp, format_: str) -> None:
    body = app.post_json(URL, dict(SPOKEN, audio={"voice": "alloy", "format": format_})).json
    validate(body, "CreateChatCompletionResponse")
    openai.types.chat.ChatCompletion.model_validate(body, strict=True)
    message = body["choices"][0]["message"]
    assert message["content"] is None and message["audio"]["transcript"] == ASKED[0]["content"]
    assert message["audio"]["id"].startswith("audio_")
    assert message["audio"]["expires_at"] == body["created"] + 3600
    data = base64.b64decode(message["audio"]["data"], validate=True)
    text_tokens = count(ASKED[0]["content"])  # the echo's tokens
    expected = text_tokens * audio.SECONDS_PER_TOKEN
    if format_ == "pcm16":
        assert data == bytes(int(expected * 24_000) * 2)  # 24 kHz, 16 bits, silent
    else:
        frames = decoded(data, format_)
        rate = frames[0].sample_rate
        played = sum(frame.samples for frame in frames) / rate
        assert expected <= played < expected + 0.05  # AAC's last frame is whole: up to 43 ms more
        assert not any(any(bytes(plane)) for frame in frames for plane in frame.planes)  # silence
    usage = body["usage"]
    said = usage["completion_tokens_details"]["audio_tokens"]
    assert said == round(expected * audio.TOKENS_PER_SECOND)
    assert usage["completion_tokens"] == text_tokens + said
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.parametrize("n", [1, 4])
def test_a_long_answer_says_at_most_its_bound_in_all_its_choices(app: webtest.TestApp, n: int) -> None:
    long = [{"role": "user", "content": "word " * 2000}]
    sent = dict(SPOKEN, messages=long, n=n, audio={"voice": "alloy", "format": "pcm16"})
    body = app.post_json(URL, sent).json
    said = [base64.b64decode(choice["message"]["audio"]["data"]) for choice in body["choices"]]
    assert [len(data) for data in said] == [int(audio.MAX_SECONDS / n * 24_000) * 2] * n
    assert body["usage"]["completion_tokens_details"]["audio_tokens"] == round(audio.MAX_SECONDS * 10)


def test_a_stream_speaks_pcm16_in_pieces_after_its_transcript(app: webtest.TestApp) -> None:
    sent = dict(SPOKEN, audio={"voice": {"id": "voice_1"}, "format": "pcm16"}, stream=True)
    chunks = sse.parse(app.post_json(URL, dict(sent, stream_options={"include_usage": True})).body)
    deltas: List[Dict[str, Any]] = [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]
    for chunk in chunks:
        openai.types.chat.ChatCompletionChunk.model_validate(chunk)
    head = deltas[0]
    assert (
        head["role"] == "assistant" and head["content"] is None and head["audio"]["id"].startswith("audio_")
    )
    spoken = [delta["audio"] for delta in deltas if "audio" in delta]
    transcript = "".join(piece.get("transcript", "") for piece in spoken)
    pcm = b"".join(base64.b64decode(piece["data"]) for piece in spoken if "data" in piece)
    text_tokens = count(transcript)
    assert transcript == ASKED[0]["content"] and pcm == bytes(
        int(text_tokens * audio.SECONDS_PER_TOKEN * 24_000) * 2
    )
    assert [piece for piece in spoken if "expires_at" in piece] == [
        {"expires_at": chunks[0]["created"] + 3600}
    ]
    assert sum("id" in piece for piece in spoken) == 1  # the id once: clients join the rest
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["usage"][
        "completion_tokens"
    ] == text_tokens + audio.audio_tokens(text_tokens)


def test_a_call_is_not_spoken(app: webtest.TestApp) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    body = app.post_json(URL, dict(SPOKEN, audio={"voice": "alloy", "format": "wav"}, tools=[tool])).json
    message = body["choices"][0]["message"]
    assert message["tool_calls"] and "audio" not in message
    assert body["usage"]["completion_tokens_details"]["audio_tokens"] == 0


@pytest.mark.parametrize(
    ("extra", "param", "code", "message"),
    [
        ({}, "audio", "missing_required_parameter", r"^Missing required parameter: 'audio'\.$"),
        (
            {"audio": {"voice": "alloy", "format": "wav"}, "stream": True},
            "audio.format",
            "unsupported_value",
            r"^Unsupported value: 'audio\.format' does not support 'wav' when stream=true\. "
            r"Supported values are: 'pcm16'\.$",
        ),
    ],
)
def test_audio_asked_wrongly_is_refused(
    app: webtest.TestApp, extra: Dict[str, Any], param: str, code: str, message: str
) -> None:
    answer = app.post_json(URL, {**SPOKEN, **extra}, status=400).json
    assert_invalid_request(answer, param, code, message)
