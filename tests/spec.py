"""Validate mokku's responses against the official OpenAI OpenAPI document.

The document lives beside the project in ``shared/reference``; a test that
checks against it fails when it is missing. OpenAPI 3.0's ``nullable: true`` (still
used by some schemas) is rewritten into JSON Schema's ``anyOf [..., null]``.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import pytest

SPEC_PATH = Path(__file__).resolve().parents[2] / "shared" / "reference" / "openai-openapi.yaml"
_BASE = "urn:openai-openapi"


def _fix_nullable(node: Any) -> Any:
    if isinstance(node, dict):
        fixed = {key: _fix_nullable(value) for key, value in node.items() if key != "nullable"}
        if node.get("nullable") is True:
            return {"anyOf": [fixed, {"type": "null"}]}
        return fixed
    if isinstance(node, list):
        return [_fix_nullable(item) for item in node]
    return node


@functools.cache
def _registry() -> Any:
    import yaml
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC_PATH.open(encoding="utf-8") as handle:
        document = _fix_nullable(yaml.load(handle, Loader=loader))
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    return Registry().with_resource(_BASE, resource)


@functools.cache
def _validator(schema_name: str) -> Any:
    from jsonschema import Draft202012Validator

    schema = {"$ref": f"{_BASE}#/components/schemas/{schema_name}"}
    return Draft202012Validator(schema, registry=_registry())


def require_document() -> Path:
    """The official document's path; fails the test when the document is missing."""
    if not SPEC_PATH.is_file():
        pytest.fail(
            f"the official OpenAI OpenAPI document is missing: expected {SPEC_PATH} "
            "(shared/reference/openai-openapi.yaml beside the project), which the schema checks need",
            pytrace=False,
        )
    return SPEC_PATH


def validate(instance: Any, schema_name: str) -> None:
    """Fail the test when ``instance`` does not match the official schema ``schema_name`` (or when
    the official document is missing)."""
    require_document()
    errors = sorted(_validator(schema_name).iter_errors(instance), key=lambda e: list(e.path))
    if errors:
        details = "\n".join(f"- {list(e.path)}: {e.message}" for e in errors[:10])
        pytest.fail(f"response does not match {schema_name}:\n{details}")


def assert_invalid_request(body: Any, param: Any, code: Any, message: str) -> None:
    """``body`` is a 400 envelope naming ``param`` with ``code``, its message matching the regex ``message``."""
    validate(body, "ErrorResponse")
    error = body["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    assert re.search(message, error["message"]), error["message"]
