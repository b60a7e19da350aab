"""openapi.yml: a valid document, true to the routes, to the official schemas, served as YAML and as its
JSON twin openapi.json."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple

import jsonschema
import pytest
import webtest
import yaml
from openapi_spec_validator import validate as validate_openapi

from mokku import config
from mokku.server.routes import build_routes
from mokku.simulation.faults import SIMULATION_MODELS

from . import spec
from .spec import validate

ROOT = Path(__file__).resolve().parents[1]
DOCUMENT_TEXT = (ROOT / "openapi.yml").read_text(encoding="utf-8")
DOCUMENT = yaml.safe_load(DOCUMENT_TEXT)
TWIN_TEXT = (ROOT / "openapi.json").read_text(encoding="utf-8")

METHODS = ("get", "post", "put", "patch", "delete")

# The official response schema each operation's 200 answer follows.
OFFICIAL_RESPONSES = {
    "listModels": "ListModelsResponse",
    "retrieveModel": "Model",
    "deleteModel": "DeleteModelResponse",
    "azureDeleteModel": "DeleteModelResponse",
    "azureV1DeleteModel": "DeleteModelResponse",
    "createChatCompletion": "CreateChatCompletionResponse",
    "createCompletion": "CreateCompletionResponse",
    "createEmbedding": "CreateEmbeddingResponse",
    "geminiOpenAICreateChatCompletion": "CreateChatCompletionResponse",
    "geminiOpenAICreateEmbedding": "CreateEmbeddingResponse",
    "createModeration": "CreateModerationResponse",
    "azureV1CreateModeration": "CreateModerationResponse",
    "createResponse": "Response",
    "countResponseInputTokens": "TokenCountsResource",
    "compactResponse": "CompactResource",
    "azureV1CountResponseInputTokens": "TokenCountsResource",
    "azureV1CompactResponse": "CompactResource",
}


def test_document_is_valid_openapi_3_1() -> None:
    assert DOCUMENT["openapi"].startswith("3.1")
    validate_openapi(DOCUMENT)


def test_document_describes_exactly_the_routes() -> None:
    served = {(route.method.lower(), route.name) for route in build_routes(config.load({}))}
    documented = {
        (method, path) for path, item in DOCUMENT["paths"].items() for method in item if method in METHODS
    }
    assert documented == served


def test_simulation_models_are_documented() -> None:
    for model in SIMULATION_MODELS:
        assert f"`{model}`" in DOCUMENT["info"]["description"]


def _operations() -> Iterator[Tuple[str, str, Dict[str, Any]]]:
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def _resolve(node: Dict[str, Any]) -> Dict[str, Any]:
    while "$ref" in node:
        parts = node["$ref"].lstrip("#/").split("/")
        node = DOCUMENT
        for part in parts:
            node = node[part]
    return node


def _examples() -> Iterator[Tuple[str, str, Any]]:
    for _, _, operation in _operations():
        for status, response in operation["responses"].items():
            content = _resolve(response).get("content", {})
            media = content.get("application/json")
            if media and "example" in media:
                yield operation["operationId"], status, media["example"]


@pytest.mark.parametrize(("operation_id", "status", "example"), list(_examples()))
def test_examples_match_the_official_schemas(operation_id: str, status: str, example: Any) -> None:
    if status != "200":
        validate(example, "ErrorResponse")
    elif operation_id in OFFICIAL_RESPONSES:
        validate(example, OFFICIAL_RESPONSES[operation_id])
    else:  # mokku's own endpoints (health): the document's own schema
        operation = next(op for _, _, op in _operations() if op["operationId"] == operation_id)
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        jsonschema.validate(example, schema)


def test_every_generation_operation_has_an_example() -> None:
    assert {operation for operation, status, _ in _examples() if status == "200"} >= set(OFFICIAL_RESPONSES)


# Where the official document is narrower than the real API's wire format.
WIDER_THAN_OFFICIAL = {
    ("Embedding", "embedding"): "with encoding_format base64 the real API sends a string",
}


def _json_types(schema: Dict[str, Any], official: Dict[str, Any]) -> set:
    """The JSON types a schema admits, following $ref, anyOf/oneOf and the old ``nullable``."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        source = official if official is not DOCUMENT else DOCUMENT
        return _json_types(source["components"]["schemas"][name], official)
    types: set = set()
    declared = schema.get("type")
    if isinstance(declared, list):
        types.update(declared)
    elif declared:
        types.add(declared)
    for key in ("anyOf", "oneOf"):
        for option in schema.get(key, []):
            types |= _json_types(option, official)
    if schema.get("nullable"):
        types.add("null")
    return types


@pytest.fixture(scope="module")
def official() -> Dict[str, Any]:
    with spec.require_document().open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _object_schema(schema: Dict[str, Any], document: Dict[str, Any]) -> Dict[str, Any]:
    """The object form of a schema: itself, its non-null anyOf/oneOf option, or its allOf merged."""
    if "$ref" in schema:
        return _object_schema(document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]], document)
    if "allOf" in schema:
        merged: Dict[str, Any] = {"properties": {}}
        for part in schema["allOf"]:
            part = _object_schema(part, document)
            merged["properties"].update(part.get("properties", {}))
            if part.get("required"):
                merged["required"] = merged.get("required", []) + part["required"]
        return merged
    for key in ("anyOf", "oneOf"):
        for option in schema.get(key, []):
            if "properties" in _object_schema(option, document):
                return _object_schema(option, document)
    return schema


def test_schemas_agree_with_the_official_ones(official: Dict[str, Any]) -> None:
    """Same names, required fields and property types as the official schemas of the same name."""
    theirs = official["components"]["schemas"]
    shared = [name for name in DOCUMENT["components"]["schemas"] if name in theirs]
    assert len(shared) >= 20
    for name in shared:
        ours = _object_schema(DOCUMENT["components"]["schemas"][name], DOCUMENT)
        reference = _object_schema(theirs[name], official)
        if "required" in reference:
            assert set(ours.get("required", [])) == set(reference["required"]), name
        for prop, schema in ours.get("properties", {}).items():
            assert prop in reference.get("properties", {}), f"{name}.{prop} is not an official field"
            our_types = _json_types(schema, DOCUMENT) - {"null"}
            their_types = _json_types(reference["properties"][prop], official) - {"null"}
            if our_types and their_types and (name, prop) not in WIDER_THAN_OFFICIAL:
                assert our_types <= their_types, f"{name}.{prop}: {our_types} vs {their_types}"


def _twin_writer() -> Any:
    path = ROOT / ".ci" / "openapi_json.py"
    module_spec = importlib.util.spec_from_file_location("openapi_json", path)
    assert module_spec and module_spec.loader
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


REGENERATE = "openapi.json differs from openapi.yml: run `python .ci/openapi_json.py` to regenerate it"


def test_json_twin_is_the_yaml_document() -> None:
    assert json.loads(TWIN_TEXT) == DOCUMENT, REGENERATE
    assert TWIN_TEXT == _twin_writer().render(DOCUMENT_TEXT), REGENERATE  # and laid out as written


def test_served_yaml_and_json(app: webtest.TestApp) -> None:
    response = app.get("/openapi.yml")
    assert response.content_type == "application/yaml"
    assert response.body.decode("utf-8") == DOCUMENT_TEXT
    response = app.get("/openapi.json")
    assert response.content_type == "application/json"
    assert response.body.decode("utf-8") == TWIN_TEXT
    assert response.json == DOCUMENT
