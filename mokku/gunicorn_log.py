"""gunicorn's log, with credentials kept out of its access lines and of the lines it logs.

gunicorn writes an access line only when asked (``--access-logfile``), and then as it comes: a
Gemini key in ``?key=``, an ``Authorization`` header in a format's ``%({authorization}i)s``. Here
each credential is masked as the journal and the spans mask it (``mokku.credentials``).

A client that stops reading its answer has its connection closed once a write waits
``WRITE_SECONDS`` (``mokku.server.http``); gunicorn logs that as a socket error with a traceback,
which here is one line, as mokku's own server logs it.
"""

from __future__ import annotations

import sys
from typing import Any, Dict, Tuple

from gunicorn.glogging import Logger

from mokku.credentials import is_secret, redact_query, redact_text


class AccessLogger(Logger):
    def exception(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(sys.exc_info()[1], TimeoutError):
            self.info("Closed a connection whose client stopped reading: %s", sys.exc_info()[1])
            return
        super().exception(*_redacted(msg, args), **kwargs)

    # gunicorn logs a request it refuses with its request line as it came (a key in its query).
    def warning(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        super().warning(*_redacted(msg, args), **kwargs)

    def error(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        super().error(*_redacted(msg, args), **kwargs)

    def info(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        super().info(*_redacted(msg, args), **kwargs)

    def debug(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        super().debug(*_redacted(msg, args), **kwargs)

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> Dict[str, Any]:
        atoms: Dict[str, Any] = super().atoms(resp, req, environ, request_time)
        query = atoms.get("q") or ""
        redacted = redact_query(query) if query else query
        for name, value in atoms.items():
            if name.startswith("{") and is_secret(name[1:-2]):  # a header or environ variable
                atoms[name] = "REDACTED"
            elif redacted != query and isinstance(value, str) and query in value:
                atoms[name] = value.replace(query, redacted)  # the query, the request line, RAW_URI
        return atoms


def _redacted(msg: Any, args: Tuple[Any, ...]) -> Tuple[Any, ...]:
    """A log call's message and arguments with the queries in them redacted."""
    return tuple(redact_text(part) if isinstance(part, str) else part for part in (msg, *args))
