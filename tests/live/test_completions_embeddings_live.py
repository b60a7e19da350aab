"""Legacy completions and embeddings against the real server through the official SDK."""

from __future__ import annotations

import math
from array import array

import openai
import pytest

from ..servers import LiveServer
from ..spec import validate


def test_completions_string_prompt(client: openai.OpenAI) -> None:
    completion = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say this is a test")
    assert completion.choices[0].text == "Say this is a test"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.object == "text_completion"
    validate(completion.model_dump(mode="json", exclude_unset=True), "CreateCompletionResponse")


def test_completions_prompt_forms(client: openai.OpenAI) -> None:
    listed = client.completions.create(model="davinci-002", prompt=["one", "two"], n=2)
    assert [(c.index, c.text) for c in listed.choices] == [(0, "one"), (1, "one"), (2, "two"), (3, "two")]
    tokens = client.completions.create(model="davinci-002", prompt=[1212, 318, 257])
    assert tokens.choices[0].text == "1212 318 257"
    assert tokens.usage is not None and tokens.usage.prompt_tokens == 3
    nested = client.completions.create(model="davinci-002", prompt=[[1, 2], [3]])
    assert [c.text for c in nested.choices] == ["1 2", "3"]


def test_completions_echo_suffix_limits(client: openai.OpenAI) -> None:
    echoed = client.completions.create(model="davinci-002", prompt="ab", echo=True, suffix=" end")
    assert echoed.choices[0].text == "abab"
    limited = client.completions.create(model="davinci-002", prompt="one two three", max_tokens=2)
    assert (limited.choices[0].text, limited.choices[0].finish_reason) == ("one two", "length")
    stopped = client.completions.create(model="davinci-002", prompt="one, two", stop=",")
    assert (stopped.choices[0].text, stopped.choices[0].finish_reason) == ("one", "stop")


def test_completions_logprobs(client: openai.OpenAI) -> None:
    completion = client.completions.create(model="davinci-002", prompt="Hello, world", logprobs=2)
    logprobs = completion.choices[0].logprobs
    assert logprobs is not None and logprobs.tokens == ["Hello", ",", " world"]
    assert logprobs.top_logprobs is not None and all(len(top) == 2 for top in logprobs.top_logprobs)


def test_completions_stream_with_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.completions.create(
            model="gpt-3.5-turbo-instruct",
            prompt="Streaming legacy text ✓",
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.text for chunk in chunks for c in chunk.choices) == "Streaming legacy text ✓"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    finish = [c.finish_reason for chunk in chunks for c in chunk.choices if c.finish_reason]
    assert finish == ["stop"]


@pytest.mark.parametrize("stream", [False, True])
def test_completions_credit_error(client: openai.OpenAI, stream: bool) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client.completions.create(model="credit-error", prompt="x", stream=stream)
    assert caught.value.status_code == 402
    assert caught.value.code == "insufficient_quota"


def test_completions_validation(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="davinci-002", prompt="x", n=2, best_of=1)
    assert caught.value.param == "best_of"


def _norm(values: list) -> float:
    return math.sqrt(sum(v * v for v in values))


def test_embeddings_default_base64_equals_float(client: openai.OpenAI) -> None:
    texts = ["The food was delicious", "日本語", "🎉"]
    default = client.embeddings.create(model="text-embedding-3-small", input=texts)
    floats = client.embeddings.create(model="text-embedding-3-small", input=texts, encoding_format="float")
    # The same float32 numbers: base64 carries their bytes, JSON their 9-digit decimal names.
    assert [array("f", d.embedding) for d in default.data] == [array("f", d.embedding) for d in floats.data]
    assert [d.index for d in default.data] == [0, 1, 2]
    for item in floats.data:
        assert len(item.embedding) == 1536
        assert abs(_norm(item.embedding) - 1) < 1e-6
    validate(floats.model_dump(mode="json", exclude_unset=True), "CreateEmbeddingResponse")


def test_embeddings_raw_default_request_is_base64(client: openai.OpenAI) -> None:
    raw = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input="x")
    assert isinstance(raw.http_response.json()["data"][0]["embedding"], str)


def test_embeddings_dimensions_and_batches(client: openai.OpenAI) -> None:
    short = client.embeddings.create(model="text-embedding-3-large", input="x", dimensions=64)
    assert len(short.data[0].embedding) == 64
    batch = client.embeddings.create(model="text-embedding-3-small", input=[f"text {i}" for i in range(100)])
    singles = [
        client.embeddings.create(model="text-embedding-3-small", input=f"text {i}") for i in (0, 50, 99)
    ]
    assert [batch.data[i].embedding for i in (0, 50, 99)] == [s.data[0].embedding for s in singles]


def test_embeddings_validation(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="text-embedding-ada-002", input="x", dimensions=10)
    assert caught.value.param == "dimensions"
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="text-embedding-3-small", input="")
    assert caught.value.param == "input"


def test_embeddings_identical_across_server_processes(live_server: LiveServer) -> None:
    other = LiveServer("module" if live_server.kind == "gunicorn" else "gunicorn")
    try:
        results = []
        for url in (live_server.url, other.url):
            with openai.OpenAI(base_url=url + "/v1", api_key="sk-x", max_retries=0) as sdk:
                results.append(sdk.embeddings.create(model="text-embedding-3-small", input=["same", "text"]))
        assert [d.embedding for d in results[0].data] == [d.embedding for d in results[1].data]
    finally:
        other.close()


def test_sdk_moderation(client: openai.OpenAI) -> None:
    from openai.types import ModerationCreateResponse

    from ..sdk_types import strict

    raw = client.moderations.with_raw_response.create(
        model="omni-moderation-latest",
        input=[
            {"type": "text", "text": "a caption"},
            {"type": "image_url", "image_url": {"url": "https://e.com/a.png"}},
        ],
    )
    answer = strict(ModerationCreateResponse, raw.http_response.json())
    (result,) = answer.results
    assert result.flagged is False and result.category_applied_input_types.violence == ["text", "image"]
    assert client.moderations.create(input=["a", "b"]).results[1].categories.hate is False
