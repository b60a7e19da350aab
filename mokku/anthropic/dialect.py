"""Anthropic's dialect: its error envelope, ``x-api-key``, ``request-id`` and ``anthropic-ratelimit-*``.

Errors are raised once, as ``APIError`` (OpenAI's fields), wherever they arise: a fault, a bound, a
validation. Here they take Anthropic's envelope, ``{"type": "error", "error": {"type", "message"},
"request_id"}``, with the status and type Anthropic uses for the same case (an overloaded server
is 529, a low credit balance a 400) and its wording for the errors its clients match on.
"""

from __future__ import annotations

import datetime
import re
import time
from typing import Dict, List, Optional, Tuple

from mokku import errors
from mokku.anthropic.models import CLAUDE_ALIASES
from mokku.credentials import bearer_key
from mokku.server import cors
from mokku.server.dialect import Dialect, Limit
from mokku.server.http import Headers, Request, Response, json_response
from mokku.simulation import limits

BROWSER_ACCESS = "anthropic-dangerous-direct-browser-access"  # a browser's opt-in to cross-origin answers

TYPES: Dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

CREDIT = (
    "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade "
    "or purchase credits."
)
USAGE_LIMIT = (
    "You have reached your specified API usage limits. You will regain access when your limits reset."
)
OVERLOADED = "Overloaded"
INTERNAL = "Internal server error"
INVALID_KEY = "invalid x-api-key"
NO_KEY = "x-api-key header is required"
PERMISSION = "Your API key does not have permission to use the specified resource."
TOO_LARGE = "Request exceeds the maximum allowed number of bytes."
_RATE = (
    "This request would exceed the rate limit for your organization of {limit} {unit} per minute. For "
    "details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for "
    "current usage. Please reduce the prompt length or the maximum tokens requested, or try again later."
)


def translate(error: errors.APIError, model: str = "") -> Tuple[int, str, str]:
    """(status, type, message) of ``error`` as Anthropic answers the same case (``model``: the
    request's, which some messages name)."""
    status, message = error.status, error.message
    if error.code == "insufficient_quota":
        return 400, "invalid_request_error", CREDIT if status == 402 else USAGE_LIMIT
    if error.code == "rate_limit_exceeded":
        limit = next((value for name, value in error.headers if name.startswith("x-ratelimit-limit-")), "0")
        unit = "input tokens" if error.type == "tokens" else "requests"
        return 429, "rate_limit_error", _RATE.format(limit=limit, unit=unit)
    context = limits.context_numbers(error)
    if context is not None:
        return 400, "invalid_request_error", _context(*context)
    if status == 503 and error.type == "server_error" and error.code is None:
        return 529, "overloaded_error", OVERLOADED
    if status == 500:
        return 500, "api_error", INTERNAL
    if status == 401:
        return 401, "authentication_error", NO_KEY if message.startswith(errors.NO_KEY) else INVALID_KEY
    if status == 403 and error.code != "admin_disabled":
        return 403, "permission_error", PERMISSION
    if status == 413:
        return 413, "request_too_large", TOO_LARGE
    if status == 400 and message.endswith(_OPENAI_JSON):
        return 400, "invalid_request_error", _json_message(message)
    if error.code == "unknown_parameter":
        return 400, "invalid_request_error", f"{error.param}: Extra inputs are not permitted"
    reworded = _reworded(message, model) if status == 400 else None
    if reworded is not None:
        return 400, "invalid_request_error", reworded
    return status, TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error"), message


_OPENAI_JSON = " The OpenAI API expects a JSON payload."
_PYTHON_ADVICE = "; use sys.set_int_max_str_digits()"  # Python's own remedy, not the client's
_PARSE_REASON = re.compile(r"^We could not parse the JSON body of your request \((.*)\)\.$", re.S)


def _json_message(message: str) -> str:
    """A body that is not JSON, in Anthropic's words: "The request body is not valid JSON: <why>"."""
    message = message[: -len(_OPENAI_JSON)]
    found = _PARSE_REASON.match(message)
    if found is not None:
        return f"The request body is not valid JSON: {found.group(1).split(_PYTHON_ADVICE)[0]}"
    if message.startswith("We could not parse the JSON body of your request: the body is empty"):
        return "The request body is not valid JSON: Expecting value: line 1 column 1 (char 0)"
    return message  # a Content-Type that is not JSON: the message says which


_TOO_MANY_OUTPUT = re.compile(
    r"^max_tokens is too large: (\d+)\. This model supports at most (\d+) completion tokens"
)


def _reworded(message: str, model: str) -> Optional[str]:
    """OpenAI's words for a check mokku shares across dialects, in Anthropic's (None: keep them)."""
    found = _TOO_MANY_OUTPUT.match(message)
    if found is not None:
        dated = CLAUDE_ALIASES.get(model, model)
        return (
            f"max_tokens: {found[1]} > {found[2]}, which is the maximum allowed number of output tokens "
            f"for {dated}"
        )
    return None


def _context(size: int, prompt: int, asked: int) -> str:
    """The context-window error with Anthropic's wording (the numbers from mokku's check)."""
    if prompt > size:
        return f"prompt is too long: {prompt} tokens > {size} maximum"
    return (
        f"input length and `max_tokens` exceed context limit: {prompt} + {asked} > {size}, decrease input "
        "length or `max_tokens` and try again"
    )


def envelope(error_type: str, message: str, request_id: Optional[str]) -> Dict[str, object]:
    return {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}


class Anthropic(Dialect):
    name = "anthropic"
    provider = "anthropic"
    refuses_flagged_prompts = True

    def error_response(self, error: errors.APIError, request: Request) -> Response:
        status, error_type, message = translate(error, request.model or "")
        return json_response(envelope(error_type, message, request.id), status, _headers(error.headers))

    def api_key(self, request: Request) -> str:
        """``x-api-key``, as the SDK sends it (or a bearer token, as ``auth_token`` sends it)."""
        return request.header("X-Api-Key") or bearer_key(request.header("Authorization"))

    def response_headers(self, request_id: str, elapsed_ms: int) -> Headers:
        return [("request-id", request_id), ("x-request-id", request_id)]

    def cross_origin_headers(self, request: Request) -> Headers:
        """Only for a browser that opts in, as the SDK's ``dangerouslyAllowBrowser`` does."""
        if request.header(BROWSER_ACCESS) == "true":
            return cors.ANY_ORIGIN
        return []

    def rate_limit_headers(self, limits: List[Limit]) -> List[Tuple[str, str]]:
        headers = []
        now = time.time()
        for limit in limits:
            kind = "requests" if limit.kind == "requests" else "input-tokens"
            reset = datetime.datetime.fromtimestamp(now + limit.reset_seconds, datetime.timezone.utc)
            headers += [
                (f"anthropic-ratelimit-{kind}-limit", str(limit.limit)),
                (f"anthropic-ratelimit-{kind}-remaining", str(limit.remaining)),
                (f"anthropic-ratelimit-{kind}-reset", reset.strftime("%Y-%m-%dT%H:%M:%SZ")),
            ]
        return headers


def _headers(headers: List[Tuple[str, str]]) -> List[Tuple[str, str]]:
    """An error's headers with its ``x-ratelimit-*`` in Anthropic's names (the reset as a time)."""
    found = dict(headers)
    out = [(name, value) for name, value in headers if not name.startswith("x-ratelimit-")]
    retry_ms = int(found.get("retry-after-ms", "0"))
    for kind in ("requests", "tokens"):
        limit = found.get(f"x-ratelimit-limit-{kind}")
        if limit is not None:
            remaining = found.get(f"x-ratelimit-remaining-{kind}", "0")
            out += ANTHROPIC.rate_limit_headers([Limit(kind, int(limit), int(remaining), retry_ms / 1000)])
    return out


ANTHROPIC = Anthropic()
