"""The one error type every handler raises, rendered as the OpenAI error envelope.

Raise an ``APIError`` (usually through a factory below) anywhere while handling
a request; the app turns it into ``{"error": {"message", "type", "param",
"code"}}`` with its status and headers. The factories carry the real API's
wording so that clients which match on messages or codes behave as in
production.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple


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
