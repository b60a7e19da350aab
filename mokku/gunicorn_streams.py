"""The "many streams" profile: ``gunicorn -c python:mokku.gunicorn_streams mokku.wsgi:app``.

Everything in :mod:`mokku.gunicorn_conf`, tuned for thousands of long, slow streams (a slow model
at 10 tokens/s holds a thread for the whole answer): each stream needs its own thread, so each
worker runs ``MOKKU_THREADS`` threads (here 640 unless set), and stops accepting once it has a
connection for every thread plus a few kept alive, so that a busy worker leaves new streams to
the others instead of queueing them. Measured in ``bench/`` (W5): 1,000 streams on 2 workers.
"""

from __future__ import annotations

import os as _os

from mokku.gunicorn_conf import *  # noqa: F403 (the same settings and hooks)
from mokku.gunicorn_conf import _settings

threads = _settings.threads if _os.environ.get("MOKKU_THREADS", "").strip() else 640
worker_connections = threads + 32
