"""The one error type every handler raises, rendered as the OpenAI error envelope.

Raise an ``APIError`` (usually through a factory below) anywhere while handling
a request; the app turns it into ``{"error": {"message", "type", "param",
"code"}}`` with its status and headers. The factories carry the real API's
wording so that clients which match on messages or codes behave as in
production.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mokku.credentials import mask_key


def json_type(value: Any) -> str:
    """The JSON type of ``value`` with its article, as error messages name it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


class APIError(Exception):
    """An error response: HTTP status plus the fields of the OpenAI error object."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: Optional[str] = None,
        code: Optional[str] = None,
        headers: Sequence[Tuple[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers: List[Tuple[str, str]] = list(headers)

    def to_dict(self) -> Dict[str, Dict[str, Optional[str]]]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def invalid_request(message: str, param: Optional[str] = None, code: Optional[str] = None) -> APIError:
    """400: the request is malformed or a field holds a value the API rejects."""
    return APIError(400, message, "invalid_request_error", param, code)


def invalid_url(method: str, path: str) -> APIError:
    """404 for a path no route serves, worded as the real API words it."""
    return APIError(404, f"Invalid URL ({method} {path})", "invalid_request_error")


def method_not_allowed(method: str, path: str, allowed: Sequence[str]) -> APIError:
    """405: the path exists but not for this method; ``Allow`` lists the methods that work."""
    allow = ", ".join(allowed)
    return APIError(
        405,
        f"Method not allowed ({method} {path}); this URL accepts: {allow}",
        "invalid_request_error",
        headers=[("Allow", allow)],
    )


def model_not_found(model: str) -> APIError:
    """404 for a model id that ``/v1/models/{model}`` does not know."""
    return APIError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        "invalid_request_error",
        code="model_not_found",
    )


def responses_only() -> APIError:
    """404 for chat with a model the real API serves on the Responses API alone."""
    return APIError(
        404,
        "This model is only supported in v1/responses and not in v1/chat/completions.",
        "invalid_request_error",
        "model",
    )


# The operations a model may not be made for, in Azure's names for them.
CHAT, COMPLETION, EMBEDDINGS = "chatCompletion", "completion", "embeddings"


def wrong_operation(operation: str) -> APIError:
    """A model of another kind, as OpenAI answers it: 404 for a chat model on legacy completions or
    another on chat, 403 for any but an embedding model on embeddings."""
    if operation == EMBEDDINGS:
        return APIError(
            403, "You are not allowed to generate embeddings from this model", "invalid_request_error"
        )
    if operation == COMPLETION:
        message = "This is a chat model and not supported in the v1/completions endpoint. Did you mean to use v1/chat/completions?"
    else:
        message = "This is not a chat model and thus not supported in the v1/chat/completions endpoint. Did you mean to use v1/completions?"
    return APIError(404, message, "invalid_request_error", "model")


def body_too_large(limit: int) -> APIError:
    """413: the body is larger than ``MOKKU_MAX_BODY_BYTES``; it is not read."""
    return APIError(
        413,
        f"Request body too large: the limit is {limit} bytes.",
        "invalid_request_error",
        code="request_too_large",
    )


def server_error() -> APIError:
    """500 for an unexpected exception; the details go to the log, not the client."""
    return APIError(
        500,
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
    )


def insufficient_quota(status: int = 429) -> APIError:
    """Quota exhausted: 429 as the real API sends it, 402 for the ``credit-error`` model."""
    return APIError(
        status,
        "You exceeded your current quota, please check your plan and billing details.",
        "insufficient_quota",
        code="insufficient_quota",
    )


# What the simulated faults raise, worded as the real API words it.


def simulated_server_error() -> APIError:
    """500 as the real API sends it (the ``server_error`` fault, and a stream's ``error`` event)."""
    return APIError(
        500,
        "The server had an error processing your request. Sorry about that! You can retry your request, "
        "or contact us through our help center at help.openai.com if you keep seeing this error.",
        "server_error",
    )


def overloaded() -> APIError:
    return APIError(503, "The engine is currently overloaded, please try again later.", "server_error")


def invalid_prompt() -> APIError:
    """400: the prompt was flagged (the ``prompt_filter`` fault; Azure answers its content filter's 400)."""
    return APIError(
        400,
        "Invalid prompt: your prompt was flagged as potentially violating our usage policy. Please try again "
        "with a different prompt: https://platform.openai.com/docs/guides/reasoning#advice-on-prompting",
        "invalid_request_error",
        code="invalid_prompt",
    )


def unsupported_region() -> APIError:
    return APIError(
        403,
        "Country, region, or territory not supported",
        "request_forbidden",
        code="unsupported_country_region_territory",
    )


def format_duration(seconds: float) -> str:
    """Durations as the real API's rate-limit headers write them (Go's): ``120ms``, ``20s``, ``6m0s``,
    ``2h24m0s``."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    rest_text = f"{rest:.3f}".rstrip("0").rstrip(".")
    if minutes < 60:
        return f"{int(minutes)}m{rest_text}s" if minutes else f"{rest_text}s"
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}h{minutes}m{rest_text}s"


_RATE_UNITS = {"requests": "requests per min (RPM)", "tokens": "tokens per min (TPM)"}


def rate_limited(
    model: str,
    kind: str,
    limit: int,
    used: int,
    requested: int,
    retry_ms: int,
    others: Sequence[Tuple[str, str]] = (),
) -> APIError:
    """429 ``rate_limit_exceeded`` on requests (RPM) or tokens (TPM), with the retry headers, the
    refused limit's and then ``others`` (the other limit's ``x-ratelimit-*``)."""
    wait = format_duration(retry_ms / 1000)
    return APIError(
        429,
        f"Rate limit reached for {model} in organization org-mokku on {_RATE_UNITS[kind]}: Limit {limit}, "
        f"Used {used}, Requested {requested}. Please try again in {wait}. "
        "Visit https://platform.openai.com/account/rate-limits to learn more.",
        kind,
        code="rate_limit_exceeded",
        headers=(
            ("retry-after", str(max(1, math.ceil(retry_ms / 1000)))),
            ("retry-after-ms", str(retry_ms)),
            (f"x-ratelimit-limit-{kind}", str(limit)),
            (f"x-ratelimit-remaining-{kind}", "0"),
            (f"x-ratelimit-reset-{kind}", wait),
            *others,
        ),
    )


def request_too_large(model: str, limit: int, requested: int) -> APIError:
    """429 for a request larger than the whole TPM limit: waiting cannot help, so no retry headers."""
    return APIError(
        429,
        f"Request too large for {model} in organization org-mokku on {_RATE_UNITS['tokens']}: Limit {limit}, "
        f"Requested {requested}. The input or output tokens must be reduced in order to run successfully. "
        "Visit https://platform.openai.com/account/rate-limits to learn more.",
        "tokens",
        code="rate_limit_exceeded",
        headers=(("x-ratelimit-limit-tokens", str(limit)),),
    )


NO_KEY = "You didn't provide an API key."


def invalid_api_key(key: str) -> APIError:
    """401: no key, or a wrong one (shown masked, as the real API shows it)."""
    if not key:
        return APIError(
            401,
            f"{NO_KEY} You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank "
            "username) if you're accessing the API from your browser and are prompted for a username. "
            "You can obtain an API key from https://platform.openai.com/account/api-keys.",
        )
    return APIError(
        401,
        f"Incorrect API key provided: {mask_key(key)}. "
        "You can find your API key at https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    )
