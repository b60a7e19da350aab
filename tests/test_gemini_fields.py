"""Gemini's requests checked as Google's proto3-JSON parser checks them: every nested message's
names (those of google-genai's types), proto3 JSON's scalars, Google's words and ``fieldViolations``."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest
import webtest
from google.genai import types

from mokku.gemini.fields import MESSAGES

KEY = {"x-goog-api-key": "gemini-key"}
GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"
USER = [{"role": "user", "parts": [{"text": "hi"}]}]
SDK_TYPES = (
    "Content Part Blob FileData FunctionCall FunctionResponse ExecutableCode CodeExecutionResult "
    "VideoMetadata GenerationConfig ThinkingConfig SafetySetting Tool FunctionDeclaration Schema "
    "ToolConfig FunctionCallingConfig"
).split()


def camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(word.capitalize() for word in rest)


# What the SDK writes into a message beyond its type's fields (from GenerateContentConfig).
SDK_WRITES = {"GenerationConfig": {"imageConfig"}}


@pytest.mark.parametrize("name", SDK_TYPES)
def test_the_table_holds_the_fields_of_the_sdk_s_type(name: str) -> None:
    sdk = {camel(field) for field in getattr(types, name).model_fields}
    assert set(MESSAGES[name]) == sdk | SDK_WRITES.get(name, set())


def error(app: webtest.TestApp, body: Dict[str, Any], url: str = GENERATE) -> Dict[str, Any]:
    found = app.post_json(url, body, headers=KEY, status=400).json["error"]
    assert found["status"] == "INVALID_ARGUMENT"
    return found


def violations(found: Dict[str, Any]) -> List[Dict[str, str]]:
    (details,) = found["details"]
    assert details["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    return details["fieldViolations"]


def test_an_unknown_name_deep_in_a_schema_is_named_where_it_is(app: webtest.TestApp) -> None:
    tool = {
        "functionDeclarations": [
            {
                "name": "f",
                "parameters": {"type": "object", "properties": {"a": {"type": "STRING", "const": "x"}}},
            }
        ]
    }
    found = error(app, {"contents": USER, "tools": [tool], "foo": 1})
    where = "tools[0].function_declarations[0].parameters.properties[0].value"
    top = 'Invalid JSON payload received. Unknown name "foo": Cannot find field.'
    deep = f"Invalid JSON payload received. Unknown name \"const\" at '{where}': Cannot find field."
    assert found["message"] == deep + "\n" + top
    assert violations(found) == [{"field": where, "description": deep}, {"description": top}]


@pytest.mark.parametrize(
    "config, words",
    [
        ({"topP": "x"}, "Invalid value at 'generation_config.top_p' (TYPE_FLOAT), \"x\""),
        # Past the largest double: no float holds it (it was a 500).
        ({"temperature": 10**400}, "Invalid value at 'generation_config.temperature' (TYPE_FLOAT), 1000"),
        ({"candidateCount": True}, "Invalid value at 'generation_config.candidate_count' (TYPE_INT32), true"),
        (
            {"maxOutputTokens": 1.5},
            "Invalid value at 'generation_config.max_output_tokens' (TYPE_INT32), 1.5",
        ),
        (
            {"responseLogprobs": "yes"},
            "Invalid value at 'generation_config.response_logprobs' (TYPE_BOOL), \"yes\"",
        ),
        (
            {"thinkingConfig": {"thinkingLevel": "ULTRA"}},
            "Invalid value at 'generation_config.thinking_config.thinking_level' "
            '(type.googleapis.com/google.ai.generativelanguage.v1beta.ThinkingLevel), "ULTRA"',
        ),
        ({"thinkingConfig": {"foo": 1}}, "Unknown name \"foo\" at 'generation_config.thinking_config'"),
        (
            {"seed": {"a": 1}},
            "Invalid value at 'generation_config' (seed), Starting an object on a scalar field",
        ),
    ],
)
def test_bad_values_are_named_as_google_names_them(
    app: webtest.TestApp, config: Dict[str, Any], words: str
) -> None:
    assert words in error(app, {"contents": USER, "generationConfig": config})["message"]


def test_a_number_that_reads_as_infinity_is_invalid(app: webtest.TestApp) -> None:
    body = b'{"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"topP": 1e400}}'
    found = app.post(GENERATE, body, headers={**KEY, "Content-Type": "application/json"}, status=400)
    assert "Invalid value at 'generation_config.top_p' (TYPE_FLOAT)" in found.json["error"]["message"]


def test_a_list_for_a_singular_field_and_bad_base64(app: webtest.TestApp) -> None:
    found = error(app, {"contents": USER, "generationConfig": []})
    assert found["message"] == (
        'Invalid JSON payload received. Unknown name "generationConfig": '
        "Proto field is not repeating, cannot start list."
    )
    image = {"inlineData": {"mimeType": "image/png", "data": "!!!"}}
    found = error(app, {"contents": [{"parts": [image]}]})
    where = "contents[0].parts[0].inline_data.data"
    assert violations(found) == [
        {
            "field": where,
            "description": f"Invalid value at '{where}' (TYPE_BYTES), Base64 decoding failed for \"!!!\"",
        }
    ]


def test_what_proto3_json_takes_is_taken(app: webtest.TestApp) -> None:
    config = {
        "maxOutputTokens": "5",
        "candidateCount": 2.0,
        "temperature": "0.5",
        "topK": 40.0,
        "responseSchema": None,
        "thinking_config": {"thinking_budget": "128"},
    }
    schema = {"type": "object", "properties": {"a": {"type": "string", "example": {"any": ["json"]}}}}
    body = {
        "contents": [{"parts": [{"text": "hi"}, {"inline_data": {"mime_type": "image/png", "data": "aGk"}}]}],
        "generationConfig": config,
        "tools": [{"functionDeclarations": [{"name": "f", "parameters": schema}]}, {"googleSearch": {}}],
        "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}],
        "toolConfig": {"functionCallingConfig": {"mode": "NONE"}},
        "labels": {"team": "a"},
    }
    answer = app.post_json(GENERATE, body, headers=KEY).json
    assert len(answer["candidates"]) == 2


def test_count_tokens_and_embeddings_are_checked_too(app: webtest.TestApp) -> None:
    count = error(
        app, {"contents": [{"parts": [{"text": "x", "foo": 1}]}]}, "/v1/models/gemini-2.5-flash:countTokens"
    )
    assert "Unknown name \"foo\" at 'contents[0].parts[0]'" in count["message"]
    embed = error(
        app,
        {"content": {"parts": [{"text": "x"}]}, "taskType": "NOPE"},
        "/v1beta/models/text-embedding-004:embedContent",
    )
    assert '(type.googleapis.com/google.ai.generativelanguage.v1beta.TaskType), "NOPE"' in embed["message"]
    batch = error(
        app,
        {"requests": [{"content": {"parts": [{"text": "x"}]}, "outputDimensionality": "x"}]},
        "/v1beta/models/text-embedding-004:batchEmbedContents",
    )
    assert "Invalid value at 'requests[0].output_dimensionality' (TYPE_INT32), \"x\"" in batch["message"]


def test_nesting_is_capped(app: webtest.TestApp) -> None:
    schema: Dict[str, Any] = {"type": "STRING"}
    for _ in range(150):
        schema = {"type": "ARRAY", "items": schema}
    body = {
        "contents": USER,
        "generationConfig": {"responseMimeType": "application/json", "responseSchema": schema},
    }
    assert "nests deeper than 100 levels" in error(app, body)["message"]


@pytest.mark.parametrize("part", [{}, {"text": None}, {"thought": True}])
def test_a_part_without_data_is_refused(app: webtest.TestApp, part: Dict[str, Any]) -> None:
    contents = [*USER, {"role": "user", "parts": [part]}]
    assert error(app, {"contents": contents})["message"] == (
        "* GenerateContentRequest.contents[1].parts[0].data: "
        "required oneof field 'data' must have one initialized field\n"
    )


def test_a_part_with_two_data_fields_is_refused(app: webtest.TestApp) -> None:
    part = {"text": "a", "inlineData": {"mimeType": "image/png", "data": "aGk="}}
    found = error(app, {"contents": [{"parts": [part]}]})
    words = "Invalid value at 'contents[0].parts[0]' (oneof), oneof field 'data' is already set. Cannot set 'inlineData'"
    assert found["message"] == words
    assert violations(found) == [{"field": "contents[0].parts[0]", "description": words}]


@pytest.mark.parametrize("name", ["has space!", "9lives", "a" * 65, "ünï"])
def test_a_function_name_google_refuses_is_a_400(app: webtest.TestApp, name: str) -> None:
    tools = [{"functionDeclarations": [{"name": "ok_one"}, {"name": name}]}]
    assert error(app, {"contents": USER, "tools": tools})["message"] == (
        "* GenerateContentRequest.tools[0].function_declarations[1].name: Invalid function name. Must start "
        "with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), dots (.), "
        "colons (:), or dashes (-), with a maximum length of 64.\n"
    )


def test_function_names_google_takes_are_taken(app: webtest.TestApp) -> None:
    tools = [{"functionDeclarations": [{"name": "_a.b:c-d"}, {"name": "x" * 64}]}]
    assert app.post_json(GENERATE, {"contents": USER, "tools": tools}, headers=KEY).json["candidates"]


def test_an_enum_is_taken_by_its_name(app: webtest.TestApp) -> None:
    config = {"functionCallingConfig": {"mode": 1}}
    assert error(app, {"contents": USER, "toolConfig": config})["message"] == (
        "Invalid value at 'tool_config.function_calling_config.mode' "
        "(type.googleapis.com/google.ai.generativelanguage.v1beta.Mode), 1"
    )
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}  # a schema's type in any case
    body = {
        "contents": USER,
        "generationConfig": {"responseMimeType": "application/json", "responseSchema": schema},
    }
    assert app.post_json(GENERATE, body, headers=KEY).json["candidates"]


def test_an_error_is_bounded_whatever_the_body(app: webtest.TestApp) -> None:
    """Every unknown name of 5,000, and a 200,000-character value, were each written out in full."""
    config: Dict[str, Any] = {f"unknown{i}": 1 for i in range(5_000)}
    found = error(app, {"contents": USER, "generationConfig": config})
    assert len(violations(found)) == 100 and found["message"].count("\n") == 99
    found = error(app, {"contents": USER, "generationConfig": {"topK": "x" * 200_000}})
    assert len(found["message"]) < 1_200 and found["message"].endswith("xxx...")


def test_what_the_sdk_writes_and_clients_spell_is_taken(app: webtest.TestApp) -> None:
    """imageConfig comes from the SDK's GenerateContentConfig, not its GenerationConfig type; task
    types come in lower case from client code and its docs."""
    config = {"imageConfig": {"aspectRatio": "16:9"}}
    assert app.post_json(GENERATE, {"contents": USER, "generationConfig": config}, headers=KEY).json[
        "candidates"
    ]
    embed = {"content": {"parts": [{"text": "a"}]}, "taskType": "retrieval_query"}
    url = "/v1beta/models/text-embedding-004:embedContent"
    assert app.post_json(url, embed, headers=KEY).json["embedding"]["values"]


def test_thinking_levels_are_taken_in_lower_case(app: webtest.TestApp) -> None:
    """The AI SDK sends Gemini 3's thinkingLevel as Google's docs write it: "low"."""
    config = {"thinkingConfig": {"thinkingLevel": "low", "includeThoughts": True}}
    body = {"contents": USER, "generationConfig": config}
    url = "/v1beta/models/gemini-3-pro-preview:generateContent"
    assert app.post_json(url, body, headers=KEY).json["candidates"]
