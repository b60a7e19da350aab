"""Gemini's dialect: Google's error envelope (``{"error": {"code", "message", "status", "details"}}``),
the key in ``x-goog-api-key`` or ``?key=``.

Errors are raised once, as ``APIError``, and take here the status and the ``google.rpc`` code
Google answers for the same case: a rate limit or an exhausted quota is 429 ``RESOURCE_EXHAUSTED``
with ``RetryInfo``, an overloaded model 503 ``UNAVAILABLE``, a bad key 400 ``INVALID_ARGUMENT``
with ``API_KEY_INVALID`` (no key at all 403 ``PERMISSION_DENIED``), a credit error 429 too (Google has no 402).
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Tuple
from urllib.parse import parse_qs, parse_qsl

from mokku import errors
from mokku.api.ids import random_id
from mokku.gemini.protojson import Violations
from mokku.server.dialect import Dialect
from mokku.server.http import Headers, Request, Response, dumps, json_response
from mokku.simulation import limits

STATUSES: Dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
KEY_INVALID = "API key not valid. Please pass a valid API key."
QUOTA = (
    "You exceeded your current quota, please check your plan and billing details. For more information on "
    "this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
)
INTERNAL = (
    "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting"
)
OVERLOADED = "The model is overloaded. Please try again later."
CONTEXT = "The input token count ({count}) exceeds the maximum number of tokens allowed ({size})."
PERMISSION = "The caller does not have permission"
NO_METHOD = "Method not found."
UNREGISTERED = (
    "Method doesn't allow unregistered callers (callers without established identity). Please use API Key "
    "or other form of API consumer identity to call this API."
)
_TYPE = "type.googleapis.com/google.rpc."
_SAFETY_CATEGORIES = (
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
)


def ratings(blocked: bool) -> List[Dict[str, Any]]:
    """Safety ratings: all negligible, or the first category high and blocked."""
    out: List[Dict[str, Any]] = []
    for index, category in enumerate(_SAFETY_CATEGORIES):
        rating: Dict[str, Any] = {"category": category, "probability": "NEGLIGIBLE"}
        if blocked and index == 0:
            rating = {"category": category, "probability": "HIGH", "blocked": True}
        out.append(rating)
    return out


class Blocked(errors.APIError):
    """The ``prompt_filter`` fault on a generation route, with the prompt's size: the prompt was
    read, and its tokens are counted."""

    def __init__(self, error: errors.APIError, prompt_tokens: int) -> None:
        super().__init__(error.status, error.message, error.type, error.param, error.code, error.headers)
        self.prompt_tokens = prompt_tokens


def prompt_blocked(model: str, prompt_tokens: int = 0) -> Dict[str, Any]:
    """A prompt Gemini's filters block: 200, no candidates, the reason in ``promptFeedback``."""
    return {
        "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": ratings(blocked=True)},
        "usageMetadata": {"promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens},
        "modelVersion": model,
        "responseId": random_id("", 23),
    }


def translate(error: errors.APIError) -> Tuple[int, str, List[Dict[str, Any]]]:
    """(status, message, details) as Google answers the same case."""
    status, message = error.status, error.message
    details: List[Dict[str, Any]] = []
    if isinstance(error, Violations):
        return 400, message, error.details()
    if error.code in ("insufficient_quota", "rate_limit_exceeded"):
        retry = next((int(value) for name, value in error.headers if name == "retry-after-ms"), 60_000)
        seconds = max(1, math.ceil(retry / 1000))
        quota = (
            "GenerateRequestsPerMinutePerProjectPerModel"
            if error.type != "tokens"
            else "GenerateContentInputTokensPerModelPerMinute"
        )
        details = [
            {
                "@type": _TYPE + "QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                        "quotaId": quota,
                    }
                ],
            },
            {
                "@type": _TYPE + "Help",
                "links": [
                    {
                        "description": "Learn more about Gemini API quotas",
                        "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                    }
                ],
            },
            {"@type": _TYPE + "RetryInfo", "retryDelay": f"{seconds}s"},
        ]
        return 429, QUOTA, details
    if status == 405 or (status == 404 and message.startswith("Invalid URL (")):
        return 404, NO_METHOD, details  # Google's front end: a path or an HTTP method it does not serve
    if status == 401 and error.code is None:  # no key at all: Google cannot tell who calls
        return 403, UNREGISTERED, details
    if status == 401:
        details = [
            {
                "@type": _TYPE + "ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
        ]
        return 400, KEY_INVALID, details
    context = limits.context_numbers(error)
    if context is not None:
        size, prompt, asked = context
        return 400, CONTEXT.format(count=prompt + asked, size=size), details
    if status == 503 and error.type == "server_error" and error.code is None:
        return 503, OVERLOADED, details
    if status == 500:
        return 500, INTERNAL, details
    if status == 403:
        return 403, PERMISSION, details
    if status == 413:
        return 400, message, details
    if status == 400 and message.endswith("The OpenAI API expects a JSON payload."):
        return (
            400,
            "Invalid JSON payload received. " + message[: -len(" The OpenAI API expects a JSON payload.")],
            details,
        )
    return status, message, details


def envelope(status: int, message: str, details: List[Dict[str, Any]]) -> Dict[str, Any]:
    error: Dict[str, Any] = {"code": status, "message": message, "status": STATUSES.get(status, "UNKNOWN")}
    if details:
        error["details"] = details
    return {"error": error}


def wants_sse(request: Request) -> bool:
    """``alt=sse`` among the query's parameters (not merely in its text: ``?key=alt=sse`` is a key)."""
    query = request.environ.get("QUERY_STRING", "")
    return "alt=sse" in query and ("alt", "sse") in parse_qsl(query, keep_blank_values=True)


def stream_of(chunk: Dict[str, Any], request: Request) -> Response:
    """One chunk as a whole stream: an SSE event (``?alt=sse``), else a one-element JSON array."""
    if wants_sse(request):
        return Response(
            200, [("Content-Type", "text/event-stream")], [b"data: " + dumps(chunk) + b"\r\n\r\n"]
        )
    return Response(200, [("Content-Type", "application/json")], [b"[" + dumps(chunk) + b"]"])


class Gemini(Dialect):
    name = "gemini"
    provider = "gcp.gemini"

    def api_key(self, request: Request) -> str:
        """``x-goog-api-key``, as the SDK sends it, or the ``key`` query parameter."""
        sent = request.header("X-Goog-Api-Key")
        if sent:
            return sent
        values = parse_qs(request.environ.get("QUERY_STRING", "")).get("key")
        return values[-1] if values else ""

    def response_headers(self, request_id: str, elapsed_ms: int) -> Headers:
        return [("x-request-id", request_id), ("server-timing", f"gfet4t7; dur={elapsed_ms}")]

    def error_response(self, error: errors.APIError, request: Request) -> Response:
        if error.code == "invalid_prompt":  # the prompt_filter fault: Gemini answers 200, blocked
            blocked = prompt_blocked(
                str(request.params.get("model", "")).partition("@")[0],
                error.prompt_tokens if isinstance(error, Blocked) else 0,
            )
            if request.route and request.route.endswith(":streamGenerateContent"):
                return stream_of(blocked, request)
            return json_response(blocked)
        status, message, details = translate(error)
        headers = [
            (name, value)
            for name, value in error.headers
            if not name.startswith(("x-ratelimit-", "retry-after")) and name.lower() != "allow"
        ]
        return json_response(envelope(status, message, details), status, headers)

    def rate_limit_headers(self, limits: Any) -> List[Tuple[str, str]]:
        return []  # Google sends none


GEMINI = Gemini()
