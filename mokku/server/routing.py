"""A tiny router: routes are data, static paths are dict hits, patterns are regexes.

A pattern like ``/v1/models/{model:path}`` declares a parameter and what it may
contain: ``{name}`` matches one path segment, ``{name:path}`` matches the rest
of the path including ``/`` (fine-tuned model ids such as
``ft:gpt-4o-mini:org:name:id`` may hold both ``/`` and ``:``).
"""

from __future__ import annotations

import re
from typing import Callable, Dict, Iterable, List, Optional, Pattern, Tuple

from mokku import errors
from mokku.server.dialect import Dialect
from mokku.server.http import Request, Response

Handler = Callable[..., Response]

_PARAM = re.compile(r"\{(\w+)(?::(\w+))?\}")
_CONVERTERS = {"segment": r"[^/]+", "path": r".+", "any": r"[^/]*"}  # any: a segment, maybe empty


class Route:
    """One endpoint: ``name`` is the template without converters (``/v1/models/{model}``),
    the form span names and ``http.route`` use."""

    __slots__ = ("dialect", "handler", "method", "name", "template")

    def __init__(
        self, method: str, template: str, handler: Handler, dialect: Optional[Dialect] = None
    ) -> None:
        self.method = method
        self.template = template
        self.handler = handler
        self.name = _PARAM.sub(r"{\1}", template)
        self.dialect = dialect  # None: the request's headers choose (OpenAI's by default)


def _compile(template: str) -> Pattern[str]:
    pattern, last = [], 0
    for match in _PARAM.finditer(template):
        name, converter = match.group(1), match.group(2) or "segment"
        pattern.append(re.escape(template[last : match.start()]))
        pattern.append(f"(?P<{name}>{_CONVERTERS[converter]})")
        last = match.end()
    pattern.append(re.escape(template[last:]))
    return re.compile("".join(pattern) + r"\Z")


class Router:
    """Finds the route for (method, path); raises 404 or 405 (with ``Allow``) when there is none."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self._static: Dict[str, Dict[str, Route]] = {}
        self._dynamic: List[Tuple[Pattern[str], Dict[str, Route]]] = []
        dynamic: Dict[str, Dict[str, Route]] = {}
        for route in routes:
            table = dynamic if _PARAM.search(route.template) else self._static
            table.setdefault(route.template, {})[route.method] = route
        self._dynamic = [(_compile(template), by_method) for template, by_method in dynamic.items()]

    def match(self, request: Request) -> Tuple[Route, Dict[str, str]]:
        by_method, params = self._find(request)
        route = by_method.get(request.method)
        if route is None and request.method == "HEAD":
            route = by_method.get("GET")  # answered as GET, without the body (see the app)
        if route is None:
            raise errors.method_not_allowed(request.method, request.path, _allowed(by_method))
        return route, params

    def methods(self, request: Request) -> List[str]:
        """The methods the request's path is served with; 404 when none."""
        return _allowed(self._find(request)[0])

    def _find(self, request: Request) -> Tuple[Dict[str, Route], Dict[str, str]]:
        path = request.path
        by_method = self._static.get(path)
        if by_method is not None:
            return by_method, {}
        for pattern, candidates in self._dynamic:
            found = pattern.match(path)
            if found:
                return candidates, found.groupdict()
        raise errors.invalid_url(request.method, path)


def _allowed(by_method: Dict[str, Route]) -> List[str]:
    return sorted({*by_method, "HEAD"} if "GET" in by_method else set(by_method))
