"""The YAML-subset reader against PyYAML, and its refusals."""

from __future__ import annotations

import pytest
import yaml

from mokku import miniyaml

SAMPLES = [
    "a: 1\nb: two\nc: 3.5\nd: true\ne: null\nf: ~\ng: -7\nh: 1e3\ni: 1.5e+3\nj: .5\n",
    "top:\n  nested:\n    deeper: value\n  other: [a, 'b c', \"d\\n\", 1, null, true]\n",
    "list:\n  - one\n  - 2\n  - key: value\n    more: 3\n  -\n    inner: x\n  - - not: supported\n",
    "'200':\n  description: OK\n\"quoted key\": x\n/v1/models/{model}: path\n",
    "text: |\n  line one\n  line two\n\n  after blank\nnext: 1\n",
    "text: |-\n  kept\n    indented\nfolded: >\n  joined\n  words\n\n  new paragraph\n",
    "empty: {}\nnone: []\nquote: 'it''s'\ncolon: 'a: b'\nurl: http://example.com/x\n",
    "# comment\nkey: value with `backticks` and colons:inside\n",
    "enum: [stop, length, null]\ntypes: [string, 'null']\n",
    "deep:\n  - a: 1\n    b:\n      - x\n      - y\n  - c: 2\n",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_reads_like_pyyaml(text: str) -> None:
    if "- - " in text:
        with pytest.raises(ValueError):
            miniyaml.load(text)
        return
    assert miniyaml.load(text) == yaml.safe_load(text)


@pytest.mark.parametrize(
    "text",
    [
        "a: yes\n",
        "a: &anchor 1\n",
        "a: *alias\n",
        "a: {b: 1}\n",
        "a: 1 # trailing comment\n",
        "a:\n\tb: 1\n",
        "a: 1\na: 2\n",
        "a: 'unterminated\n",
        "a:\n  b: 1\n c: 2\n",
        "a: [1, [2]]\n",
        "a: text with: a colon\n",
    ],
)
def test_refuses_what_it_cannot_read_exactly(text: str) -> None:
    with pytest.raises(ValueError):
        miniyaml.load(text)
