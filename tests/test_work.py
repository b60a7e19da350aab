"""The work bound of the bounded-work tests fails when it should."""

import json

import pytest

from .work import TooMuchWork, at_most


def _calls(count: int) -> None:
    for _ in range(count):
        len("x")


def test_a_block_within_its_bound_passes() -> None:
    with at_most(1_000) as counted:
        _calls(100)
    assert 100 <= counted[0] <= 1_000


def test_a_block_past_its_bound_fails_at_the_bound() -> None:
    with pytest.raises(TooMuchWork, match="more than 1,000 calls"), at_most(1_000) as counted:
        _calls(10**9)  # stopped after 1,001 calls, not run to the end
    assert counted[0] == 1_001


def test_a_runaway_fails_even_when_the_code_catches_exceptions() -> None:
    """The app turns an unexpected exception into a 500 envelope; the bound still fails the test."""
    with pytest.raises(TooMuchWork), at_most(1_000):
        try:
            _calls(10**9)
        except Exception:
            json.dumps({"error": "caught"})
