"""Bounded work per request, in-process: schemas and regular expressions from clients are refused
with a 400 naming the parameter, or answered, in well under a second, never a 500."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, Tuple

import pytest
import webtest

from mokku import config
from mokku.api import schemagen
from mokku.server import http
from mokku.server.app import App

from .spec import assert_invalid_request
from .work import at_most

INF = "__inf__"  # replaced by 1e400 in the raw body: Python's json reads it as inf
TEXT = "a" * 24 + "!"


def _nested_arrays(count: int) -> Dict[str, Any]:
    schema: Dict[str, Any] = {"type": "string"}
    for _ in range(3):
        schema = {"type": "array", "minItems": count, "items": schema}
    return schema


# (schema, what the message says); before the bounds, from seconds to forever, hundreds of MB, or a 500.
ATTACKS = [
    ({"anyOf": [{"$ref": "#"}] * 8}, "more than 10,000 schema nodes"),  # 1.6 s
    ({"anyOf": [{"$ref": "#"}] * 20}, "more than 10,000 schema nodes"),  # about 30 minutes
    (_nested_arrays(100), "more than 10,000 schema nodes"),  # 3.7 MB
    ({"type": "array", "minItems": 10**30}, "minItems 1e\\+30 is above"),  # never ends
    ({"type": "string", "minLength": 20_000_000}, "minLength 20,000,000 is above"),  # +400 MB
    ({"type": "string", "minLength": 1e30}, "minLength 1e\\+30 is above"),  # 500
    ({"type": "number", "multipleOf": 1e-308, "minimum": 1e308}, "no number satisfies"),  # 500
    ({"type": "number", "minimum": INF}, "minimum must be a finite number"),  # 500
    ({"type": "integer", "multipleOf": INF}, "multipleOf must be a finite number"),  # 9, invalid
    ({"allOf": [{"type": "string"}, {"type": "integer"}]}, "types that exclude each other"),  # 9, invalid
    ({"type": "integer", "enum": ["x"]}, "no enum value satisfies"),  # "x", invalid
    ({"type": "string", "not": {"type": "string"}}, "excluded by not"),  # a string, invalid
    ({"type": "string", "pattern": "(a)\\1"}, "backreferences are not supported"),
    ({"type": "string", "pattern": "(?<=a)b"}, "lookahead and lookbehind are not supported"),
    (  # 300 patterns read for each of 40 names: 18 s, the compiled patterns evicted from their cache
        {
            "type": "object",
            "patternProperties": {f"^a{{{n}}}$": {"type": "null"} for n in range(1, 301)},
            "additionalProperties": False,
            "minProperties": 40,
        },
        "its patterns take more than 2,000,000 steps",
    ),
]


def _chat_tools(schema: Any) -> Tuple[str, Dict[str, Any], str]:
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": TEXT}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}],
    }
    return "/v1/chat/completions", body, "tools[0].function.parameters"


def _chat_format(schema: Any) -> Tuple[str, Dict[str, Any], str]:
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": TEXT}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    }
    return "/v1/chat/completions", body, "response_format.json_schema.schema"


def _responses_format(schema: Any) -> Tuple[str, Dict[str, Any], str]:
    body = {
        "model": "gpt-4o",
        "input": TEXT,
        "text": {"format": {"type": "json_schema", "name": "x", "schema": schema}},
    }
    return "/v1/responses", body, "text.format.schema"


def _responses_tools(schema: Any) -> Tuple[str, Dict[str, Any], str]:
    body = {
        "model": "gpt-4o",
        "input": TEXT,
        "tools": [{"type": "function", "name": "f", "parameters": schema}],
    }
    return "/v1/responses", body, "tools[0].parameters"


ENTRIES = [_chat_tools, _chat_format, _responses_format, _responses_tools]


def _post(app: webtest.TestApp, url: str, body: Dict[str, Any]) -> Any:
    raw = json.dumps(body).replace(json.dumps(INF), "1e400")
    return app.post(url, raw, content_type="application/json", expect_errors=True)


@pytest.fixture(scope="module")
def app() -> webtest.TestApp:
    return webtest.TestApp(App(config.load({})))


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.__name__.strip("_"))
@pytest.mark.parametrize("schema, message", ATTACKS, ids=range(len(ATTACKS)))
def test_schema_attacks_are_refused_quickly(
    app: webtest.TestApp, entry: Callable[[Any], Tuple[str, Dict[str, Any], str]], schema: Any, message: str
) -> None:
    url, body, param = entry(schema)
    with at_most(6_000_000):
        response = _post(app, url, body)
    assert response.status_int == 400, response.body[:300]
    assert_invalid_request(response.json, param, None, message)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.__name__.strip("_"))
@pytest.mark.parametrize(
    "schema",
    [
        # 60 and 80 optional self-referencing properties: 2.3 MB in 3 s and 5.6 MB in 13 s before.
        {"type": "object", "properties": {f"p{i}": {"$ref": "#"} for i in range(60)}},
        {"type": "object", "properties": {f"p{i}": {"$ref": "#"} for i in range(80)}},
        # Exponential in re: 2 s for this text, doubling with each "a".
        {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}}, "required": ["s"]},
        {"oneOf": [{"type": "integer"}, {"type": "number"}]},
    ],
    ids=range(4),
)
def test_satisfiable_schemas_are_answered_quickly(
    app: webtest.TestApp, entry: Callable[[Any], Tuple[str, Dict[str, Any], str]], schema: Any
) -> None:
    url, body, _ = entry(schema)
    with at_most(2_000_000):
        response = _post(app, url, body)
    assert response.status_int == 200, response.body[:300]
    assert len(response.body) < 2 * schemagen.MAX_CHARS


def _scenarios(tmp_path: Path) -> webtest.TestApp:
    settings = config.load({"MOKKU_STATE": str(tmp_path / "state.sqlite3")})
    return webtest.TestApp(App(settings), extra_environ={"wsgi.multithread": True})


@pytest.mark.parametrize(
    "regex, reason",
    [
        ("(a)\\1", "backreferences are not supported"),
        ("(?=a)a", "lookahead and lookbehind are not supported"),
        ("(?:a{1,1000}){5}", "too large"),
        ("(", "not a valid regular expression"),
    ],
)
def test_unsafe_rule_regexes_are_refused(tmp_path: Path, regex: str, reason: str) -> None:
    app = _scenarios(tmp_path)
    rule = {"match": {"regex": regex}, "reply": {"content": "x"}}
    one = app.post_json("/mokku/scenarios", rule, expect_errors=True)
    assert one.status_int == 400
    assert_invalid_request(one.json, "rule.match.regex", None, reason)
    many = app.post_json("/mokku/scenarios", {"rules": [rule]}, expect_errors=True)
    assert many.status_int == 400
    assert_invalid_request(many.json, "rules[0].match.regex", None, reason)


def test_rule_regexes_match_in_linear_time(tmp_path: Path) -> None:
    """^(a+)+$ against 24 "a" and a "!" took 2 s per match before, doubling with each "a"."""
    app = _scenarios(tmp_path)
    rules = [
        {"match": {"regex": "^(a+)+$"}, "reply": {"content": "all a"}},
        {"match": {"regex": ".*a.*a.*a$"}, "reply": {"content": "three a"}},
    ]
    app.post_json("/mokku/scenarios", {"rules": rules})
    for text, expected in [
        ("a" * 9_000 + "!", "a" * 9_000 + "!"),
        ("a" * 30, "all a"),
        ("xaxaxa", "three a"),
    ]:
        with at_most(200_000):
            reply = app.post_json(
                "/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": text}]}
            )
        assert reply.json["choices"][0]["message"]["content"] == expected


def test_the_pattern_work_of_parallel_calls_is_bounded_per_request(app: webtest.TestApp) -> None:
    """128 functions, each with a pattern that costs most of one document's pattern work: 26 s when
    each call had a budget of its own; one budget for the request's calls."""
    import random
    import string

    parameters = {
        "type": "object",
        "properties": {"v": {"type": "string", "pattern": "\\b(?:[a-z]?){450}X|0"}},
        "required": ["v"],
    }
    tools = [
        {"type": "function", "function": {"name": f"f{n}", "parameters": parameters}} for n in range(128)
    ]
    text = "".join(random.Random(7).choice(string.ascii_lowercase) for _ in range(1_000))
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": text}],
        "tools": tools,
        "tool_choice": "required",
        "parallel_tool_calls": True,
    }
    response = _post(app, "/v1/chat/completions", body)
    assert response.status_int == 400, response.body[:300]
    param = response.json["error"]["param"]
    assert param.startswith("tools[") and param.endswith("].function.parameters")
    assert_invalid_request(response.json, param, None, "its patterns take more than 2,000,000 steps")


def test_schema_errors_name_the_parameter_of_each_dialect(app: webtest.TestApp) -> None:
    refused = {"type": "string", "pattern": "(a)\\1"}
    anthropic = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": TEXT}],
        "output_config": {"format": {"type": "json_schema", "schema": refused}},
    }
    answer = app.post_json("/v1/messages", anthropic, headers={"anthropic-version": "2023-06-01"}, status=400)
    assert answer.json["error"]["message"].startswith("Invalid schema for output_config.format: ")
    gemini = {
        "contents": [{"parts": [{"text": TEXT}]}],
        "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": refused},
    }
    answer = app.post_json("/v1beta/models/gemini-2.5-flash:generateContent", gemini, status=400)
    assert answer.json["error"]["message"].startswith(
        "Invalid schema for generation_config.response_json_schema: "
    )
    url, body, _ = _responses_format(refused)
    assert _post(app, url, body).json["error"]["message"].startswith("Invalid schema for text.format: ")


def test_the_regex_work_of_one_call_is_bounded_across_rules(tmp_path: Path) -> None:
    """Each of these rules costs a third of a second against this message: unbounded, one call
    cost that times the number of rules (up to 1,000)."""
    import random

    app = _scenarios(tmp_path)
    rule = {"match": {"regex": "a[ab]{900}c"}, "reply": {"content": "x"}}
    app.post_json("/mokku/scenarios", {"rules": [rule] * 20})
    text = "".join(random.Random(1).choice("ab") for _ in range(10_000))
    body = {"model": "m", "messages": [{"role": "user", "content": text}]}
    refused = app.post_json("/v1/chat/completions", body, expect_errors=True)  # at the budget
    assert refused.status_int == 400
    assert_invalid_request(refused.json, None, None, "takes more than 4,000,000 steps")
    assert (
        app.post_json("/v1/chat/completions", dict(body, messages=[{"role": "user", "content": "hi"}])).json[
            "choices"
        ][0]["message"]["content"]
        == "hi"
    )


def test_every_rule_stays_compiled(tmp_path: Path) -> None:
    """1,000 regex rules cycled through a cache of 256 compiled patterns: every call compiled them
    all again (6 s for "hi")."""
    app = _scenarios(tmp_path)
    rules = [{"match": {"regex": f"a[ab]{{90}}c|q{i}"}, "reply": {"content": "x"}} for i in range(1_000)]
    app.post_json("/mokku/scenarios", {"rules": rules})
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    app.post_json("/v1/chat/completions", body)
    with at_most(400_000):
        assert app.post_json("/v1/chat/completions", body).json["choices"][0]["message"]["content"] == "hi"


def _nested(levels: int) -> str:
    """JSON of arrays ``levels`` deep (as text: json.dumps would run out of stack first)."""
    return "[" * levels + '"x"' + "]" * levels


def _holding(body: Dict[str, Any], nested: str) -> str:
    """``body`` as JSON, with ``nested`` in place of its ``"DEEP"``."""
    return json.dumps(body).replace('"DEEP"', nested)


def test_bodies_nested_past_the_bound_are_refused_on_every_route(tmp_path: Path) -> None:
    """About 980 levels parsed, were kept, then broke what read them back deeper in the stack: every
    later call once a rule held them, the journal and verdict, a conversation holding an item."""
    settings = config.load({"MOKKU_STATE": str(tmp_path / "state.sqlite3"), "MOKKU_JOURNAL": "1"})
    app = webtest.TestApp(App(settings), extra_environ={"wsgi.multithread": True})
    deep = _nested(http.MAX_NESTING)  # with the body and the field holding it, two levels past
    chat = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "web_search_options": {"x": "DEEP"},
    }
    rule = {"match": {"contains": "never"}, "reply": {"tool_call": {"name": "f", "arguments": {"a": "DEEP"}}}}
    claude = {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [], "metadata": {"x": "DEEP"}}
    refused = {
        "/v1/chat/completions": _holding(chat, deep),
        "/v1/messages": _holding(claude, deep),
        "/v1beta/models/gemini-2.5-flash:generateContent": _holding({"contents": [], "x": "DEEP"}, deep),
        "/v1/conversations": _holding({"items": [{"role": "user", "content": "hi", "x": "DEEP"}]}, deep),
        "/mokku/scenarios": _holding(rule, deep),
        # As deep as the decoder takes: once a rule held it, every later call was a 500.
        "/mokku/scenarios?": _holding(rule, _nested(800)),
        "/v1/chat/completions?": _holding(chat, _nested(5000)),  # deeper than the decoder goes
    }
    headers = {"anthropic-version": "2023-06-01", "content-type": "application/json"}
    for url, body in refused.items():
        answer = app.post(url, body, headers=headers, expect_errors=True)
        assert answer.status_int == 400, url
        assert f"nests deeper than {http.MAX_NESTING} levels" in answer.text, url
    kept = _holding(rule, _nested(http.MAX_NESTING - 4))  # at the bound
    assert app.post("/mokku/scenarios", kept, headers=headers).status_int == 200
    for options in ('"x"', _nested(http.MAX_NESTING - 2)):
        answer = app.post("/v1/chat/completions", _holding(chat, options), headers=headers).json
        assert answer["choices"][0]["message"]["content"] == "hi"
    assert len(app.get("/mokku/scenarios").json["data"]) == 1
    assert len(app.get("/mokku/requests").json["data"]) == 7  # the five refused on /v1 too
