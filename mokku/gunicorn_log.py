"""gunicorn's log, with credentials kept out of its access lines.

gunicorn writes an access line only when asked (``--access-logfile``), and then as it comes: a
Gemini key in ``?key=``, an ``Authorization`` header in a format's ``%({authorization}i)s``. Here
each credential is masked as the journal and the spans mask it (``mokku.credentials``).
"""

from __future__ import annotations

from typing import Any, Dict

from gunicorn.glogging import Logger

from mokku.credentials import is_secret, redact_query


class AccessLogger(Logger):
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
