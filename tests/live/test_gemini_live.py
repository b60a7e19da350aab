"""The Gemini API through the official ``google-genai`` SDK against the real servers (``python -m
mokku`` and gunicorn), under both API versions it calls: plain, streamed, automatic function calling,
structured output, token counting, embeddings, models, faults as the SDK's own errors."""

from __future__ import annotations

from typing import Iterator, List

import pydantic
import pytest
from google import genai
from google.genai import errors, types

from ..servers import LiveServer

MODEL = "gemini-2.5-flash"


@pytest.fixture(params=["v1beta", "v1"])
def gemini(live_server: LiveServer, request: pytest.FixtureRequest) -> Iterator[genai.Client]:
    client = genai.Client(
        api_key="gemini-key", http_options={"base_url": live_server.url, "api_version": request.param}
    )
    yield client
    client.close()


def test_generate(gemini: genai.Client) -> None:
    reply = gemini.models.generate_content(
        model=MODEL, contents="Hello Gemini ✓", config={"system_instruction": "Be kind."}
    )
    assert reply.text == "Hello Gemini ✓" and reply.candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]
    assert reply.usage_metadata.total_token_count > 0  # type: ignore[union-attr, operator]


def test_stream(gemini: genai.Client) -> None:
    chunks = list(gemini.models.generate_content_stream(model=MODEL, contents="one two three"))
    assert "".join(chunk.text or "" for chunk in chunks) == "one two three"
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}"


def test_automatic_function_calling_ends(gemini: genai.Client) -> None:
    reply = gemini.models.generate_content(
        model=MODEL, contents="Oslo", config=types.GenerateContentConfig(tools=[get_weather])
    )
    assert reply.text == "Sunny in Oslo"
    history = reply.automatic_function_calling_history or []
    assert [
        part.function_call.name for content in history for part in content.parts or [] if part.function_call
    ] == ["get_weather"]


class Recipe(pydantic.BaseModel):
    name: str
    steps: List[str]


def test_structured_output(gemini: genai.Client) -> None:
    reply = gemini.models.generate_content(
        model=MODEL,
        contents="Pancakes",
        config={"response_mime_type": "application/json", "response_schema": Recipe},
    )
    assert isinstance(reply.parsed, Recipe)


def test_count_embed_and_models(gemini: genai.Client) -> None:
    counted = gemini.models.count_tokens(model=MODEL, contents="count me")
    made = gemini.models.generate_content(model=MODEL, contents="count me")
    assert counted.total_tokens == made.usage_metadata.prompt_token_count  # type: ignore[union-attr]
    embedded = gemini.models.embed_content(model="gemini-embedding-001", contents=["a", "b"])
    assert [len(e.values or []) for e in embedded.embeddings or []] == [3072, 3072]
    names = [model.name for model in gemini.models.list(config={"page_size": 2})]
    assert "models/gemini-2.5-flash" in names and len(names) > 2  # the pager follows nextPageToken
    assert gemini.models.get(model=MODEL).display_name == "Gemini 2.5 Flash"


@pytest.mark.parametrize(
    "fault, kind, code, status",
    [
        ("rate_limit", errors.ClientError, 429, "RESOURCE_EXHAUSTED"),
        ("overloaded", errors.ServerError, 503, "UNAVAILABLE"),
        ("invalid_api_key", errors.ClientError, 400, "INVALID_ARGUMENT"),
        ("server_error", errors.ServerError, 500, "INTERNAL"),
    ],
)
def test_faults_raise_the_sdk_errors(
    gemini: genai.Client, fault: str, kind: type, code: int, status: str
) -> None:
    with pytest.raises(kind) as caught:
        gemini.models.generate_content(model=f"{MODEL}@{fault}", contents="x")
    assert caught.value.code == code and caught.value.status == status  # type: ignore[attr-defined]


def test_a_broken_stream_raises(gemini: genai.Client) -> None:
    with pytest.raises(errors.ServerError):
        for _ in gemini.models.generate_content_stream(
            model=f"{MODEL}@stream_error:1", contents="one two three"
        ):
            pass


def test_validation_errors(gemini: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as caught:
        gemini.models.generate_content(model=MODEL, contents=[types.Content(role="user", parts=[])])
    assert caught.value.code == 400 and "contents.parts must not be empty" in (caught.value.message or "")


def test_the_openai_compatible_base_url(live_server: LiveServer) -> None:
    """Gemini through the ``openai`` SDK at ``.../v1beta/openai/``, as Google documents it."""
    import openai

    with openai.OpenAI(
        base_url=live_server.url + "/v1beta/openai/", api_key="gemini-key", max_retries=0
    ) as client:
        reply = client.chat.completions.create(
            model="gemini-2.5-flash", messages=[{"role": "user", "content": "Hello Gemini"}]
        )
        assert reply.choices[0].message.content == "Hello Gemini" and reply.model == "gemini-2.5-flash"
        stream = client.chat.completions.create(
            model="gemini-2.5-flash", messages=[{"role": "user", "content": "one two"}], stream=True
        )
        assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices) == "one two"
        vectors = client.embeddings.create(model="gemini-embedding-001", input=["a", "b"])
        assert [len(item.embedding) for item in vectors.data] == [3072, 3072]
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="gemini-2.5-flash", messages=[])
