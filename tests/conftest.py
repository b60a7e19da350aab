from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Dict, Iterator

import openai
import pytest
import webtest

from mokku import config
from mokku.server.app import App

from .servers import ENTRY_POINTS, LiveServer

if TYPE_CHECKING:
    from .redis_server import RedisServer


@pytest.fixture(scope="session")
def app() -> webtest.TestApp:
    """The real gunicorn target, ``mokku.wsgi:app`` (telemetry middleware included)."""
    from mokku.wsgi import app as wsgi_app

    return webtest.TestApp(wsgi_app)


@pytest.fixture
def make_app() -> Callable[..., webtest.TestApp]:
    """An app built from the given ``MOKKU_*`` environment, for settings-dependent tests."""

    def build(env: Dict[str, str]) -> webtest.TestApp:
        return webtest.TestApp(App(config.load(env)))

    return build


@pytest.fixture(scope="session", params=ENTRY_POINTS)
def live_server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """The real server in a subprocess: ``python -m mokku`` and gunicorn (gthread)."""
    server = LiveServer(request.param)
    yield server
    server.close()


@pytest.fixture
def client(live_server: LiveServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=live_server.url + "/v1", api_key="sk-test-key", max_retries=0) as sdk:
        yield sdk


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    from .redis_server import RedisServer

    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "redis"])
def store_env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, str]:
    """Settings for each store: the embedded state file, and a real Redis (its own prefix per test)."""
    state = str(tmp_path_factory.mktemp("state") / "state.sqlite3")
    if request.param == "sqlite":
        return {"MOKKU_STATE": state}
    redis_server = request.getfixturevalue("redis_server")
    return redis_server.env()
