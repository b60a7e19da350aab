"""The tokenizer's documented rule, and that it never loses or splits a character."""

from __future__ import annotations

import pytest

from mokku.api.tokens import count, tokenize

SAMPLES = [
    "",
    "Hello, world!",
    "Hello there, friend",
    " internationalization",
    "numbers 1234567 and 3.14",
    "snake_case and kebab-case",
    "日本語のテキストです",
    "emoji 🎉👩‍👩‍👧 e\u0301",
    "tabs\tand\nnewlines\r\n\n  spaces    ",
    "lone \ud800 surrogate",
    "x" * 1000,
]


@pytest.mark.parametrize("text", SAMPLES)
def test_tokens_join_back_and_count_agrees(text: str) -> None:
    tokens = tokenize(text)
    assert "".join(tokens) == text
    assert count(text) == len(tokens)
    assert all(tokens)


@pytest.mark.parametrize("text", [*SAMPLES, '{"city":"Paris","unit":"celsius","days":12345}', "a  b\t c"])
def test_a_reply_cut_after_k_tokens_counts_k(text: str) -> None:
    # What a token limit relies on when it cuts a call's arguments: the first k tokens, joined, are k.
    tokens = tokenize(text)
    assert all(count("".join(tokens[:k])) == k for k in range(len(tokens) + 1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello, world!", ["Hello", ",", " world", "!"]),
        ("Hello there, friend", ["Hello", " there", ",", " friend"]),
        (" internationalization x", [" inte", "rnat", "iona", "liza", "tion", " x"]),
        ("1234567", ["123", "456", "7"]),
        ("a  b", ["a", "  ", "b"]),
    ],
)
def test_documented_rule(text: str, expected: list) -> None:
    assert tokenize(text) == expected


def test_english_is_about_four_characters_a_token() -> None:
    text = (
        "The quick brown fox jumps over the lazy dog. Streaming responses arrive token by token, "
        "and usage numbers should look plausible to anyone reading a dashboard."
    )
    assert 3.0 < len(text) / count(text) < 5.5
