"""The schema-driven generator: every document it makes validates; impossible schemas are refused."""

from __future__ import annotations

import enum
import json
import math
from typing import Any, Dict, List, Literal, Optional

import jsonschema
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mokku.api import schemagen
from mokku.api.schemagen import SchemaError, generate

from .work import at_most

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
    # Patterns no guess satisfies: a string is written from the pattern itself.
    {"type": "string", "pattern": "^\\d{5}$"},
    {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"},
    {"type": "string", "pattern": "^(USD|EUR|GBP)$"},
    {"type": "string", "pattern": "^v\\d+\\.\\d+\\.\\d+$"},
    {"type": "string", "pattern": "^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\\.[a-zA-Z]{2,}$"},
    {"type": "string", "pattern": "^[a-z]+$", "minLength": 30, "maxLength": 31},
    {"type": "string", "pattern": "^\\+?[1-9]\\d{1,14}$"},
    {
        "type": "array",
        "items": {"type": "string", "pattern": "^\\d{5}$"},
        "minItems": 30,
        "uniqueItems": True,
    },
    {
        "type": "array",
        "items": {"type": "string", "pattern": "^(USD|EUR|GBP)$"},
        "minItems": 3,
        "uniqueItems": True,
    },
    # Names for minProperties from patternProperties, where additionalProperties is false.
    {
        "type": "object",
        "patternProperties": {"^x_[a-z]+$": {"type": "integer"}, "^[0-9]{2}$": {"type": "string"}},
        "additionalProperties": False,
        "minProperties": 30,
    },
    {"type": "string", "format": "date-time"},
    {"type": "string", "format": "date"},
    {"type": "string", "format": "email"},
    {"type": "string", "format": "email", "minLength": 30, "maxLength": 40},  # zod's z.email().min(30)
    {"type": "string", "format": "email", "minLength": 254},
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
        {"type": "object", "additionalProperties": False, "minProperties": 1},
        {
            "type": "object",
            "patternProperties": {"^ab$": {}},
            "additionalProperties": False,
            "minProperties": 2,
        },
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


# Whatever the schema, the document validates (Draft 2020-12, as jsonschema checks it) or
# generate() raises SchemaError; and it does so quickly.

NUMBERS = st.sampled_from([0, 1, -1, 2, 3, 7, 10, 0.5, 0.1, 0.25, 1.5, -2.5, 100, 1e-308, 1e308, 1e20])
STEPS = st.sampled_from([1, 2, 3, 7, 10, 0.1, 0.25, 0.5, 1.5, 1e-308, 1e300])
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from([0.5, 1.0, "a", "x", "", "Hello"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abc"), inner, max_size=2),
    max_leaves=5,
)
PATTERNS = st.sampled_from(
    ["^a", "^[0-9]+$", "^[A-Z]{2}-[0-9]{3}$", "x", "^$", "(foo|bar)baz", "^.{3}$", "^(a+)+$"]
)
KINDS = st.sampled_from(["string", "integer", "number", "boolean", "null", "object", "array"])
NAMES = st.sampled_from(["a", "b", "c"])


def _leaves() -> st.SearchStrategy[Any]:
    keywords = {
        "minimum": NUMBERS,
        "maximum": NUMBERS,
        "exclusiveMinimum": NUMBERS,
        "exclusiveMaximum": NUMBERS,
        "multipleOf": STEPS,
        "minLength": st.integers(0, 6),
        "maxLength": st.integers(0, 8),
        "pattern": PATTERNS,
        "minItems": st.integers(0, 3),
        "maxItems": st.integers(0, 4),
        "uniqueItems": st.booleans(),
        "minProperties": st.integers(0, 3),
        "maxProperties": st.integers(0, 3),
    }
    return st.one_of(
        st.booleans(),
        st.builds(dict),
        st.fixed_dictionaries(
            {"type": KINDS | st.lists(KINDS, min_size=1, max_size=3, unique=True)}, optional=keywords
        ),
        st.fixed_dictionaries({"enum": st.lists(VALUES, min_size=1, max_size=4)}),
        st.fixed_dictionaries({"const": VALUES}),
    )


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    some = st.lists(inner, min_size=1, max_size=3)
    return st.one_of(
        st.fixed_dictionaries({"allOf": some}),
        st.fixed_dictionaries({"anyOf": some}),
        st.fixed_dictionaries({"oneOf": some}),
        st.fixed_dictionaries({"not": inner}),
        st.fixed_dictionaries({"if": inner, "then": inner}, optional={"else": inner}),
        st.fixed_dictionaries(
            {"type": st.just("object")},
            optional={
                "properties": st.dictionaries(NAMES, inner, max_size=3),
                "required": st.lists(NAMES, max_size=3, unique=True),
                "additionalProperties": inner,
                "patternProperties": st.dictionaries(st.sampled_from(["^a", "b", "^key"]), inner, max_size=2),
                "propertyNames": inner,
                "minProperties": st.integers(0, 3),
                "maxProperties": st.integers(0, 3),
                "dependentRequired": st.dictionaries(
                    NAMES, st.lists(NAMES, max_size=2, unique=True), max_size=2
                ),
            },
        ),
        st.fixed_dictionaries(
            {"type": st.just("array")},
            optional={
                "items": inner,
                "prefixItems": st.lists(inner, max_size=3),
                "minItems": st.integers(0, 4),
                "maxItems": st.integers(0, 4),
                "uniqueItems": st.booleans(),
                "contains": inner,
                "minContains": st.integers(0, 2),
                "maxContains": st.integers(0, 3),
            },
        ),
        st.tuples(_leaves(), st.sampled_from(["allOf", "anyOf", "oneOf"]), inner, inner).map(
            lambda t: {**t[0], t[1]: [t[2], t[3]]} if isinstance(t[0], dict) else t[0]
        ),
    )


ANY_SCHEMA = st.recursive(_leaves(), _containers, max_leaves=8)


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(ANY_SCHEMA, st.sampled_from(["Hello", "a", "", "42"]))
def test_a_document_validates_or_the_schema_is_refused(schema: Any, text: str) -> None:
    try:
        with at_most(1_000_000):
            value = generate(schema, text)
    except SchemaError:
        return
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(value))
    assert not errors, (value, errors[0].message)


@pytest.mark.parametrize(
    "schema, reason",
    [
        ({"type": "integer", "multipleOf": math.inf}, "multipleOf must be a finite number"),
        ({"allOf": [{"type": "string"}, {"type": "integer"}]}, "types that exclude each other"),
        ({"type": "integer", "enum": ["x"]}, "no enum value satisfies"),
        ({"const": "x", "type": "integer"}, "the const value does not satisfy"),
        ({"type": "string", "not": {"type": "string"}}, "excluded by not"),
        ({"oneOf": [{"type": "string"}, {"type": "string"}]}, "more than one oneOf option"),
        ({"type": "array", "contains": {"type": "integer"}, "maxItems": 0}, "wrong number of items"),
        ({"type": "number", "minimum": math.inf}, "minimum must be a finite number"),
        ({"type": "number", "maximum": math.nan}, "maximum must be a finite number"),
        ({"type": "integer", "minimum": 10**400}, "minimum must be a finite number"),
    ],
)
def test_no_invalid_document(schema: Any, reason: str) -> None:
    with pytest.raises(SchemaError, match=reason):
        generate(schema, TEXT)


@pytest.mark.parametrize(
    "schema",
    [
        {"oneOf": [{"type": "integer"}, {"type": "number"}]},
        {"type": ["string", "integer"], "not": {"type": "string"}},
        {"not": {"type": "string"}},
        {"type": "array", "contains": {"type": "integer"}},
        {"type": "array", "items": {"type": "integer"}, "contains": {"const": 3}, "minContains": 2},
        {"if": {"type": "string"}, "then": {"minLength": 30}, "else": {"type": "integer"}},
        {"type": "object", "properties": {"a": {"type": "string"}}, "dependentRequired": {"a": ["b"]}},
        {"allOf": [{"type": "number"}, {"type": ["integer", "string"]}], "multipleOf": 0.5},
        {"type": "number", "multipleOf": 0.1, "minimum": 0.25},
        {"type": "integer", "multipleOf": 1e300},
        {"type": "number", "minimum": -1e308, "maximum": 1.7e308},
        {"type": "number", "exclusiveMinimum": 1e308},
        {"type": "integer", "minimum": 0, "exclusiveMinimum": True},
    ],
)
def test_satisfiable_schemas_get_a_valid_document(schema: Any) -> None:
    value = generate(schema, TEXT)
    if schema.get("exclusiveMinimum") is not True:  # Draft 4's boolean form: jsonschema reads it as 1
        jsonschema.Draft202012Validator(schema).validate(value)
    assert generate(schema, TEXT) == value


def _self_referencing(count: int) -> Dict[str, Any]:
    return {"type": "object", "properties": {f"p{i}": {"$ref": "#"} for i in range(count)}}


def _nested_arrays(count: int) -> Dict[str, Any]:
    schema: Dict[str, Any] = {"type": "string"}
    for _ in range(3):
        schema = {"type": "array", "minItems": count, "items": schema}
    return schema


@pytest.mark.parametrize(
    "schema, reason",
    [
        # Unbounded, each of these took from seconds to forever, or hundreds of MB.
        ({"anyOf": [{"$ref": "#"}] * 8}, "more than 10,000 schema nodes"),
        ({"anyOf": [{"$ref": "#"}] * 20}, "more than 10,000 schema nodes"),
        (
            {"anyOf": [{"type": "object", "properties": {"x": {"$ref": "#"}}, "required": ["x"]}] * 20},
            "more than 10,000 schema nodes",
        ),
        (_nested_arrays(100), "more than 10,000 schema nodes"),
        ({"type": "array", "minItems": 10**30}, "minItems 1e\\+30 is above mokku's bound of 10,000"),
        ({"type": "array", "minItems": 1e30}, "minItems 1e\\+30 is above"),
        ({"type": "string", "minLength": 20_000_000}, "minLength 20,000,000 is above mokku's bound"),
        ({"type": "string", "minLength": 1e30}, "minLength 1e\\+30 is above"),
        ({"type": "number", "multipleOf": 1e-308, "minimum": 1e308}, "no number satisfies"),
        ({"type": "object", "minProperties": 10**9}, "minProperties 1,000,000,000 is above"),
        ({"type": "array", "minItems": 3000, "items": {"const": list(range(1000))}}, "longer than"),
        ({"type": "string", "pattern": "(a)\\1"}, "backreferences are not supported"),
        ({"type": "string", "pattern": "(?=a)"}, "lookahead"),
        ({"type": "string", "pattern": "a{5000}"}, "too large"),
        ({"type": "string", "pattern": "a", "minLength": 20_000}, "at most 10,000 characters"),
        ({"type": "object", "patternProperties": {"(x)\\1": {}}, "required": ["y"]}, "backreferences"),
    ],
)
def test_bounded_work(schema: Any, reason: str) -> None:
    with pytest.raises(SchemaError, match=reason), at_most(2_000_000):
        generate(schema, TEXT)


def test_optional_content_stops_at_half_the_bounds() -> None:
    """60 optional self-referencing properties: 2.3 MB in 3 s unbounded; now a small document."""
    with at_most(2_000_000):
        value = generate(_self_referencing(60), TEXT)
    assert len(json.dumps(value)) < schemagen.MAX_CHARS // 2
    jsonschema.Draft202012Validator(_self_referencing(60)).validate(value)


def test_a_long_text_is_cut_to_the_output_bound() -> None:
    value = generate(
        {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}, "x" * 3_000_000
    )
    assert len(json.dumps(value)) <= schemagen.MAX_CHARS
    assert value["a"].startswith("xxx")


def test_patterns_are_matched_in_linear_time() -> None:
    with at_most(200_000):  # re.search: 2 s at 24 characters, doubling with each
        value = generate({"type": "string", "pattern": "^(a+)+$"}, "a" * 9_000 + "!")
    assert value == "a"


def test_a_long_enum_checked_against_itself_is_bounded_work() -> None:
    """Each value of an enum is tested against a ``not`` of the same enum: a membership test is one
    step, so the work grows with the enum, not its square; past the check bound, the bound's 400."""
    values = list(range(20_000))
    with pytest.raises(SchemaError, match="no enum value satisfies"):
        generate({"enum": values, "not": {"enum": values}}, "x")
    values = list(range(100_000))
    with pytest.raises(SchemaError, match="more than 200,000 checks"):
        generate({"enum": values, "not": {"enum": values}}, "x")


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"type": "strang"}}},  # optional: never generated
        {"anyOf": [{"type": "string"}, {"type": "strang"}]},  # a branch not taken
        {
            "type": "object",
            "properties": {"a": {"$ref": "#/$defs/x"}},
            "$defs": {"y": {"type": ["string", 5]}},
        },
        {"type": "array", "items": {"type": "object", "properties": {"b": {"items": {"type": "lst"}}}}},
    ],
)
def test_every_declared_type_is_checked_generated_or_not(schema: Dict[str, Any]) -> None:
    with pytest.raises(SchemaError, match="unknown type"):
        generate(schema, "text")


def test_a_property_named_type_is_no_type() -> None:
    schema = {"type": "object", "properties": {"type": {"type": "string"}}, "required": ["type"]}
    assert generate(schema, "text") == {"type": "text"}
