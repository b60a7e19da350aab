"""The pytest plugin, used from a test session of its own (pytester)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import List

import pytest

pytest_plugins = ["pytester"]

README = Path(__file__).resolve().parents[1] / "README.md"

MORE_TESTS = """
def test_each_test_starts_clean(mokku, openai_client):
    assert mokku.requests() == []
    reply = openai_client.chat.completions.create(model="m", messages=[{"role": "user", "content": "echo"}])
    assert reply.choices[0].message.content == "echo"


def test_verdict_helper(mokku, openai_client):
    openai_client.chat.completions.create(model="m", messages=[{"role": "user", "content": "fine"}])
    assert mokku.verdict()["passed"] is True


def test_anthropic_client(mokku, anthropic_client):
    mokku.script("Scripted for Claude.", endpoint="messages")
    reply = anthropic_client.messages.create(
        model="claude-sonnet-4-5", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.content[0].text == "Scripted for Claude."
    assert [entry["path"] for entry in mokku.requests()] == ["/v1/messages"]


def test_genai_client(mokku, genai_client):
    mokku.script("Scripted for Gemini.", endpoint="generate_content")
    reply = genai_client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert reply.text == "Scripted for Gemini."


def test_server_url(mokku_server):
    import urllib.request, json
    with urllib.request.urlopen(mokku_server + "/health") as response:
        assert json.load(response)["status"] == "ok"
"""


def test_plugin_fixtures_and_the_readme_test(pytester: pytest.Pytester) -> None:
    """The README's ten-line test, run as written, plus four more, in a pytest session of their own."""
    readme = README.read_text(encoding="utf-8")
    block = re.search(r"```python\n(def test_my_code_asks_for_the_weather.*?)```", readme, re.S)
    assert block, "the README's plugin example is missing"
    pytester.makepyfile(block.group(1) + "\n" + MORE_TESTS)
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=6)


CASSETTE_TESTS = """
import pathlib
import pytest


@pytest.mark.mokku_cassette("weather")
def test_recorded_weather(mokku, openai_client):
    reply = openai_client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "weather?"}])
    pathlib.Path("ids.txt").open("a").write(reply.id + "\\n")
    assert reply.choices[0].message.content == "weather?"
"""

SWITCHED = """

@pytest.mark.mokku_cassette("weather")
def test_one_call_answered_by_mokku(mokku, openai_client):
    mokku.script({"match": {"contains": "unrecorded"}, "reply": {"mode": "mock"}})
    ask = lambda text: openai_client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": text}]
    )
    assert ask("an unrecorded question").choices[0].message.content == "an unrecorded question"
    assert ask("weather?").id == pathlib.Path("ids.txt").read_text().split()[0]  # replayed
"""

UNMATCHED = """
import pytest


@pytest.mark.mokku_cassette("weather")
def test_asks_something_else(mokku, openai_client):
    try:
        openai_client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "other"}])
    except Exception:
        pass  # a client that swallows the error: the plugin still fails the test
"""


def _record_then_replay(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, passed: int
) -> List[Path]:
    """The tests run with --mokku-record against a live upstream, then again once it is gone (so
    replayed); the recordings of the weather cassette."""
    from .servers import LiveServer

    upstream = LiveServer("module")
    try:
        monkeypatch.setenv("MOKKU_UPSTREAM", upstream.url)
        pytester.runpytest_subprocess("-q", "--mokku-record").assert_outcomes(passed=passed)
    finally:
        upstream.close()
    monkeypatch.delenv("MOKKU_UPSTREAM")
    recordings = list((pytester.path / "cassettes" / "weather").rglob("*.json"))
    pytester.runpytest_subprocess("-q").assert_outcomes(passed=passed)  # the upstream is gone: replayed
    return recordings


def test_a_cassette_is_recorded_then_replayed_offline(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_cassette=CASSETTE_TESTS)
    recordings = _record_then_replay(pytester, monkeypatch, passed=1)
    assert len(recordings) == 1
    recorded_id, replayed_id = (pytester.path / "ids.txt").read_text().split()
    assert recorded_id == replayed_id
    pytester.makepyfile(test_cassette=CASSETTE_TESTS + SWITCHED)
    pytester.runpytest_subprocess("-q").assert_outcomes(passed=2)  # one call of a replayed test: mokku's own
    pytester.makepyfile(test_cassette=UNMATCHED)
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=1, errors=1)  # fails at its teardown, where the misses are read
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_asks_something_else*"])
    result.stdout.fnmatch_lines(["*calls matched no recording in the cassette 'weather'*"])
    result.stdout.fnmatch_lines(['*body.messages[[]0[]].content: "weather?" recorded, "other" sent*'])


SHARED = """
import pytest


def ask(client, text):
    return client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": text}]).id


@pytest.mark.mokku_cassette("weather")
def test_twice(mokku, openai_client):
    assert ask(openai_client, "first") != ask(openai_client, "second")


@pytest.mark.mokku_cassette("weather")
def test_once(mokku, openai_client):
    ask(openai_client, "third")
"""


def test_tests_sharing_a_cassette_record_into_it_together(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_shared=SHARED)
    assert len(_record_then_replay(pytester, monkeypatch, passed=2)) == 3  # both replayed, offline


UNMARKED = """
def test_unmarked(mokku, openai_client):
    reply = openai_client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "echo?"}])
    assert reply.choices[0].message.content == "echo?"
"""


def test_an_unmarked_test_never_reaches_the_upstream(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MOKKU_UPSTREAM exported for --mokku-record: a test without a cassette still gets the echo."""
    pytester.makepyfile(test_unmarked=UNMARKED)
    monkeypatch.setenv("MOKKU_UPSTREAM", "http://127.0.0.1:9")  # nothing listens: a call there fails
    monkeypatch.setenv("MOKKU_MODE", "passthrough")
    pytester.runpytest_subprocess("-q", "--mokku-record").assert_outcomes(passed=1)


@pytest.mark.parametrize("name", ["..", "", "../elsewhere", "/tmp/x"])
def test_a_cassette_name_never_reaches_outside_the_cassettes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Recording empties a cassette's folder first: a name such as ``..`` would empty the tests'."""
    pytester.makepyfile(
        test_escape=f"""
import pytest


@pytest.mark.mokku_cassette({name!r})
def test_escaping(mokku):
    pass
"""
    )
    kept = pytester.path / "cassettes" / "keep.json"
    kept.parent.mkdir()
    kept.write_text("{}")
    monkeypatch.setenv("MOKKU_UPSTREAM", "http://127.0.0.1:9")
    result = pytester.runpytest_subprocess("-q", "--mokku-record")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*a cassette's name is one folder name*"])
    assert kept.exists() and (pytester.path / "test_escape.py").exists()
