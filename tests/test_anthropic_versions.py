"""``anthropic-version``: the versions the real API knows, and what ``2026-10-21`` (the version the
SDK sends today) refuses that ``2023-06-01`` takes."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest
import webtest

from .test_anthropic import HEADERS, URL, body, error

LATEST = dict(HEADERS, **{"anthropic-version": "2026-10-21"})
COUNT = URL + "/count_tokens"


def counted(**extra: Any) -> Dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "Hello"}], **extra}


def refused(
    app: webtest.TestApp, path: str, payload: Dict[str, Any], headers: Dict[str, str]
) -> Dict[str, Any]:
    """The error of a 400 on ``path``, in Anthropic's envelope."""
    envelope = app.post_json(path, payload, headers=headers, status=400).json
    assert envelope["type"] == "error" and set(envelope["error"]) == {"type", "message"}
    found: Dict[str, Any] = envelope["error"]
    return found


@pytest.mark.parametrize("path, payload", [(URL, body()), (COUNT, counted())])
def test_a_version_the_api_does_not_know_is_refused(
    app: webtest.TestApp, path: str, payload: Dict[str, Any]
) -> None:
    for version in ("2023-06-01", "2026-10-21", "2023-01-01"):
        app.post_json(path, payload, headers=dict(HEADERS, **{"anthropic-version": version}))
    for version in ("2024-01-01", "latest", "2023-6-1"):
        found = refused(app, path, payload, dict(HEADERS, **{"anthropic-version": version}))
        assert found == {
            "type": "invalid_request_error",
            "message": f'anthropic-version: "{version}" is not a valid version',
        }


def test_the_model_list_takes_any_version(app: webtest.TestApp) -> None:
    listed = app.get("/v1/models", headers={"anthropic-version": "2024-01-01"}).json
    assert listed["data"][0]["type"] == "model"


@pytest.mark.parametrize(
    "sampling",
    [{"temperature": 1}, {"temperature": 0}, {"top_p": 1.0}, {"top_k": 5}, {"temperature": None}],
)
@pytest.mark.parametrize("path", [URL, COUNT])
def test_2026_10_21_takes_no_sampling_parameters(
    app: webtest.TestApp, path: str, sampling: Dict[str, Any]
) -> None:
    payload = body(**sampling) if path == URL else counted(**sampling)
    (name,) = sampling
    found = refused(app, path, payload, LATEST)
    assert found == {"type": "invalid_request_error", "message": f"{name}: Extra inputs are not permitted"}
    app.post_json(path, payload, headers=HEADERS)  # 2023-06-01 takes them
    app.post_json(path, body() if path == URL else counted(), headers=LATEST)


def test_the_first_sampling_parameter_is_named_before_other_checks(app: webtest.TestApp) -> None:
    thinking = {"type": "enabled", "budget_tokens": 1024}
    payload = body(max_tokens=2048, thinking=thinking, top_k=5, temperature=0.5)
    assert error(app, payload, 400, LATEST)["message"] == "top_k: Extra inputs are not permitted"
    assert "`temperature` may only be set to 1" in error(app, payload, 400)["message"]


DOCUMENT = {
    "type": "document",
    "source": {"type": "text", "media_type": "text/plain", "data": "Grass is green."},
}
CITATION = {
    "type": "char_location",
    "cited_text": "Grass is green.",
    "document_index": 0,
    "document_title": None,
    "start_char_index": 0,
    "end_char_index": 15,
}


def cited(citations: Any) -> Dict[str, Any]:
    return {"type": "text", "text": "Grass is green.", "citations": citations}


def search_result(*texts: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "type": "search_result",
        "source": "https://example.com",
        "title": "Grass",
        "content": list(texts),
    }


def text(words: str) -> Dict[str, Any]:
    return {"type": "text", "text": words}


def turns(user: List[Any], assistant: List[Any]) -> List[Dict[str, Any]]:
    return [
        {"role": "user", "content": user},
        {"role": "assistant", "content": assistant},
        {"role": "user", "content": "And?"},
    ]


@pytest.mark.parametrize(
    "messages, where, problem",
    [
        (
            turns([text("Read this")], [text("Here:"), DOCUMENT]),
            "messages.1.content.1",
            "document blocks are not allowed in assistant messages",
        ),
        (
            turns([text("See"), cited([CITATION])], [text("Noted.")]),
            "messages.0.content.1.citations",
            "citations are not allowed on text in user messages",
        ),
        (
            turns([search_result(cited(None), cited([CITATION]))], [text("Noted.")]),
            "messages.0.content.0.content.1.citations",
            "citations are not allowed on text in user messages",
        ),
    ],
)
@pytest.mark.parametrize("path", [URL, COUNT])
def test_2026_10_21_refuses_assistant_documents_and_user_citations(
    app: webtest.TestApp, path: str, messages: List[Any], where: str, problem: str
) -> None:
    payload = body(messages=messages) if path == URL else counted(messages=messages)
    found = refused(app, path, payload, LATEST)
    assert found == {"type": "invalid_request_error", "message": f"{where}: {problem}"}
    app.post_json(path, payload, headers=HEADERS)  # 2023-06-01 takes them


def test_2026_10_21_takes_nested_documents_empty_citations_and_assistant_citations(
    app: webtest.TestApp,
) -> None:
    fetched = {
        "type": "web_fetch_tool_result",
        "tool_use_id": "srvtoolu_1",
        "content": {"type": "web_fetch_result", "url": "https://example.com", "content": DOCUMENT},
    }
    cited_document = dict(DOCUMENT, citations={"enabled": True})
    for messages in (
        turns([cited_document, cited([]), cited(None)], [fetched, cited([CITATION])]),
        turns([search_result(cited([]))], [text("Noted.")]),
    ):
        app.post_json(URL, body(messages=messages), headers=LATEST)
