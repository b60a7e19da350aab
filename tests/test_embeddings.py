"""``POST /v1/embeddings`` in-process: determinism, unit length, dimensions, encodings, validation."""

from __future__ import annotations

import base64
import math
import subprocess
import sys
from array import array
from typing import Any, Dict, List

import pytest
import webtest

from mokku.api.embeddings import vector
from mokku.api.tokens import count

from .spec import assert_invalid_request, validate

URL = "/v1/embeddings"


def embed(app: webtest.TestApp, **body: Any) -> Dict[str, Any]:
    body.setdefault("model", "text-embedding-3-small")
    response = app.post_json(URL, body)
    if body.get("encoding_format") != "base64":
        validate(response.json, "CreateEmbeddingResponse")
    return response.json


def vectors(body: Dict[str, Any]) -> List[List[float]]:
    return [item["embedding"] for item in body["data"]]


def norm(values: List[float]) -> float:
    return math.sqrt(sum(v * v for v in values))


def cosine(a: List[float], b: List[float]) -> float:
    return sum(x * y for x, y in zip(a, b)) / (norm(a) * norm(b))


def test_single_input_shape(app: webtest.TestApp) -> None:
    body = embed(app, input="The food was delicious")
    assert body["object"] == "list"
    assert body["model"] == "text-embedding-3-small"
    assert len(body["data"]) == 1
    item = body["data"][0]
    assert (item["object"], item["index"]) == ("embedding", 0)
    assert len(item["embedding"]) == 1536
    tokens = count("The food was delicious")
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}


@pytest.mark.parametrize(
    ("model", "size"),
    [
        ("text-embedding-3-small", 1536),
        ("text-embedding-3-large", 3072),
        ("text-embedding-ada-002", 1536),
        ("my-embedder", 1536),
    ],
)
def test_model_dimensions(app: webtest.TestApp, model: str, size: int) -> None:
    assert len(vectors(embed(app, model=model, input="x"))[0]) == size


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4o-2024-08-06", "o3", "gpt-3.5-turbo-instruct"])
def test_a_model_of_another_kind_makes_no_embeddings(app: webtest.TestApp, model: str) -> None:
    refused = app.post_json(URL, {"model": model, "input": "x"}, status=403).json
    validate(refused, "ErrorResponse")
    assert refused["error"] == {
        "message": "You are not allowed to generate embeddings from this model",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


def test_unit_length_and_deterministic(app: webtest.TestApp) -> None:
    first = vectors(embed(app, input=["alpha", "beta"]))
    again = vectors(embed(app, input=["alpha", "beta"]))
    assert first == again
    for values in first:
        assert abs(norm(values) - 1) < 1e-6


def test_different_texts_and_models_differ(app: webtest.TestApp) -> None:
    a, b, a_again = vectors(embed(app, input=["cat", "dog", "cat"]))
    assert a == a_again
    assert a != b
    assert abs(cosine(a, b)) < 0.2
    other_model = vectors(embed(app, model="text-embedding-ada-002", input="cat"))[0]
    assert other_model != a


def test_text_is_most_similar_to_itself(app: webtest.TestApp) -> None:
    texts = [f"document number {i}" for i in range(20)]
    all_vectors = vectors(embed(app, input=texts))
    query = vectors(embed(app, input="document number 7"))[0]
    scores = [cosine(query, v) for v in all_vectors]
    assert max(range(20), key=scores.__getitem__) == 7
    assert abs(scores[7] - 1) < 1e-6


def test_batch_keeps_order(app: webtest.TestApp) -> None:
    texts = [f"item {i}" for i in range(50)]
    batch = embed(app, input=texts)
    assert [item["index"] for item in batch["data"]] == list(range(50))
    for index in (0, 17, 49):
        assert batch["data"][index]["embedding"] == vectors(embed(app, input=texts[index]))[0]


def test_dimensions_shorten_and_renormalize(app: webtest.TestApp) -> None:
    full = vectors(embed(app, input="matryoshka"))[0]
    short = vectors(embed(app, input="matryoshka", dimensions=256))[0]
    assert len(short) == 256
    assert abs(norm(short) - 1) < 1e-6
    scale = norm(full[:256])
    assert all(abs(s - f / scale) < 1e-6 for s, f in zip(short, full[:256]))
    assert len(vectors(embed(app, model="text-embedding-3-large", input="x", dimensions=3072))[0]) == 3072


def test_base64_is_little_endian_float32_of_the_same_numbers(app: webtest.TestApp) -> None:
    floats = vectors(embed(app, input=["a", "b"], encoding_format="float"))
    encoded = embed(app, input=["a", "b"], encoding_format="base64")
    for item, expected in zip(encoded["data"], floats):
        assert isinstance(item["embedding"], str)
        raw = base64.b64decode(item["embedding"])
        decoded = array("f")
        decoded.frombytes(raw)
        if sys.byteorder == "big":
            decoded.byteswap()
        # JSON numbers name float32 values: rounded to float32, they are the base64 bytes exactly.
        assert decoded == array("f", expected)
    decoded_body = dict(encoded, data=[dict(d, embedding=f) for d, f in zip(encoded["data"], floats)])
    validate(decoded_body, "CreateEmbeddingResponse")


def test_token_inputs(app: webtest.TestApp) -> None:
    body = embed(app, input=[1212, 318, 257])
    assert len(body["data"]) == 1
    assert body["usage"]["prompt_tokens"] == 3
    body = embed(app, input=[[1, 2], [3], [4, 5, 6]])
    assert len(body["data"]) == 3
    assert body["usage"]["prompt_tokens"] == 6
    assert body["data"][0]["embedding"] == vectors(embed(app, input="1 2"))[0]


def test_2048_inputs_accepted(app: webtest.TestApp) -> None:
    body = embed(app, input=[f"t{i}" for i in range(2048)], dimensions=8)
    assert len(body["data"]) == 2048


def test_300000_tokens_summed_across_the_inputs_is_the_most(app: webtest.TestApp) -> None:
    """As the API refuses a larger batch (each input within its own 8,192): LangChain and the like
    split their batches on it."""
    text = " ".join(["word"] * 7_500)  # 7,500 tokens
    assert embed(app, input=[text] * 40, dimensions=8)["usage"]["prompt_tokens"] == 300_000
    refused = app.post_json(
        URL, {"model": "text-embedding-3-small", "input": [text] * 40 + ["one more"]}, status=400
    )
    assert refused.json["error"] == {
        "message": "Requested 300002 tokens, max 300000 tokens per request",
        "type": "max_tokens_per_request",
        "param": None,
        "code": "max_tokens_per_request",
    }


def test_stable_across_processes() -> None:
    code = "from mokku.api.embeddings import vector; print(vector('text-embedding-3-small', 'stable?', 16).tolist())"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1
    assert outputs.pop().strip() == str(vector("text-embedding-3-small", "stable?", 16).tolist())


def test_known_vector_is_pinned() -> None:
    """The rule is part of the contract: vectors must not change between releases."""
    values = vector("text-embedding-3-small", "hello", 4).tolist()
    assert values == [0.02382940798997879, 0.3876674771308899, 0.4128308594226837, 0.8238427042961121]


INVALID = [
    ({"model": "m"}, "input", "missing_required_parameter", r"'input'"),
    ({"model": "m", "input": ""}, "input", "empty_string", r"Invalid 'input': empty string"),
    ({"model": "m", "input": []}, "input", "empty_array", r"empty array"),
    ({"model": "m", "input": ["ok", ""]}, "input[1]", "empty_string", r"empty string"),
    ({"model": "m", "input": [[1], []]}, "input[1]", "empty_array", r"empty array"),
    ({"model": "m", "input": 3}, "input", "invalid_type", r"expected a string, an array of strings"),
    ({"model": "m", "input": ["a", 1]}, "input", "invalid_type", r"expected a string, an array of strings"),
    ({"model": "m", "input": ["x"] * 2049}, "input", "array_above_max_length", r"maximum length 2048"),
    (
        {"model": "m", "input": "x", "encoding_format": "int8"},
        "encoding_format",
        "invalid_value",
        r"Supported values are: 'float' and 'base64'\.",
    ),
    ({"model": "m", "input": "x", "dimensions": 0}, "dimensions", "integer_below_min_value", r">= 1"),
    (
        {"model": "text-embedding-3-small", "input": "x", "dimensions": 1537},
        "dimensions",
        "integer_above_max_value",
        r"<= 1536",
    ),
    (
        {"model": "text-embedding-ada-002", "input": "x", "dimensions": 256},
        "dimensions",
        None,
        r"does not support specifying dimensions",
    ),
    ({"model": "m", "input": "x", "dimensions": "8"}, "dimensions", "invalid_type", r"expected an integer"),
]


@pytest.mark.parametrize(("body", "param", "code", "message"), INVALID)
def test_validation_errors(
    app: webtest.TestApp, body: Dict[str, Any], param: str, code: Any, message: str
) -> None:
    assert_invalid_request(app.post_json(URL, body, status=400).json, param, code, message)
