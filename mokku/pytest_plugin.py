"""A pytest plugin: a mokku server per test session, cleaned before each test.

Fixtures:

- ``mokku_server``: the real app, served in-process on a free port by the threaded server
  (session scope); its value is the base URL, e.g. ``http://127.0.0.1:54321``.
- ``mokku``: per test, with the journal and the scripted replies emptied first; offers
  ``url``, ``base_url`` (``.../v1``), ``requests(path=, model=, since=, limit=)``,
  ``script(rule)`` / ``script(reply_content, **match)`` and ``verdict()``.
- ``@pytest.mark.mokku_cassette("name")`` on a test that uses ``mokku``: its API calls are replayed
  from the cassette directory ``cassettes/name`` beside the test file (``--mokku-cassettes DIR``
  for another root); ``--mokku-record`` records them again from ``MOKKU_UPSTREAM``. A call that
  matches no recording fails the test, naming the closest recording (docs/recording.md).
- ``openai_client``: an ``openai.OpenAI`` pointed at it (when ``openai`` is installed).
- ``anthropic_client``: an ``anthropic.Anthropic`` pointed at it (when ``anthropic`` is installed).
- ``genai_client``: a ``google.genai.Client`` pointed at it (when ``google-genai`` is installed).

The module imports only the standard library until a fixture is used.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Set

import pytest

RECORDING_SETTINGS = ("MOKKU_MODE", "MOKKU_UPSTREAM", "MOKKU_CASSETTES")

if TYPE_CHECKING:
    from mokku.server.app import App


class MokkuHandle:
    """What a test uses: the server's URLs, its journal and its scripted replies."""

    def __init__(self, url: str, app: App) -> None:
        self.url = url
        self.base_url = url + "/v1"
        assert app.journal is not None and app.scenarios is not None  # the plugin turns both on
        self._journal, self._scenarios = app.journal, app.scenarios
        self.app = app
        self._recorded: Set[str] = set()  # cassettes emptied for recording this session

    def requests(self, **filters: Any) -> List[Dict[str, Any]]:
        """Journal entries, oldest first (filters: ``path``, ``model``, ``since``, ``limit``)."""
        filters.setdefault("limit", 10_000)
        return self._journal.entries(**filters)

    def script(self, rule: Any = None, **match: Any) -> Dict[str, Any]:
        """Add a rule: a whole rule dict, or the reply content plus match fields.

        ``mokku.script("Sunny.", contains="weather", times=1)``
        """
        from mokku.control.scenarios import check_rule

        if not isinstance(rule, dict):
            times = match.pop("times", None)
            rule = {"match": match, "reply": {"content": rule}, "times": times}
        return self._scenarios.add(check_rule(rule))

    def verdict(self) -> Dict[str, Any]:
        """How the clients behaved so far in this test (see ``mokku.control.verdict``)."""
        from mokku.control.verdict import judge

        return judge(self.requests())

    def clear(self) -> None:
        self._journal.clear()
        self._scenarios.clear()

    def use_cassette(self, directory: str, mode: str, upstream: str) -> Any:
        """Route the API calls through a cassette (replayed, or recorded from ``upstream``)."""
        from mokku import config
        from mokku.record.setup import make_proxy

        env = {**os.environ, "MOKKU_MODE": mode, "MOKKU_CASSETTES": directory, "MOKKU_UPSTREAM": upstream}
        proxy = make_proxy(config.load(env), self.app.counters)
        assert proxy.cassettes is not None
        if mode == "record" and os.path.abspath(directory) not in self._recorded:
            proxy.cassettes.clear()  # once a session: tests sharing a cassette record into it together
            self._recorded.add(os.path.abspath(directory))
        proxy.cassettes.reset()
        self.app.proxy = proxy
        self._scenarios.mode_unavailable = proxy.available
        return proxy


@pytest.fixture(scope="session")
def mokku_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MokkuHandle]:
    """The server for the whole session (use ``mokku_server`` or ``mokku`` in tests)."""
    from mokku import config
    from mokku.server.app import App
    from mokku.server.stdlib import make_server

    state = tmp_path_factory.mktemp("mokku") / "state.sqlite3"
    # A test answers with mokku's echo unless it is marked with a cassette: MOKKU_UPSTREAM, exported
    # for --mokku-record, must not send the other tests (and their keys) to the real provider.
    env = {name: value for name, value in os.environ.items() if name not in RECORDING_SETTINGS}
    env.update(MOKKU_JOURNAL="1", MOKKU_ADMIN="1", MOKKU_STATE=str(state))
    app = App(config.load(env))
    server = make_server(app, "127.0.0.1", 0, threads=64)
    thread = threading.Thread(target=server.serve_forever, name="mokku-server", daemon=True)
    thread.start()
    try:
        yield MokkuHandle(f"http://127.0.0.1:{server.server_address[1]}", app)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def mokku_server(mokku_session: MokkuHandle) -> str:
    return mokku_session.url


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mokku")
    group.addoption(
        "--mokku-record",
        action="store_true",
        help="record the cassettes of tests marked mokku_cassette again, from MOKKU_UPSTREAM",
    )
    group.addoption(
        "--mokku-cassettes", help="the root of cassette directories (default: cassettes/ beside each test)"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "mokku_cassette(name): replay the test's API calls from a cassette (record with --mokku-record)",
    )


@pytest.fixture
def mokku(mokku_session: MokkuHandle, request: pytest.FixtureRequest) -> Iterator[MokkuHandle]:
    mokku_session.clear()
    marker = request.node.get_closest_marker("mokku_cassette")
    if marker is None:
        yield mokku_session
        return
    name = str(marker.args[0]) if marker.args else request.node.name.replace("/", "_").replace("\\", "_")
    if name in ("", ".", "..") or "/" in name or "\\" in name or os.path.isabs(name):
        # A cassette is a folder that recording empties first: never one outside the cassettes.
        pytest.fail(f"mokku_cassette({name!r}): a cassette's name is one folder name", pytrace=False)
    root = request.config.getoption("mokku_cassettes") or os.path.join(
        os.path.dirname(str(request.node.fspath)), "cassettes"
    )
    recording = bool(request.config.getoption("mokku_record"))
    upstream = os.environ.get("MOKKU_UPSTREAM", "")
    if recording and not upstream:
        pytest.fail("--mokku-record needs MOKKU_UPSTREAM: the provider to record from", pytrace=False)
    before = mokku_session._scenarios.mode_unavailable
    proxy = mokku_session.use_cassette(
        os.path.join(root, name), "record" if recording else "replay", upstream
    )
    try:
        yield mokku_session
    finally:
        mokku_session.app.proxy = None
        mokku_session._scenarios.mode_unavailable = before
    if proxy.misses:
        pytest.fail(
            f"calls matched no recording in the cassette {name!r}:\n" + "\n".join(proxy.misses), pytrace=False
        )


@pytest.fixture
def openai_client(mokku: MokkuHandle) -> Iterator[Any]:
    openai = pytest.importorskip("openai")
    with openai.OpenAI(base_url=mokku.base_url, api_key="sk-mokku-test", max_retries=0) as client:
        yield client


@pytest.fixture
def anthropic_client(mokku: MokkuHandle) -> Iterator[Any]:
    anthropic = pytest.importorskip("anthropic")
    with anthropic.Anthropic(base_url=mokku.url, api_key="sk-ant-mokku-test", max_retries=0) as client:
        yield client


@pytest.fixture
def genai_client(mokku: MokkuHandle) -> Iterator[Any]:
    genai = pytest.importorskip("google.genai")
    client = genai.Client(api_key="mokku-test", http_options={"base_url": mokku.url, "api_version": "v1beta"})
    try:
        yield client
    finally:
        client.close()
