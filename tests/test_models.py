"""``/v1/models`` in-process: the catalogue, retrieval, configured models, 404s."""

from __future__ import annotations

from pathlib import Path
from typing import Callable
from urllib.parse import quote

import pytest
import webtest

from mokku.api.models import ECHO_MODEL, OPENAI_MODELS, SIMULATION_MODELS, SNAPSHOTS

from .spec import validate


def test_list_models_shape(app: webtest.TestApp) -> None:
    body = app.get("/v1/models").json
    validate(body, "ListModelsResponse")
    assert body["object"] == "list"
    ids = [model["id"] for model in body["data"]]
    assert len(ids) == len(set(ids))
    for wanted in (
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-3.5-turbo-instruct",
        "text-embedding-3-small",
        "mokku-echo-1",
        "credit-error",
    ):
        assert wanted in ids
    for model in body["data"]:
        assert set(model) == {"id", "object", "created", "owned_by", "shutdown_date"}
        assert model["object"] == "model"
        assert isinstance(model["created"], int) and model["created"] > 1_600_000_000


def test_list_covers_catalogue_snapshots_echo_and_simulations(app: webtest.TestApp) -> None:
    ids = [model["id"] for model in app.get("/v1/models").json["data"]]
    real = [entry[0] for entry in OPENAI_MODELS]
    assert [model for model in ids if model in real] == real
    assert ids[len(ids) - len(SIMULATION_MODELS) - 1 :] == [ECHO_MODEL, *SIMULATION_MODELS]
    # each alias is followed by the snapshot it serves
    assert ids[ids.index("gpt-4o") + 1] == SNAPSHOTS["gpt-4o"] == "gpt-4o-2024-08-06"
    assert ids[ids.index("gpt-5.5") + 1] == "gpt-5.5-2026-04-23"


@pytest.mark.parametrize(
    "model", ["gpt-6-sol", "gpt-6.2-astra", "gpt-5.6-luna", "gpt-5.5-pro", "chat-latest"]
)
def test_current_models_are_listed(app: webtest.TestApp, model: str) -> None:
    body = app.get(f"/v1/models/{model}").json
    validate(body, "Model")
    assert (body["owned_by"], body["shutdown_date"]) == ("system", None)


@pytest.mark.parametrize(
    "model, shutdown",
    [
        ("gpt-4o", "2027-01-14"),
        ("gpt-4o-2024-08-06", "2027-01-14"),
        ("gpt-5", "2026-12-11"),
        ("gpt-5.1", "2027-04-01"),
    ],
)
def test_deprecated_models_carry_their_shutdown_date(app: webtest.TestApp, model: str, shutdown: str) -> None:
    assert app.get(f"/v1/models/{model}").json["shutdown_date"] == shutdown


@pytest.mark.parametrize(
    "model", ["gpt-3.5-turbo", "gpt-4", "o1", "o3-mini", "o4-mini", "gpt-4-turbo", "gpt-4.1-nano"]
)
def test_shut_down_models_are_gone_but_still_answer(app: webtest.TestApp, model: str) -> None:
    assert app.get(f"/v1/models/{model}", status=404).json["error"]["code"] == "model_not_found"
    chat = {"model": model, "messages": [{"role": "user", "content": "still here"}]}
    assert app.post_json("/v1/chat/completions", chat).json["model"] == SNAPSHOTS[model]


def test_an_answer_names_a_model_the_list_has(app: webtest.TestApp) -> None:
    listed = {model["id"] for model in app.get("/v1/models").json["data"]}
    for model in [entry[0] for entry in OPENAI_MODELS if not entry[0].startswith("text-embedding")]:
        if model == "gpt-3.5-turbo-instruct" or model.endswith(("-pro", "-codex", "-codex-max")):
            continue
        chat = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        assert app.post_json("/v1/chat/completions", chat).json["model"] in listed


@pytest.mark.parametrize("model", ["gpt-4o", "text-embedding-3-large", "mokku-echo-1", "credit-error"])
def test_retrieve_model(app: webtest.TestApp, model: str) -> None:
    body = app.get(f"/v1/models/{model}").json
    validate(body, "Model")
    assert body["id"] == model
    assert body["object"] == "model"


@pytest.mark.parametrize("model", ["mokku-echo-1", "credit-error"])
def test_own_models_are_owned_by_mokku(app: webtest.TestApp, model: str) -> None:
    assert app.get(f"/v1/models/{model}").json["owned_by"] == "mokku"


def test_echo_model_echoes(app: webtest.TestApp) -> None:
    body = app.post_json(
        "/v1/chat/completions",
        {"model": "mokku-echo-1", "messages": [{"role": "user", "content": "said back"}]},
    ).json
    assert body["model"] == "mokku-echo-1"
    assert body["choices"][0]["message"]["content"] == "said back"


@pytest.mark.parametrize("model", ["gpt-nope", "ft:gpt-4o-mini:my-org:custom:abc123", "org/model:v1"])
def test_unknown_model_is_404_model_not_found(app: webtest.TestApp, model: str) -> None:
    response = app.get(f"/v1/models/{model}", status=404)
    body = response.json
    validate(body, "ErrorResponse")
    assert body["error"] == {
        "message": f"The model `{model}` does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "param": None,
        "code": "model_not_found",
    }


def test_fine_tunes_and_configured_models_are_deleted_others_do_not_exist(
    make_app: Callable[..., webtest.TestApp],
) -> None:
    app = make_app({"MOKKU_MODELS": "org/llama:8b"})
    for model in ("ft:gpt-4o-mini:my-org:custom:abc123", "org/llama:8b"):
        body = app.delete(f"/v1/models/{model}").json
        validate(body, "DeleteModelResponse")
        assert body == {"id": model, "object": "model", "deleted": True}
    for model in ("gpt-4o", "gpt-nope", "ft:", "ft:x@429", "ft:gpt-4o:org:s:" + "a" * 8000, "ft:a%00b:o:s:i"):
        body = app.delete(f"/v1/models/{model}", status=404).json
        validate(body, "ErrorResponse")
        assert body["error"] == {
            "message": "That model does not exist",
            "type": "invalid_request_error",
            "param": "model",
            "code": None,
        }


def test_anthropic_and_gemini_model_lists_delete_nothing(app: webtest.TestApp) -> None:
    refused = app.delete(
        "/v1/models/claude-sonnet-4-5", headers={"anthropic-version": "2023-06-01"}, status=405
    )
    assert refused.json["type"] == "error" and refused.headers["Allow"] == "GET, HEAD"
    refused = app.delete("/v1/models/gemini-2.5-flash", headers={"x-goog-api-key": "k"}, status=404)
    assert refused.json["error"]["status"] == "NOT_FOUND"  # Google's answer to a method it lacks


def test_configured_models_are_listed_and_retrievable(make_app: Callable[..., webtest.TestApp]) -> None:
    app = make_app({"MOKKU_MODELS": "my-model, ft:gpt-4o-mini:org:x:1 ,org/llama:8b,gpt-4o"})
    ids = [model["id"] for model in app.get("/v1/models").json["data"]]
    assert ids[-3:] == ["my-model", "ft:gpt-4o-mini:org:x:1", "org/llama:8b"]
    assert ids.count("gpt-4o") == 1
    for model in ("ft:gpt-4o-mini:org:x:1", "org/llama:8b"):
        body = app.get(f"/v1/models/{model}").json
        validate(body, "Model")
        assert body["id"] == model
        assert body["owned_by"] == "user"


def test_models_file(make_app: Callable[..., webtest.TestApp], tmp_path: Path) -> None:
    path = tmp_path / "models.txt"
    path.write_text("# local models\nllama-3-8b\n\nmistral-7b  # quantised\n", encoding="utf-8")
    app = make_app({"MOKKU_MODELS_FILE": str(path), "MOKKU_MODELS": "extra"})
    ids = [model["id"] for model in app.get("/v1/models").json["data"]]
    assert ids[-3:] == ["extra", "llama-3-8b", "mistral-7b"]


def test_non_ascii_model_id_round_trips(make_app: Callable[..., webtest.TestApp]) -> None:
    app = make_app({"MOKKU_MODELS": "modèle-日本"})
    response = app.get("/v1/models/" + quote("modèle-日本"))
    assert response.json["id"] == "modèle-日本"
    assert "modèle-日本".encode() in response.body
