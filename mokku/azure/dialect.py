"""Azure OpenAI's dialect: OpenAI's bodies plus Azure's content-filter results, ``api-key``, and the
errors Azure's own gateway answers in its shape (``{"error": {"code", "message"}}``).

Errors from the model (validation, the ``credit-error`` 402) pass through in OpenAI's envelope, as
Azure passes them; the gateway's (an unknown path, a missing or unknown ``api-version``, a bad key,
a rate limit, a prompt its filters block) take Azure's shapes and wording.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Dict, Iterable, Iterator, Optional
from urllib.parse import parse_qs

from mokku import errors
from mokku.api.models import CHAT_MODELS, COMPLETION_MODELS, OPENAI_MODELS
from mokku.credentials import bearer_key
from mokku.server import stream
from mokku.server.dialect import Dialect
from mokku.server.http import Headers, Request, Response, error_response, json_response
from mokku.server.stream import DONE, Event, Token

GATEWAY = "azure_gateway"  # the type of an error Azure's gateway answers (its shape, not OpenAI's)

ACCESS_DENIED = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key "
    "for an active subscription and use a correct regional API endpoint for your resource."
)
FIREWALL_DENIED = "Access denied due to Virtual Network/Firewall rules."
# A bearer token the dated routes refuse (an Entra ID token, or a key sent as one): not the gateway's
# envelope but the identity layer's.
TOKEN_REFUSED = (
    "Unauthorized. Access token is missing, invalid, audience is incorrect "
    "(https://cognitiveservices.azure.com), or have expired."
)
PROMPT_FILTERED = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. "
    "Please modify your prompt and retry. To learn more about our content filtering policies please read "
    "our documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
)
_RATE = (
    "Requests to the {operation} Operation under Azure OpenAI API version {version} have exceeded {limit} "
    "rate limit of your current OpenAI S0 pricing tier. Please retry after {wait}. Please go "
    "here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit."
)
DEFAULT_RETRY_SECONDS = "60"
OPERATIONS = {
    "chat/completions": "ChatCompletions_Create",
    "completions": "Completions_Create",
    "embeddings": "Embeddings_Create",
    "responses": "Responses_Create",
}

_SAFE = {"filtered": False, "severity": "safe"}
_CLEAR = {"filtered": False, "detected": False}
PROMPT_RESULTS: Dict[str, Any] = {
    "hate": _SAFE,
    "jailbreak": _CLEAR,
    "self_harm": _SAFE,
    "sexual": _SAFE,
    "violence": _SAFE,
}
CHOICE_RESULTS: Dict[str, Any] = {
    "hate": _SAFE,
    "protected_material_code": _CLEAR,
    "protected_material_text": _CLEAR,
    "self_harm": _SAFE,
    "sexual": _SAFE,
    "violence": _SAFE,
}
FILTERED_RESULTS: Dict[str, Any] = dict(CHOICE_RESULTS, violence={"filtered": True, "severity": "high"})
BLOCKED_PROMPT: Dict[str, Any] = dict(PROMPT_RESULTS, jailbreak={"filtered": True, "detected": True})
# Azure streams start with the prompt's filter results, in a chunk without choices.
PREAMBLE = stream.event(
    {
        "choices": [],
        "created": 0,
        "id": "",
        "model": "",
        "object": "",
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": PROMPT_RESULTS}],
    }
)


def gateway_error(status: int, code: str, message: str) -> errors.APIError:
    return errors.APIError(status, message, GATEWAY, code=code)


def api_version(request: Request) -> Optional[str]:
    values = parse_qs(request.environ.get("QUERY_STRING", "")).get("api-version")
    return values[-1] if values else None


class Azure(Dialect):
    name = "azure"
    provider = "azure.ai.openai"
    decorates = True
    completions_refuse_embedding_models = True

    def api_key(self, request: Request) -> str:
        """``api-key``, as the SDK sends a key (or a bearer token, as Entra ID sends one)."""
        return request.header("Api-Key") or bearer_key(request.header("Authorization"))

    def answer_model(self, model: str) -> str:
        """Azure answers with the model a deployment serves, never the deployment's name (LiteLLM
        prices a response by it): a deployment named after a known model, or starting with its id
        and a dash (``gpt-4o-prod``), serves that model; any other name stands for itself."""
        return underlying_model(model) or model

    def wrong_operation(self, operation: str, model: str) -> errors.APIError:
        """A deployment of another kind of model, in Azure's words."""
        return gateway_error(
            400,
            "OperationNotSupported",
            f"The {operation} operation does not work with the specified model, {model}. Please choose "
            "different model and try again. You can learn more about which models can be used with each "
            "operation here: https://go.microsoft.com/fwlink/?linkid=2197993.",
        )

    def response_headers(self, request_id: str, elapsed_ms: int) -> Headers:
        return [("x-request-id", request_id), ("apim-request-id", request_id)]

    def error_response(self, error: errors.APIError, request: Request) -> Response:
        if error.type == GATEWAY:
            return _gateway(error.status, error.code or str(error.status), error.message, error.headers)
        if request.route is None and error.status == 404:
            return _gateway(404, "404", "Resource not found")
        if error.status == 401:
            if not request.header("Api-Key") and request.header("Authorization") and not _on_v1(request):
                return json_response({"statusCode": 401, "message": TOKEN_REFUSED}, 401)  # Entra ID's
            return _gateway(401, "401", ACCESS_DENIED)
        if error.code == "unsupported_country_region_territory":  # the permission fault: Azure's 403
            return _gateway(403, "403", FIREWALL_DENIED)
        if error.status == 429:
            if error.code == "rate_limit_exceeded" and not any(n == "retry-after" for n, _ in error.headers):
                return _gateway(429, "429", error.message, error.headers)  # too large to ever fit
            # Azure's gateway names a wait on every 429: an exhausted quota, which names none, 60 s.
            headers = error.headers or [("retry-after", DEFAULT_RETRY_SECONDS)]
            return _gateway(429, "429", _rate_message(error, request), headers)
        if error.code == "invalid_prompt":  # the prompt_filter fault: Azure's content filter blocks it
            body = {
                "error": {
                    "message": PROMPT_FILTERED,
                    "type": None,
                    "param": "prompt",
                    "code": "content_filter",
                    "status": 400,
                    "innererror": {
                        "code": "ResponsibleAIPolicyViolation",
                        "content_filter_result": BLOCKED_PROMPT,
                    },
                }
            }
            return json_response(body, 400)
        return error_response(error)  # compact, as Azure's gateway writes it

    def completion(self, answer: Dict[str, Any], request: Request) -> Dict[str, Any]:
        """The prompt's filter results, and each choice's (filtered under ``content_filter``)."""
        answer["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": PROMPT_RESULTS}]
        for choice in answer["choices"]:
            choice["content_filter_results"] = _choice_results(choice, True)
        return answer

    def completion_events(self, events: Iterable[Event], request: Request) -> Iterator[Event]:
        """The prompt's results first, then each chunk with its choices' results (``{}`` on a chunk
        without text, as Azure sends them)."""
        yield PREAMBLE
        for event in events:
            data = event.data if isinstance(event, Token) else event
            if data == DONE or not data.startswith(b"data: {"):
                yield event
                continue
            chunk = json.loads(data[len(b"data: ") :])
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                choice["content_filter_results"] = _choice_results(
                    choice, bool(delta.get("content") or choice.get("text"))
                )
            out = stream.event(chunk)
            yield Token(out) if isinstance(event, Token) else out


def _choice_results(choice: Dict[str, Any], has_text: bool) -> Dict[str, Any]:
    if choice.get("finish_reason") == "content_filter":
        return FILTERED_RESULTS
    return CHOICE_RESULTS if has_text else {}


def _on_v1(request: Request) -> bool:
    return request.path.startswith("/openai/v1/")


def _gateway(status: int, code: str, message: str, headers: Iterable[Any] = ()) -> Response:
    return json_response({"error": {"code": code, "message": message}}, status, list(headers))


def _rate_message(error: errors.APIError, request: Request) -> str:
    route = request.route or ""
    operation = next(
        (name for suffix, name in OPERATIONS.items() if route.endswith("/" + suffix)),
        "ChatCompletions_Create",
    )
    seconds = next((value for name, value in error.headers if name == "retry-after"), DEFAULT_RETRY_SECONDS)
    return _RATE.format(
        operation=operation,
        version=api_version(request) or "v1",
        limit="call" if error.type == "requests" else "token",  # RPM is a call rate, TPM a token rate
        wait="1 second" if seconds == "1" else f"{seconds} seconds",
    )


# Every model id the catalogue knows, longest first: the longest a deployment's name starts with wins.
_KNOWN_MODELS = sorted(
    {*(model for model, _, _ in OPENAI_MODELS), *CHAT_MODELS, *COMPLETION_MODELS}, key=len, reverse=True
)


@functools.lru_cache(maxsize=256)
def underlying_model(deployment: str) -> Optional[str]:
    """The known model a deployment's name names: itself, or the longest id it starts with before a dash."""
    for known in _KNOWN_MODELS:
        if deployment == known or deployment.startswith(known + "-"):
            return known
    return None


AZURE = Azure()
