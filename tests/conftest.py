from __future__ import annotations

from typing import Callable, Dict, Iterator

import openai
import pytest
import webtest

from mokku import config
from mokku.server.app import App

from .servers import ENTRY_POINTS, LiveServer


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
