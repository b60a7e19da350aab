"""The schema-driven generator: every document it makes validates; impossible schemas are refused."""

from __future__ import annotations

import enum
from typing import Any, Dict, List, Literal, Optional

import jsonschema
import pydantic
import pytest

from mokku.api.schemagen import SchemaError, generate

TEXT = "Hello from the echo"

SCHEMAS: List[Dict[str, Any]] = [
    {"type": "string"},
    {"type": "integer"},
    {"type": "number"},
    {"type": "boolean"},
    {"type": "null"},
    {"type": ["string", "null"]},
    {"type": ["null", "integer"]},
    {"enum": ["red", "green", "blue"]},
    {"const": {"fixed": [1, 2]}},
    {"type": "string", "minLength": 50},
    {"type": "string", "maxLength": 3},
    {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{3}$|^a$"},
    {"type": "string", "pattern": "^[0-9]+$"},
    {"type": "string", "format": "date-time"},
    {"type": "string", "format": "date"},
    {"type": "string", "format": "email"},
    {"type": "string", "format": "uuid"},
    {"type": "string", "format": "uri"},
    {"type": "integer", "minimum": 100, "maximum": 105},
    {"type": "integer", "exclusiveMinimum": 5, "exclusiveMaximum": 7},
    {"type": "integer", "multipleOf": 7, "minimum": 30},
    {"type": "number", "minimum": -1.5, "maximum": -1.25},
    {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    {"type": "number", "multipleOf": 0.25, "minimum": 3.1},
    {"type": "array", "items": {"type": "integer"}, "minItems": 3, "uniqueItems": True},
    {"type": "array", "items": {"type": "string"}, "maxItems": 0},
    {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False},
    {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
        "required": ["name", "age"],
        "additionalProperties": False,
    },
    {"type": "object", "additionalProperties": {"type": "integer"}, "minProperties": 2},
    {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a", "b"]},
    {"anyOf": [{"type": "integer"}, {"type": "string"}]},
    {
        "oneOf": [
            {"type": "object", "properties": {"kind": {"const": "a"}}, "required": ["kind"]},
            {"type": "integer"},
        ]
    },
    {
        "allOf": [
            {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]},
            {"required": ["y"], "properties": {"y": {"type": "boolean"}}},
        ]
    },
    {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "value": {"type": "integer"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
                "required": ["value"],
            }
        },
        "$ref": "#/$defs/node",
    },
    {
        "definitions": {
            "item": {
                "type": "object",
                "properties": {"id": {"type": "string", "format": "uuid"}},
                "required": ["id"],
            }
        },
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"$ref": "#/definitions/item"}, "minItems": 2}},
        "required": ["items"],
    },
    {"type": "string", "nullable": True},
    {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"enum": ["x", "y"]}, "minItems": 2, "uniqueItems": True}
        },
        "required": ["tags"],
    },
    {
        "type": "object",
        "properties": {
            "when": {"type": "string", "format": "date-time"},
            "where": {"type": "string", "format": "hostname"},
        },
    },
    {},
    True,
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=range(len(SCHEMAS)))
def test_generated_documents_validate(schema: Any) -> None:
    value = generate(schema, TEXT)
    jsonschema.validate(value, schema, format_checker=jsonschema.FormatChecker())
    assert generate(schema, TEXT) == value  # deterministic


def test_strings_carry_the_echo_text() -> None:
    value = generate(
        {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}, TEXT
    )
    assert value == {"answer": TEXT}


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "minLength": 5, "maxLength": 2},
        {"type": "integer", "minimum": 5, "maximum": 4},
        {"type": "integer", "exclusiveMinimum": 1, "exclusiveMaximum": 2},
        {"enum": []},
        {"type": "object", "properties": {}, "required": ["x"], "additionalProperties": False},
        {
            "$defs": {
                "loop": {
                    "type": "object",
                    "properties": {"next": {"$ref": "#/$defs/loop"}},
                    "required": ["next"],
                }
            },
            "$ref": "#/$defs/loop",
        },
        {"$ref": "https://example.com/schema.json"},
        {"type": "array", "items": {"enum": ["only"]}, "minItems": 2, "uniqueItems": True},
        False,
    ],
)
def test_impossible_schemas_are_refused(schema: Any) -> None:
    with pytest.raises(SchemaError):
        generate(schema, TEXT)


class Color(str, enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(pydantic.BaseModel):
    street: str
    city: str
    zip_code: Optional[str] = None


class Person(pydantic.BaseModel):
    name: str
    age: int
    favourite: Color
    addresses: List[Address]
    nickname: Optional[str]
    role: Literal["admin", "user"]
    scores: Dict[str, float]


def test_pydantic_models_parse() -> None:
    schema = Person.model_json_schema()
    person = Person.model_validate(generate(schema, TEXT))
    assert person.name == TEXT
    assert person.addresses and person.addresses[0].city == TEXT
