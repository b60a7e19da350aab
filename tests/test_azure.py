"""Azure OpenAI's routes in-process: deployments with ``api-version``, the v1 API, Azure's filter
results on chat and completions (streams too), and the errors Azure's gateway answers in its shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import openai.types as types
import openai.types.chat as chat_types
import pytest
import webtest

from mokku import config
from mokku.server.app import App

from .sdk_types import strict
from .spec import validate

VERSION = "2024-10-21"
CHAT = f"/openai/deployments/gpt-4o-prod/chat/completions?api-version={VERSION}"
HEADERS = {"api-key": "azure-key"}
MESSAGES = [{"role": "user", "content": "hello Azure"}]
SAFE = {"filtered": False, "severity": "safe"}


def chunks(raw: bytes) -> List[Any]:
    frames = raw.split(b"\n\n")[:-1]
    assert frames[-1] == b"data: [DONE]"
    return [json.loads(frame[len(b"data: ") :]) for frame in frames[:-1]]


def test_a_deployment_stands_for_the_model(app: webtest.TestApp) -> None:
    answer = app.post_json(CHAT, {"messages": MESSAGES, "model": "ignored"}, headers=HEADERS)
    body = answer.json
    # Azure names the model the deployment serves, not the deployment (LiteLLM prices by it).
    assert body["model"] == "gpt-4o-2024-08-06" and body["choices"][0]["message"]["content"] == "hello Azure"
    assert answer.headers["apim-request-id"] == answer.headers["x-request-id"]
    results = body["prompt_filter_results"][0]
    assert results["prompt_index"] == 0 and results["content_filter_results"]["hate"] == SAFE
    assert results["content_filter_results"]["jailbreak"] == {"filtered": False, "detected": False}
    choice = body["choices"][0]["content_filter_results"]
    assert choice["violence"] == SAFE and choice["protected_material_text"] == {
        "filtered": False,
        "detected": False,
    }
    strict_body = {k: v for k, v in body.items() if k != "prompt_filter_results"}
    for item in strict_body["choices"]:
        item.pop("content_filter_results")
    validate(strict_body, "CreateChatCompletionResponse")  # the rest is OpenAI's answer


def test_the_stream_starts_with_the_prompts_results(app: webtest.TestApp) -> None:
    raw = app.post_json(
        CHAT, {"messages": [{"role": "user", "content": "one two"}], "stream": True}, headers=HEADERS
    ).body
    first, *rest = chunks(raw)
    assert (
        first["choices"] == []
        and first["id"] == ""
        and first["prompt_filter_results"][0]["prompt_index"] == 0
    )
    assert rest[0]["choices"][0]["content_filter_results"] == {}  # the role chunk
    texts = [c for c in rest if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert "".join(c["choices"][0]["delta"]["content"] for c in texts) == "one two"
    assert all(c["choices"][0]["content_filter_results"]["sexual"] == SAFE for c in texts)
    for chunk in rest:  # Azure's own field aside, OpenAI's chunk exactly
        for choice in chunk["choices"]:
            del choice["content_filter_results"]
        strict(chat_types.ChatCompletionChunk, chunk)


def test_content_filter_faults(app: webtest.TestApp) -> None:
    filtered = app.post_json(
        CHAT, {"messages": MESSAGES}, headers=dict(HEADERS, **{"X-Mokku-Fault": "content_filter"})
    ).json
    choice = filtered["choices"][0]
    assert (
        choice["finish_reason"] == "content_filter"
        and choice["content_filter_results"]["violence"]["filtered"] is True
    )
    blocked = app.post_json(
        CHAT, {"messages": MESSAGES}, headers=dict(HEADERS, **{"X-Mokku-Fault": "prompt_filter"}), status=400
    )
    error = blocked.json["error"]
    assert error["code"] == "content_filter" and error["param"] == "prompt" and error["status"] == 400
    assert error["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    assert error["innererror"]["content_filter_result"]["jailbreak"] == {"filtered": True, "detected": True}
    plain = app.post_json(
        "/v1/chat/completions", {"model": "prompt-filter-error", "messages": MESSAGES}, status=400
    )
    assert plain.json["error"]["code"] == "invalid_prompt"  # OpenAI's routes: OpenAI's answer


@pytest.mark.parametrize(
    "url, status, code, message",
    [
        ("/openai/deployments/d/chat/completions", 404, "404", "Resource not found"),
        (
            "/openai/deployments/d/chat/completions?api-version=2099-01-01",
            400,
            "BadRequest",
            "API version not supported",
        ),
        (
            f"/openai/v1/chat/completions?api-version={VERSION}",
            400,
            "BadRequest",
            "api-version query parameter is not allowed when using /v1 path",
        ),
        (f"/openai/nothing?api-version={VERSION}", 404, "404", "Resource not found"),
        ("/openai/responses", 404, "404", "Resource not found"),
        (f"/openai/responses?api-version={VERSION}", 400, "BadRequest", "API version not supported"),
        (
            f"/openai/deployments/gpt-4o@permission/chat/completions?api-version={VERSION}",
            403,
            "403",
            "Access denied due to Virtual Network/Firewall rules.",
        ),
    ],
)
def test_gateway_errors(app: webtest.TestApp, url: str, status: int, code: str, message: str) -> None:
    answer = app.post_json(url, {"model": "m", "messages": MESSAGES}, headers=HEADERS, status=status)
    assert answer.json == {"error": {"code": code, "message": message}}


def test_model_errors_pass_through_in_openais_envelope(app: webtest.TestApp) -> None:
    bad = app.post_json(CHAT, {"messages": MESSAGES, "temperature": 5}, headers=HEADERS, status=400).json
    validate(bad, "ErrorResponse")
    assert bad["error"]["param"] == "temperature"
    credit = f"/openai/deployments/credit-error/chat/completions?api-version={VERSION}"
    assert app.post_json(credit, {"messages": MESSAGES}, headers=HEADERS, status=402).json == {
        "error": {
            "message": "You exceeded your current quota, please check your plan and billing details.",
            "type": "insufficient_quota",
            "param": None,
            "code": "insufficient_quota",
        }
    }


def test_a_rate_limit_in_azures_words(app: webtest.TestApp) -> None:
    url = f"/openai/deployments/gpt-4o@rate_limit:3000/chat/completions?api-version={VERSION}"
    answer = app.post_json(url, {"messages": MESSAGES}, headers=HEADERS, status=429)
    assert answer.json["error"]["code"] == "429" and answer.headers["retry-after-ms"] == "3000"
    assert answer.json["error"]["message"].startswith(
        f"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version {VERSION} have exceeded"
    )
    assert "have exceeded call rate limit" in answer.json["error"]["message"]  # requests per minute
    assert "Please retry after 3 seconds" in answer.json["error"]["message"]
    tokens = url.replace("rate_limit:3000", "rate_limit_tokens:1000")
    answer = app.post_json(tokens, {"messages": MESSAGES}, headers=HEADERS, status=429)
    assert "have exceeded token rate limit" in answer.json["error"]["message"]
    assert "Please retry after 1 second. Please go here" in answer.json["error"]["message"]


@pytest.mark.parametrize("setting, limit", [("MOKKU_RPM", "call"), ("MOKKU_TPM", "token")])
def test_configured_limits_name_a_call_or_a_token_rate(tmp_path: Path, setting: str, limit: str) -> None:
    app = webtest.TestApp(App(config.load({setting: "40", "MOKKU_STATE": str(tmp_path / "s")})))
    answers = [
        app.post_json(CHAT, {"messages": MESSAGES}, headers=HEADERS, expect_errors=True) for _ in range(41)
    ]
    refused = next(answer for answer in answers if answer.status_int == 429)
    assert (
        f"have exceeded {limit} rate limit of your current OpenAI S0 pricing tier"
        in refused.json["error"]["message"]
    )
    assert refused.headers["retry-after"]


def test_a_request_larger_than_the_token_limit_is_not_told_to_wait(tmp_path: Path) -> None:
    app = webtest.TestApp(App(config.load({"MOKKU_TPM": "100", "MOKKU_STATE": str(tmp_path / "s")})))
    long = [{"role": "user", "content": "word " * 400}]
    answer = app.post_json(CHAT, {"messages": long}, headers=HEADERS, status=429)
    assert answer.json["error"]["code"] == "429"
    assert answer.json["error"]["message"].startswith("Request too large for ")
    assert "retry-after" not in answer.headers


def test_keys_are_read_from_api_key(tmp_path: Path) -> None:
    app = webtest.TestApp(App(config.load({"MOKKU_API_KEY": "right", "MOKKU_STATE": str(tmp_path / "s")})))
    for headers in ({"api-key": "right"}, {"Authorization": "Bearer right"}):
        app.post_json(CHAT, {"messages": MESSAGES}, headers=headers)
    denied = app.post_json(CHAT, {"messages": MESSAGES}, headers={"api-key": "wrong"}, status=401).json
    assert denied["error"]["code"] == "401" and denied["error"]["message"].startswith("Access denied")
    # A refused bearer token (Entra ID's) is the identity layer's 401 on the dated routes, not the gateway's.
    token = app.post_json(
        CHAT, {"messages": MESSAGES}, headers={"Authorization": "Bearer x"}, status=401
    ).json
    assert token == {
        "statusCode": 401,
        "message": "Unauthorized. Access token is missing, invalid, audience is incorrect "
        "(https://cognitiveservices.azure.com), or have expired.",
    }
    v1 = "/openai/v1/chat/completions"
    on_v1 = app.post_json(
        v1, {"model": "gpt-4o", "messages": MESSAGES}, headers={"Authorization": "Bearer x"}, status=401
    )
    assert on_v1.json["error"]["code"] == "401"


@pytest.mark.parametrize(
    "url, body",
    [
        (f"/openai/deployments/gpt-4o-prod/completions?api-version={VERSION}", {"prompt": "a"}),
        ("/openai/v1/completions", {"model": "gpt-4o", "prompt": "a"}),
    ],
)
def test_a_chat_deployment_does_no_completions(app: webtest.TestApp, url: str, body: Dict[str, Any]) -> None:
    """In Azure's words, where OpenAI answers that it is a chat model."""
    refused = app.post_json(url, body, headers=HEADERS, status=400).json
    assert refused == {
        "error": {
            "code": "OperationNotSupported",
            "message": "The completion operation does not work with the specified model, gpt-4o. Please "
            "choose different model and try again. You can learn more about which models can be used "
            "with each operation here: https://go.microsoft.com/fwlink/?linkid=2197993.",
        }
    }


@pytest.mark.parametrize(
    "deployment, path, body, operation, model",
    [
        (
            "text-embedding-3-large",
            "chat/completions",
            {"messages": [{"role": "user", "content": "a"}]},
            "chatCompletion",
            "text-embedding-3-large",
        ),
        (
            "embed-prod",
            "chat/completions",
            {"messages": [{"role": "user", "content": "a"}]},
            None,
            "embed-prod",
        ),
        (
            "gpt-3.5-turbo-instruct-0914",
            "chat/completions",
            {"messages": [{"role": "user", "content": "a"}]},
            "chatCompletion",
            "gpt-3.5-turbo-instruct",
        ),
        ("gpt-4o-prod", "embeddings", {"input": "a"}, "embeddings", "gpt-4o"),
        ("o3-mini", "embeddings", {"input": "a"}, "embeddings", "o3-mini"),
        ("my-deployment", "embeddings", {"input": "a"}, None, "my-deployment"),
        ("gpt-35-turbo-prod", "completions", {"prompt": "a"}, "completion", "gpt-35-turbo"),
        ("gpt-35-turbo-16k", "embeddings", {"input": "a"}, "embeddings", "gpt-35-turbo-16k"),
        (
            "gpt-35-turbo-instruct",
            "chat/completions",
            {"messages": [{"role": "user", "content": "a"}]},
            "chatCompletion",
            "gpt-35-turbo-instruct",
        ),
        ("gpt-35-turbo-instruct-0914", "completions", {"prompt": "a"}, None, "gpt-35-turbo-instruct"),
        ("text-embedding-ada-002", "completions", {"prompt": "a"}, "completion", "text-embedding-ada-002"),
        ("embed-prod", "completions", {"prompt": "a"}, None, "embed-prod"),
    ],
)
def test_a_deployment_does_only_its_models_operations(
    app: webtest.TestApp, deployment: str, path: str, body: Dict[str, Any], operation: str, model: str
) -> None:
    """A chat deployment makes no embeddings and an embedding one no chat, in Azure's words (Azure's
    own ``gpt-35-turbo`` names too); a name that names no known model serves either."""
    url = f"/openai/deployments/{deployment}/{path}?api-version={VERSION}"
    if operation is None:  # answered as the model the deployment serves
        assert app.post_json(url, body, headers=HEADERS, status=200).json["model"] == model
        return
    assert app.post_json(url, body, headers=HEADERS, status=400).json == {
        "error": {
            "code": "OperationNotSupported",
            "message": f"The {operation} operation does not work with the specified model, {model}. Please "
            "choose different model and try again. You can learn more about which models can be used "
            "with each operation here: https://go.microsoft.com/fwlink/?linkid=2197993.",
        }
    }


def test_completions_embeddings_models_and_v1(app: webtest.TestApp) -> None:
    legacy = app.post_json(
        f"/openai/deployments/instruct/completions?api-version={VERSION}",
        {"prompt": "say this"},
        headers=HEADERS,
    ).json
    assert (
        legacy["choices"][0]["text"] == "say this"
        and legacy["choices"][0]["content_filter_results"]["hate"] == SAFE
    )
    embedded = app.post_json(
        f"/openai/deployments/emb/embeddings?api-version={VERSION}", {"input": "vector me"}, headers=HEADERS
    ).json
    strict(types.CreateEmbeddingResponse, embedded)
    assert embedded["model"] == "emb" and "prompt_filter_results" not in embedded  # no model it names
    large = app.post_json(
        f"/openai/deployments/text-embedding-3-large-eu/embeddings?api-version={VERSION}",
        {"input": "vector me"},
        headers=HEADERS,
    ).json
    assert large["model"] == "text-embedding-3-large" and len(large["data"][0]["embedding"]) == 3072
    mini = app.post_json(
        f"/openai/deployments/gpt-4o-mini-2/chat/completions?api-version={VERSION}",
        {"messages": MESSAGES},
        headers=HEADERS,
    ).json
    assert mini["model"] == "gpt-4o-mini-2024-07-18"  # the longest id the name starts with
    listed = app.get(f"/openai/models?api-version={VERSION}", headers=HEADERS).json
    assert listed["object"] == "list" and listed["data"]
    v1 = app.post_json(
        "/openai/v1/chat/completions", {"model": "gpt-4o", "messages": MESSAGES}, headers=HEADERS
    ).json
    assert v1["choices"][0]["content_filter_results"]["hate"] == SAFE
    response = app.post_json(
        "/openai/v1/responses", {"model": "gpt-4o", "input": "responses on Azure"}, headers=HEADERS
    ).json
    assert app.get(f"/openai/v1/responses/{response['id']}", headers=HEADERS).json["id"] == response["id"]


def test_azure_calls_are_journaled(tmp_path: Path) -> None:
    app = webtest.TestApp(
        App(config.load({"MOKKU_JOURNAL": "1", "MOKKU_ADMIN": "1", "MOKKU_STATE": str(tmp_path / "s")}))
    )
    app.post_json(CHAT, {"messages": MESSAGES}, headers=HEADERS)
    (entry,) = app.get("/mokku/requests").json["data"]
    assert (
        entry["path"] == "/openai/deployments/gpt-4o-prod/chat/completions"
        and entry["model"] == "gpt-4o-prod"
    )
    assert "azure-key" not in json.dumps(entry)


def test_the_span_names_azure(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = webtest.TestApp(OpenTelemetryMiddleware(App(config.load({})), tracer_provider=provider))
    app.post_json(CHAT, {"messages": MESSAGES}, headers=HEADERS)
    (span,) = exporter.get_finished_spans()
    attributes: Dict[str, Any] = dict(span.attributes or {})
    assert (
        attributes["gen_ai.provider.name"] == "azure.ai.openai"
        and attributes["gen_ai.request.model"] == "gpt-4o-prod"
    )
    assert "azure-key" not in repr(attributes)
    provider.shutdown()


def test_an_exhausted_quota_says_when_to_retry(app: webtest.TestApp) -> None:
    url = f"/openai/deployments/quota-error/chat/completions?api-version={VERSION}"
    answer = app.post_json(url, {"messages": MESSAGES}, headers=HEADERS, status=429)
    assert (
        answer.headers["retry-after"] == "60"
        and "Please retry after 60 seconds" in answer.json["error"]["message"]
    )
