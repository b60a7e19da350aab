"""Cassettes: recorded interactions, one readable JSON file each, safe to commit.

A request is matched by its method, path, dialect and normalised body (keys sorted, the ignored
fields left out), hashed into a key; the n-th identical request gets the n-th recording (the last
one past them), counted in the server's state file so every worker counts the same. A file is
``<dir>/<path as a name>/<key>-<n>.json``, written whole to a temporary file and renamed into
place: concurrent workers never tear one, a crash mid-write leaves none.

Nothing secret is written: credentials' headers (``Authorization``, ``api-key``, ``x-api-key``,
``x-goog-api-key``, cookies, organisation and project headers) never are, ``key=`` leaves the
query, and configured body fields and patterns are replaced by ``[redacted]``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import tempfile
from typing import Any, Dict, Iterator, List, Mapping, Optional, Pattern, Sequence, Tuple
from urllib.parse import parse_qsl, urlencode

from mokku import errors
from mokku.credentials import is_secret
from mokku.store.base import CounterStore

REDACTED = "[redacted]"
IGNORED_FIELDS = ("user", "metadata", "stream_options")
# Response headers not worth keeping: the connection's, and what the replay makes anew.
_DROPPED_HEADERS = frozenset(
    "connection keep-alive transfer-encoding content-length date server set-cookie cookie "
    "openai-organization openai-project anthropic-organization-id x-mokku-fault".split()
)
_NEVER_SENT_ON = frozenset("api-key x-api-key x-goog-api-key authorization cookie".split())
MAX_DESCRIBED = 3
CACHED = 1024  # recordings kept in memory while replaying


# Rate limits counted in tokens (``x-ratelimit-remaining-tokens``): "token" in their names is no credential.
_RATE_LIMITS = ("x-ratelimit-", "anthropic-ratelimit-")


def secret_header(name: str) -> bool:
    """Whether a response header is left out of a recording: a credential, or the connection's."""
    lowered = name.lower()
    if lowered in _NEVER_SENT_ON or lowered in _DROPPED_HEADERS:
        return True
    return is_secret(lowered) and not lowered.startswith(_RATE_LIMITS)


class Redaction:
    """What is blanked in what a cassette keeps: body fields by name, text by pattern."""

    def __init__(self, fields: Sequence[str] = (), patterns: Sequence[str] = ()) -> None:
        self.fields = frozenset(fields)
        self.patterns: List[Pattern[str]] = [re.compile(p) for p in patterns]

    def value(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: REDACTED if k in self.fields else self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    def text(self, text: str) -> str:
        for pattern in self.patterns:
            text = pattern.sub(REDACTED, text)
        return text


def normalise(body: Any, ignored: Sequence[str]) -> Any:
    """The body as matching sees it: top-level ``ignored`` fields left out (key order is made
    irrelevant when it is encoded)."""
    if isinstance(body, dict):
        return {k: v for k, v in body.items() if k not in ignored}
    return body


def query_without_key(query: str) -> str:
    return urlencode([(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "key"])


def matching_key(method: str, path: str, dialect: str, query: str, body: Any) -> str:
    text = json.dumps([method, path, dialect, query, body], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def _slug(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", path.strip("/"))[:120] or "root"


class Cassettes:
    """A directory of recordings, with the sequence counters in the server's store."""

    def __init__(self, directory: str, counters: Optional[CounterStore] = None) -> None:
        self.directory = directory
        # Where calls are counted (None: reading recordings only, as ``cassette why`` does).
        self._counters = counters
        self._numbers: Dict[str, List[int]] = {}
        self._entries: Dict[str, Dict[str, Any]] = {}

    def reset(self) -> None:
        """Count this directory's calls from 1 again (a test that uses it begins)."""
        assert self._counters is not None, "counting needs the state store"
        self._counters.reset(os.path.abspath(self.directory))

    def clear(self) -> None:
        """Remove every recording of this directory (before it is recorded again)."""
        for folder, _, names in os.walk(self.directory):
            for name in names:
                if name.endswith(".json"):
                    os.unlink(os.path.join(folder, name))

    def next(self, key: str, kind: str) -> int:
        """The next number for ``key`` (``kind``: recorded or replayed), from 1, atomically (the
        counters are per directory: two cassette directories never share a count)."""
        assert self._counters is not None, "counting needs the state store"
        return self._counters.next(os.path.abspath(self.directory), key, kind)

    def path(self, request_path: str, key: str, number: int) -> str:
        return os.path.join(self.directory, _slug(request_path), f"{key}-{number}.json")

    def find(self, request_path: str, key: str, number: int) -> Optional[Dict[str, Any]]:
        """The n-th recording of ``key``, or the last one when there are fewer; None when none."""
        path = self.path(request_path, key, number)
        if not os.path.exists(path):
            folder, prefix = os.path.dirname(path), key + "-"
            try:
                numbers = [
                    int(name[len(prefix) : -len(".json")])
                    for name in os.listdir(folder)
                    if name.startswith(prefix) and name.endswith(".json") and name[len(prefix) : -5].isdigit()
                ]
            except FileNotFoundError:
                return None
            if not numbers:
                return None
            path = self.path(request_path, key, max(numbers))
        return _read(path)

    def numbers(self, request_path: str, key: str) -> List[int]:
        """The numbers recorded for ``key``, ascending (cached: for replaying, where files are fixed)."""
        found = self._numbers.get(key)
        if found is None:
            folder, prefix = os.path.dirname(self.path(request_path, key, 1)), key + "-"
            try:
                names = os.listdir(folder)
            except FileNotFoundError:
                names = []
            found = sorted(
                int(name[len(prefix) : -len(".json")])
                for name in names
                if name.startswith(prefix) and name.endswith(".json") and name[len(prefix) : -5].isdigit()
            )
            if found:  # a miss is looked up again (and never fills the cache)
                self._remember(self._numbers, key, found)
        return found

    def cached(self, request_path: str, key: str, number: int) -> Dict[str, Any]:
        """A recording read once, kept (a bounded number of them) for the replays that follow."""
        path = self.path(request_path, key, number)
        entry = self._entries.get(path)
        if entry is None:
            entry = _read(path)
            self._remember(self._entries, path, entry)
        return entry

    @staticmethod
    def _remember(cache: Dict[str, Any], key: str, value: Any) -> None:
        if len(cache) >= CACHED:
            cache.clear()
        cache[key] = value

    def exists(self, request_path: str, key: str, number: int) -> bool:
        return os.path.exists(self.path(request_path, key, number))

    def save(self, request_path: str, key: str, number: int, entry: Mapping[str, Any]) -> str:
        """Write one recording whole, atomically (a temporary file renamed into place)."""
        target = self.path(request_path, key, number)
        folder = os.path.dirname(target)
        os.makedirs(folder, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".recording-", suffix=".json", dir=folder)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(entry, out, indent=2, sort_keys=True, ensure_ascii=False)
                out.write("\n")
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        return target

    def recordings(self, request_path: str) -> Iterator[Tuple[str, Dict[str, Any]]]:
        folder = os.path.join(self.directory, _slug(request_path))
        try:
            names = sorted(
                name for name in os.listdir(folder) if name.endswith(".json") and not name.startswith(".")
            )
        except FileNotFoundError:
            return
        for name in names:
            try:
                with open(os.path.join(folder, name), encoding="utf-8") as handle:
                    entry = json.load(handle)
            except (OSError, ValueError, RecursionError):
                continue
            if isinstance(entry, dict) and isinstance(
                entry.get("request"), dict
            ):  # else no request to compare
                yield os.path.join(folder, name), entry

    def closest(self, request: Mapping[str, Any]) -> Tuple[Optional[str], List[str]]:
        """The recording nearest ``request`` (method, path, dialect, query, body) and what differs."""
        best: Tuple[Optional[str], List[str]] = (None, [])
        for file, entry in self.recordings(str(request["path"])):
            try:
                differences = describe(entry["request"], request)
            except RecursionError:  # nested past comparing: not the closest
                continue
            if best[0] is None or len(differences) < len(best[1]):
                best = (file, differences)
        return best


def describe(recorded: Mapping[str, Any], sent: Mapping[str, Any]) -> List[str]:
    """What differs between two requests, field by field (dotted paths), at most a few."""
    out: List[str] = []
    for name in ("method", "dialect", "query"):
        if recorded.get(name) != sent.get(name):
            out.append(f"{name}: {recorded.get(name)!r} recorded, {sent.get(name)!r} sent")
    _differences(recorded.get("body"), sent.get("body"), "body", out)
    return out[:MAX_DESCRIBED] + (
        [f"and {len(out) - MAX_DESCRIBED} more"] if len(out) > MAX_DESCRIBED else []
    )


def _differences(recorded: Any, sent: Any, path: str, out: List[str]) -> None:
    if isinstance(recorded, dict) and isinstance(sent, dict):
        for key in sorted(set(recorded) | set(sent)):
            _differences(recorded.get(key, _MISSING), sent.get(key, _MISSING), f"{path}.{key}", out)
    elif isinstance(recorded, list) and isinstance(sent, list) and len(recorded) == len(sent):
        for index, (a, b) in enumerate(zip(recorded, sent)):
            _differences(a, b, f"{path}[{index}]", out)
    elif recorded != sent:
        shown = [
            ("(absent)" if v is _MISSING else json.dumps(v, ensure_ascii=False)[:60])
            for v in (recorded, sent)
        ]
        out.append(f"{path}: {shown[0]} recorded, {shown[1]} sent")


_MISSING = object()


def _read(path: str) -> Dict[str, Any]:
    """A recording from its file, checked as far as replaying reads it: a file broken or edited by
    hand is a 500 naming it, not a traceback, and never a header that would break the response."""
    try:
        with open(path, encoding="utf-8") as handle:
            entry = json.load(handle)
        check(entry)
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise errors.APIError(
            500,
            f"The recording {path} cannot be replayed: {exc!r}.",
            "server_error",
            code="recording_unreadable",
        ) from None
    return entry


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_FIELD_VALUE = re.compile(r"[^\r\n\x00]*\Z")
MAX_OFFSET = 24 * 3600.0  # seconds: a recorded wait past a day is no recording of an answer


def check(entry: Any) -> None:
    """Raise ValueError unless ``entry`` is a recording replaying can send as it is."""
    if not isinstance(entry, dict) or not isinstance(entry.get("response"), dict):
        raise ValueError("the recording is not an object with a response object")
    response = entry["response"]
    status = response.get("status")
    if type(status) is not int or not 200 <= status <= 599:
        raise ValueError("response.status is not an HTTP status from 200 to 599")
    headers = response.get("headers", [])
    if not isinstance(headers, list):
        raise ValueError("response.headers is not a list")
    for header in headers:
        if not (
            isinstance(header, list) and len(header) == 2 and all(isinstance(part, str) for part in header)
        ):
            raise ValueError("response.headers holds a header that is not two strings")
        if not _TOKEN.match(header[0]) or not _FIELD_VALUE.match(header[1]):
            raise ValueError(f"response.headers holds a header HTTP cannot carry: {header[0][:40]!r}")
    chunks = response.get("chunks", [])
    if not isinstance(chunks, list):
        raise ValueError("response.chunks is not a list")
    _check_time(response.get("elapsed", 0), "response.elapsed")
    for part in [response, *chunks]:
        if not isinstance(part, dict):
            raise ValueError("a chunk is not an object")
        if part is not response:
            _check_time(part.get("at"), "a chunk's at")
        if "base64" in part:
            base64.b64decode(part["base64"], validate=True)
        elif not isinstance(part.get("text", ""), str):
            raise ValueError("a text is not a string")


def _check_time(value: Any, name: str) -> None:
    if type(value) not in (int, float) or not 0 <= value <= MAX_OFFSET:
        raise ValueError(f"{name} is not a number of seconds from 0 to {MAX_OFFSET:g}")
