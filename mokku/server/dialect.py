"""A dialect: how one provider's API speaks besides its bodies.

Every route belongs to a dialect (OpenAI's unless it says otherwise). The dialect renders the
errors of its routes in its provider's envelope, finds the API key where its clients send it,
and names the headers its provider adds to every answer (request id, rate limits). The bodies
themselves are the endpoints' business; the errors are raised once, as ``APIError``, and only
rendered here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterable, List, NamedTuple, Tuple

from mokku import errors
from mokku.credentials import bearer_key
from mokku.server import cors
from mokku.server.http import Headers, Request, Response, encoded_json_response, error_body, error_response

if TYPE_CHECKING:
    from mokku.server.stream import Event

OPENAI_VERSION = "2020-10-01"


class Limit(NamedTuple):
    """One rate limit's state, for the headers: its kind (requests, tokens), capacity, what is left,
    and the seconds until it is full again."""

    kind: str
    limit: int
    remaining: int
    reset_seconds: float


class Dialect:
    """OpenAI's: its error envelope, ``Authorization: Bearer``, ``x-request-id`` and ``x-ratelimit-*``."""

    name = "openai"
    provider = "openai"  # gen_ai.provider.name

    def error_response(self, error: errors.APIError, request: Request) -> Response:
        """The envelope as the real API writes it, indented (clients such as LiteLLM look for
        ``"code": "context_length_exceeded"`` in it); ``credit-error``'s 402 as it has always been."""
        if error.status == 402:
            return error_response(error)
        return encoded_json_response(error_body(error), error.status, error.headers)

    # What a dialect adds to chat and completions answers (Azure: its content-filter results).
    decorates = False

    # Legacy completions refuse an embedding model: Azure's words for it are known, OpenAI's are not
    # (so its route serves one).
    completions_refuse_embedding_models = False

    # A flagged prompt (the ``prompt_filter`` fault) answered as a refusal, not as an error (Anthropic).
    refuses_flagged_prompts = False

    def completion(self, answer: Dict[str, Any], request: Request) -> Dict[str, Any]:
        """A JSON completion as this dialect sends it."""
        return answer

    def completion_events(self, events: Iterable[Event], request: Request) -> Iterable[Event]:
        """A completion's stream as this dialect sends it."""
        return events

    def api_key(self, request: Request) -> str:
        return bearer_key(request.header("Authorization"))

    def answer_model(self, model: str) -> str:
        """The model an answer names (before an alias becomes its snapshot): the one asked for."""
        return model

    def wrong_operation(self, operation: str, model: str) -> errors.APIError:
        """The refusal of ``model`` for an ``operation`` (``errors.CHAT``, ...) of another kind of model."""
        return errors.wrong_operation(operation)

    def response_headers(self, request_id: str, elapsed_ms: int) -> Headers:
        return [
            ("x-request-id", request_id),
            ("openai-version", OPENAI_VERSION),
            ("openai-processing-ms", str(elapsed_ms)),
        ]

    def cross_origin_headers(self, request: Request) -> Headers:
        """What an answer to a browser's request (one with an ``Origin``) adds: any origin may read it."""
        return cors.ANY_ORIGIN

    def rate_limit_headers(self, limits: List[Limit]) -> List[Tuple[str, str]]:
        headers = []
        for limit in limits:
            headers += [
                (f"x-ratelimit-limit-{limit.kind}", str(limit.limit)),
                (f"x-ratelimit-remaining-{limit.kind}", str(limit.remaining)),
                (f"x-ratelimit-reset-{limit.kind}", errors.format_duration(limit.reset_seconds)),
            ]
        return headers


OPENAI = Dialect()
