"""Client regular expressions: the same answers as ``re.search``, in time linear in the text."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mokku import saferegex

from .work import at_most

ATOMS = st.sampled_from(
    ["a", "b", "A", " ", "\\n", ".", "[ab]", "[^a]", "[a-c1]", "\\d", "\\w", "\\W", "\\s", "é", "_", ""]
)
ASSERTIONS = st.sampled_from(["^", "$", "\\A", "\\Z", "\\b", "\\B"])
QUANTIFIERS = st.sampled_from(["", "", "*", "+", "?", "*?", "+?", "{2}", "{0,2}", "{1,3}?", "{2,}"])
FLAGS = st.sampled_from(["", "", "(?i)", "(?m)", "(?s)", "(?a)", "(?im)"])


def _pieces(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, children).map("".join),
        st.tuples(children, children).map("|".join),
        st.tuples(st.sampled_from(["(", "(?:", "(?i:", "(?-i:", "(?s:"]), children, QUANTIFIERS).map(
            lambda t: f"{t[0]}{t[1]}){t[2]}"
        ),
    )


ATOMS_REPEATED = st.tuples(ATOMS, QUANTIFIERS).map(
    lambda t: t[0] + t[1] if t[0] not in ("", " ") or not t[1] else t[0]
)
PATTERNS = st.tuples(FLAGS, st.recursive(ATOMS_REPEATED | ASSERTIONS, _pieces, max_leaves=8)).map("".join)
TEXTS = st.text(alphabet="aAbB 1_\né!", max_size=12)


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(PATTERNS, TEXTS)
def test_the_same_answer_as_re(pattern: str, text: str) -> None:
    try:
        expected = re.search(pattern, text) is not None
    except re.error:
        with pytest.raises(saferegex.UnsafePattern):
            saferegex.compile(pattern)
        return
    assert saferegex.compile(pattern).search(text) is expected


@pytest.mark.parametrize(
    "pattern, text, expected",
    [
        ("^[a-z]+$", "hello", True),
        ("^[a-z]+$", "Hello", False),
        (r"\d{3}-\d{4}", "call 555-1234 today", True),
        ("(foo|bar)baz", "a barbaz", True),
        ("(foo|bar)baz", "a quxbaz", False),
        ("^[A-Z][a-z]*( [A-Z][a-z]*)*$", "New York City", True),
        ("^[A-Z][a-z]*( [A-Z][a-z]*)*$", "New york", False),
        (r"^order #\d+$", "order #42", True),
        ("(?i)refund", "I want a REFUND", True),
        (r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", "a@example.com", True),
        (
            "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
            "0" * 8 + "-0000" * 3 + "-" + "0" * 12,
            True,
        ),
    ],
)
def test_ordinary_patterns(pattern: str, text: str, expected: bool) -> None:
    assert saferegex.compile(pattern).search(text) is expected


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(PATTERNS.filter(lambda p: not any(a in p for a in ("^", "$", "\\A", "\\Z", "\\b", "\\B"))), TEXTS)
def test_examples_are_the_shortest_strings_the_pattern_reads_whole(pattern: str, text: str) -> None:
    try:
        whole = re.fullmatch(pattern, text) is not None
    except re.error:
        return
    regex = saferegex.compile(pattern)
    example = regex.example()
    if example is not None:
        assert re.fullmatch(pattern, example)
    if whole:  # every character of TEXTS is one an example may be written with
        assert example is not None and len(example) <= len(text)
        same_length = regex.example(len(text), len(text))
        assert same_length is not None and len(same_length) == len(text)
        assert re.fullmatch(pattern, same_length)


@pytest.mark.parametrize(
    "pattern, example",
    [
        (r"^\d{5}$", "00000"),
        (r"^\d{3}-\d{4}$", "000-0000"),
        ("^#[0-9a-fA-F]{6}$", "#aaaaaa"),
        ("^(USD|EUR|GBP)$", "USD"),
        ("^[A-Z][a-z]+$", "Aa"),
        (r"^v\d+\.\d+\.\d+$", "v0.0.0"),
        (r"^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}$", "a@a.aa"),
        ("^[^\\x00-\\x7f]+$", "é"),
        ("(?i)^ABC$", "abc"),
        (r"\bfoo\b", "foo"),
    ],
)
def test_examples_of_ordinary_patterns(pattern: str, example: str) -> None:
    regex = saferegex.compile(pattern)
    assert regex.example() == example
    assert regex.search(example)


def test_other_variants_write_other_examples() -> None:
    digits = saferegex.compile(r"^\d{3}$")
    assert [digits.example(variant=v) for v in (0, 1, 2, 10, 999, 1000)] == [
        "000",
        "100",
        "200",
        "010",
        "999",
        "000",
    ]
    cyrillic_and_greek = "^[\u0430-\u044f]+ [\u03b1-\u03c9]{2}$"
    assert saferegex.compile(cyrillic_and_greek).example() == "\u0430 \u03b1\u03b1"
    currency = saferegex.compile("^(USD|EUR|GBP)$")
    assert {currency.example(variant=v) for v in range(3)} == {"USD", "EUR", "GBP"}


def test_examples_within_lengths() -> None:
    regex = saferegex.compile("^[a-z]+-[0-9]*$")
    example = regex.example(5, 8)
    assert example is not None and len(example) == 5 and regex.search(example)
    assert saferegex.compile(r"^\d{5}$").example(6) is None  # every string it reads is 5 long
    assert saferegex.compile("^a*$").example(3, 2) is None
    assert saferegex.compile("^[^\\x00-\\U0010ffff]$").example() is None  # no character can be read


def test_examples_are_bounded_work() -> None:
    # A new set of states at every length: the walk gives up at MAX_EXAMPLE_STATES.
    regex = saferegex.compile("(?:[ab]*a[ab]{9}){60}c")
    spent: list = []
    assert regex.example(spend=spent.append) is None  # 601 characters, past 100,000 states
    assert saferegex.MAX_EXAMPLE_STATES < sum(spent) <= saferegex.MAX_EXAMPLE_STATES + 1_000
    assert saferegex.compile("(?:[ab]*a[ab]{9}){2}c").example() == "a" * 20 + "c"


@pytest.mark.parametrize(
    "pattern, text",
    [
        ("^(a+)+$", "a" * 9_999 + "!"),  # exponential in re: 2 s at 24 characters, doubling per character
        ("^(a|aa)+$", "a" * 9_999 + "!"),
        ("(x+x+)+y", "x" * 10_000),
        (".*a.*a.*a$", "a" * 9_999 + "!"),  # cubic in re: minutes at 1,000 characters
        ("[a-z]*[a-z]*[a-z]*!$", "a" * 10_000),
        ("(?:[ab]*a[ab]{9}){60}c", "ab" * 5_000),  # a new set of states at almost every character
    ],
)
def test_attacks_run_in_linear_time(pattern: str, text: str) -> None:
    regex = saferegex.compile(pattern)
    with at_most(4_000_000):  # re: hours to years
        regex.search(text)
        regex.search(text + "x" * 50_000)  # past MAX_TEXT: not read


@pytest.mark.parametrize(
    "pattern, reason",
    [
        (r"(a)\1", "backreferences"),
        ("(?=a)b", "lookahead and lookbehind"),
        ("(?<!a)b", "lookahead and lookbehind"),
        ("(a)?(?(1)b|c)", "conditional groups"),
        ("a{2000}", "too large"),
        ("(?:[a-z]{0,100}){20}", "too large"),
        ("x" * 1_001, "longer than 1,000"),
        ("(unclosed", "not a valid regular expression"),
    ],
)
def test_refused_with_a_reason(pattern: str, reason: str) -> None:
    with pytest.raises(saferegex.UnsafePattern, match=re.escape(reason)), at_most(500_000):
        saferegex.compile(pattern)


def test_the_text_is_read_up_to_max_text() -> None:
    regex = saferegex.compile("needle")
    assert regex.search("x" * (saferegex.MAX_TEXT - 6) + "needle")
    assert not regex.search("x" * saferegex.MAX_TEXT + "needle")


def test_work_is_reported_and_can_be_stopped() -> None:
    spent = []
    assert saferegex.compile("b+$").search("a" * 100 + "b", spent.append)
    assert 101 <= sum(spent) < 1_000

    def stop(count: int) -> None:
        raise OverflowError

    with pytest.raises(OverflowError):
        saferegex.compile("b+$").search("a" * 100, stop)
