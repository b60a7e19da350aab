"""The WSGI entry point: ``gunicorn mokku.wsgi:app``."""

from __future__ import annotations

from mokku import config
from mokku.server.app import App
from mokku.telemetry import instrument

settings = config.load()
config.setup_logging(settings.log_level)
core = App(settings)
app = instrument(core)
