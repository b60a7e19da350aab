"""Calling the app directly, as a WSGI server would: the body iterable is handed back unread and
unclosed, so a test can read it part way and decide when the server "closes" it."""

from __future__ import annotations

import io
import json
from typing import Any, Callable, Dict


def post(app: Callable[..., Any], path: str, body: Dict[str, Any]) -> Any:
    """POST ``body`` as JSON to ``path``; the response's body iterable."""
    raw = json.dumps(body).encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(raw)),
        "wsgi.input": io.BytesIO(raw),
        "wsgi.multithread": True,
    }
    return app(environ, lambda status, headers: None)
