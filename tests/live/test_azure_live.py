"""Azure OpenAI through ``openai.AzureOpenAI`` (and the v1 API through ``openai.OpenAI``) and
LangChain's ``AzureChatOpenAI`` against the real servers: plain, streamed, tools, structured
output, embeddings, faults as the SDK's exceptions."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Iterator, List

import openai
import pydantic
import pytest

from ..servers import LiveServer

VERSION = "2024-10-21"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture
def azure(live_server: LiveServer) -> Iterator[openai.AzureOpenAI]:
    with openai.AzureOpenAI(
        azure_endpoint=live_server.url, api_key="azure-key", api_version=VERSION, max_retries=0
    ) as client:
        yield client


def test_chat_through_a_deployment(azure: openai.AzureOpenAI) -> None:
    raw = azure.chat.completions.with_raw_response.create(
        model="gpt-4o-prod", messages=[{"role": "user", "content": "Hello Azure ✓"}]
    )
    reply = raw.parse()
    assert reply.choices[0].message.content == "Hello Azure ✓" and reply.model == "gpt-4o-2024-08-06"
    body = json.loads(raw.http_response.content)
    assert body["prompt_filter_results"][0]["content_filter_results"]["hate"]["severity"] == "safe"
    assert raw.headers["apim-request-id"] and reply._request_id == raw.headers["x-request-id"]


def test_the_responses_api_on_the_dated_routes(live_server: LiveServer) -> None:
    """``AzureOpenAI.responses`` builds ``/openai/responses?api-version=...`` (no deployment)."""
    with openai.AzureOpenAI(
        azure_endpoint=live_server.url, api_key="k", api_version="2025-04-01-preview", max_retries=0
    ) as client:
        response = client.responses.create(model="gpt-4o-prod", input="Hello Responses")
        assert response.output_text == "Hello Responses" and response.model == "gpt-4o-2024-08-06"
        assert client.responses.retrieve(response.id).id == response.id
        assert [item.type for item in client.responses.input_items.list(response.id)] == ["message"]
        with client.responses.stream(model="gpt-4o-prod", input="streamed here") as stream:
            assert stream.get_final_response().output_text == "streamed here"
        client.responses.delete(response.id)
    with openai.AzureOpenAI(
        azure_endpoint=live_server.url, api_key="k", api_version=VERSION, max_retries=0
    ) as older:
        with pytest.raises(openai.BadRequestError, match="API version not supported"):
            older.responses.create(model="gpt-4o-prod", input="too early")


def test_a_stream_with_the_filter_preamble(azure: openai.AzureOpenAI) -> None:
    chunks = list(
        azure.chat.completions.create(
            model="gpt-4o-prod", messages=[{"role": "user", "content": "one two three"}], stream=True
        )
    )
    assert chunks[0].choices == []  # Azure's first chunk: the prompt's filter results
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == "one two three"


def test_a_tool_loop_ends(azure: openai.AzureOpenAI) -> None:
    messages: List[dict] = [{"role": "user", "content": "Oslo"}]
    first = azure.chat.completions.create(model="gpt-4o-prod", messages=messages, tools=[WEATHER])  # type: ignore[arg-type, list-item]
    (call,) = first.choices[0].message.tool_calls or []
    assert json.loads(call.function.arguments) == {"city": "Oslo"}  # type: ignore[union-attr]
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny in Oslo"},
    ]
    final = azure.chat.completions.create(model="gpt-4o-prod", messages=messages, tools=[WEATHER])  # type: ignore[arg-type, list-item]
    assert final.choices[0].message.content == "Sunny in Oslo"


class City(pydantic.BaseModel):
    name: str
    population: int


def test_structured_output_and_embeddings(azure: openai.AzureOpenAI) -> None:
    parsed = azure.chat.completions.parse(
        model="gpt-4o-prod", messages=[{"role": "user", "content": "Oslo"}], response_format=City
    )
    assert isinstance(parsed.choices[0].message.parsed, City)
    vectors = azure.embeddings.create(model="embedding-deployment", input=["a", "b"])
    assert len(vectors.data) == 2 and vectors.model == "embedding-deployment"
    assert [model.id for model in azure.models.list()][:1]


@pytest.mark.parametrize(
    "fault, exception",
    [
        ("rate_limit", openai.RateLimitError),
        ("invalid_api_key", openai.AuthenticationError),
        ("prompt_filter", openai.BadRequestError),
        ("server_error", openai.InternalServerError),
        ("credit", openai.APIStatusError),
    ],
)
def test_faults_raise_the_sdk_exceptions(azure: openai.AzureOpenAI, fault: str, exception: type) -> None:
    with pytest.raises(exception) as caught:
        azure.chat.completions.create(model=f"gpt-4o@{fault}", messages=[{"role": "user", "content": "x"}])
    if fault == "prompt_filter":
        assert caught.value.code == "content_filter"  # type: ignore[attr-defined]
    if fault == "rate_limit":
        assert caught.value.code == "429"  # type: ignore[attr-defined]


def test_an_unknown_api_version(live_server: LiveServer) -> None:
    with openai.AzureOpenAI(
        azure_endpoint=live_server.url, api_key="k", api_version="2099-01-01", max_retries=0
    ) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="d", messages=[{"role": "user", "content": "x"}])
    assert caught.value.code == "BadRequest" and "API version not supported" in str(caught.value)


def test_the_v1_api_with_the_plain_client(live_server: LiveServer) -> None:
    with openai.OpenAI(
        base_url=live_server.url + "/openai/v1/", api_key="azure-key", max_retries=0
    ) as client:
        reply = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "v1 works"}]
        )
        assert reply.choices[0].message.content == "v1 works"
        response = client.responses.create(model="gpt-4o", input="and Responses")
        assert client.responses.retrieve(response.id).output_text == "and Responses"


LANGCHAIN = """
import sys
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import AzureChatOpenAI

@tool
def get_weather(city: str) -> str:
    "The weather in a city."
    return f"Sunny in {city}"

model = AzureChatOpenAI(azure_endpoint=sys.argv[1], azure_deployment="gpt-4o-prod", api_version="2024-10-21",
                        api_key="azure-key", max_retries=0).bind_tools([get_weather])
messages = [HumanMessage("Oslo")]
for _ in range(3):
    reply = model.invoke(messages)
    messages.append(reply)
    if not reply.tool_calls:
        break
    for call in reply.tool_calls:
        messages.append(ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"]))
print(reply.content, len(messages), reply.response_metadata.get("prompt_filter_results", [{}])[0].get("prompt_index"))
streamed = "".join(chunk.content for chunk in AzureChatOpenAI(azure_endpoint=sys.argv[1], azure_deployment="d",
                   api_version="2024-10-21", api_key="k", streaming=True).stream("stream me"))
print(streamed)
"""


def test_langchain_azure_chat_openai_completes_a_tool_loop(live_server: LiveServer) -> None:
    env = {"PATH": "/usr/bin:/bin", "LANGCHAIN_TRACING_V2": "false", "NO_PROXY": "127.0.0.1,localhost"}
    result = subprocess.run(
        [sys.executable, "-c", LANGCHAIN, live_server.url],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    final, streamed = result.stdout.strip().splitlines()
    assert final == "Sunny in Oslo 4 0"  # human, call, tool result, answer; the prompt's filter results kept
    assert streamed == "stream me"


def test_the_async_client(live_server: LiveServer) -> None:
    import asyncio

    async def run() -> str:
        async with openai.AsyncAzureOpenAI(
            azure_endpoint=live_server.url, api_key="azure-key", api_version=VERSION, max_retries=0
        ) as client:
            stream = await client.chat.completions.create(
                model="gpt-4o-prod", messages=[{"role": "user", "content": "async works"}], stream=True
            )
            return "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])

    assert asyncio.run(run()) == "async works"
