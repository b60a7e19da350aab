"""Scripted replies: rules that tell the "model" what to answer in a test.

A rule matches on any of ``model``, ``endpoint`` (``chat.completions``, ``completions``,
``responses``, ``embeddings``, Anthropic's ``messages``, Gemini's ``generate_content``), a ``contains`` substring or ``regex`` of the last user message
(prompt, input), and ``nth`` (only the nth call that matches the rest); it replies with
``content`` (streamed token by token like the echo), a ``tool_call`` (``name`` and
``arguments``), or a ``fault`` from the fault table, optionally with ``latency``
(``ttft_ms``, ``token_ms``); ``times`` is how often it may fire (absent: without limit). The
first matching rule wins; with none, the echo. Rules live in the same SQLite file as the
journal, so every worker of a server sees them. A call reads the rules and matches them without any
lock; only counting a hit takes the file's write lock, for one short transaction that checks the rule
is not used up and keeps ``times`` and ``nth`` exact under concurrency: a slow match never holds up
another worker. At most ``MAX_RULES`` rules of ``MAX_RULE_BYTES`` each (docs/limits.md). Rules that
cannot be read answer a 503 naming the state file, never an echo the test did not ask for.
"""

from __future__ import annotations

import contextlib
import json
import logging
import mmap
import os
import sqlite3
import stat
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from mokku import errors, saferegex
from mokku.api import validate
from mokku.control import statedb
from mokku.simulation import faults

log = logging.getLogger("mokku")

ENDPOINTS = ("chat.completions", "completions", "responses", "embeddings", "messages", "generate_content")
_MATCH_KEYS = ("model", "endpoint", "contains", "regex", "nth")
_REPLY_KEYS = ("content", "tool_call", "fault", "latency", "mode")
PROXY_MODES = ("record", "replay", "replay_or_record", "passthrough", "mock")
_REPLIES, _MODES = 1, 2  # bits of the shared flag: some rule replies, some rule switches the mode
FLAG_SUFFIX = "-rules"
MAX_RULES = 1000  # rules held at once
MAX_RULE_BYTES = 64 * 1024  # one rule, as JSON
MAX_TIMES = 1_000_000_000  # the largest ``times`` and ``nth``


def check_rule(rule: Any, param: str = "rule") -> Dict[str, Any]:
    """A rule in its stored form, or a 400 naming the field that is wrong."""
    if not isinstance(rule, dict):
        raise validate.wrong_type(param, "an object", rule)
    size = len(json.dumps(rule, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass"))
    if size > MAX_RULE_BYTES:
        raise errors.invalid_request(
            f"A rule holds at most {MAX_RULE_BYTES} bytes of JSON; this one has {size}.",
            param,
            "rule_too_large",
        )
    match = validate.obj(rule.get("match"), f"{param}.match") or {}
    for key in match:
        if key not in _MATCH_KEYS:
            raise validate.invalid_value(f"{param}.match.{key}", key, _MATCH_KEYS)
    for key in ("model", "contains", "regex"):
        validate.string(match.get(key), f"{param}.match.{key}")
    if match.get("endpoint") is not None and match["endpoint"] not in ENDPOINTS:
        raise validate.invalid_value(f"{param}.match.endpoint", match["endpoint"], ENDPOINTS)
    if match.get("regex") is not None:
        try:
            saferegex.compile(match["regex"])
        except saferegex.UnsafePattern as exc:
            raise errors.invalid_request(f"Invalid regex: {exc}.", f"{param}.match.regex") from None
    validate.integer(match.get("nth"), f"{param}.match.nth", 1, MAX_TIMES)
    reply = validate.obj(validate.required(rule, "reply", f"{param}.reply"), f"{param}.reply") or {}
    for key in reply:
        if key not in _REPLY_KEYS:
            raise validate.invalid_value(f"{param}.reply.{key}", key, _REPLY_KEYS)
    kinds: List[str] = [key for key in ("content", "tool_call", "fault", "mode") if key in reply]
    if "mode" in reply and "latency" in reply:
        kinds.append("latency")  # a recording or the upstream sets the pace
    if len(kinds) > 1:
        raise errors.invalid_request(
            f"A reply has one of content, tool_call, fault or mode, not {kinds}.", f"{param}.reply"
        )
    if "mode" in reply and reply["mode"] not in PROXY_MODES:
        raise validate.invalid_value(f"{param}.reply.mode", reply["mode"], PROXY_MODES)
    if not kinds and "latency" not in reply:
        raise validate.missing(f"{param}.reply.content")
    validate.string(reply.get("content"), f"{param}.reply.content")
    if "tool_call" in reply:
        call = validate.obj(reply["tool_call"], f"{param}.reply.tool_call") or {}
        validate.required_string(call, "name", f"{param}.reply.tool_call.name")
        validate.obj(call.get("arguments"), f"{param}.reply.tool_call.arguments")
    if "fault" in reply:
        spec = validate.string(reply["fault"], f"{param}.reply.fault") or ""
        try:
            faults.parse_spec(spec)
        except ValueError as exc:
            raise errors.invalid_request(str(exc), f"{param}.reply.fault") from None
    latency = validate.obj(reply.get("latency"), f"{param}.reply.latency") or {}
    for key in ("ttft_ms", "token_ms"):
        validate.number(latency.get(key), f"{param}.reply.latency.{key}", 0, 600_000)
    times = validate.integer(rule.get("times"), f"{param}.times", 1, MAX_TIMES)
    return {"match": match, "reply": reply, "times": times}


class Scenarios:
    """The shared rule list. The file is created by the first rule.

    Whether any rule exists is also kept in one byte of shared memory (``shared``: a small file
    beside the state file, mapped by every process that uses it; else this process's own), so
    that a request finds "no rules" without touching the file system: a ``stat`` per request
    cost about 5% of the chat throughput. The flag file is never followed through a symlink; when
    it cannot be used, this process reads the state file at every call instead.
    """

    def __init__(self, path: str, shared: bool = True) -> None:
        self.path = path
        # Nothing here may fail: a worker boots whatever state the file is in.
        self._connections = statedb.Connections(path, create=False)
        # Parsed rules by (file, id): a rule never changes once added, only its counters do.
        self._cache: Dict[Tuple[statedb.Identity, int], Dict[str, Any]] = {}
        # Why this server cannot handle a call in a rule's mode (set by the app when it records or replays).
        self.mode_unavailable: Callable[[str], Optional[str]] = _no_proxy
        self._any = mmap.mmap(-1, 1)
        self._known = True  # the flag tells whether rules exist (else: ask the file each time)
        if not shared:
            return
        try:
            self._any, created = _shared_flag(path + FLAG_SUFFIX)
        except OSError as exc:
            log.warning(
                "scripted replies: cannot use %s (%s); every call reads the state file instead",
                path + FLAG_SUFFIX,
                exc,
            )
            self._any[0], self._known = _REPLIES | _MODES, False
            return
        if created:  # a new flag: say what the file holds (a file that cannot be read: ask it each time)
            self._any[0] = self._stored_any()

    def _stored_any(self) -> int:
        try:
            with self._connections.using() as db:
                return _REPLIES | _MODES if db.execute("SELECT 1 FROM scenarios LIMIT 1").fetchone() else 0
        except statedb.Missing:
            return 0
        except statedb.STATE_ERRORS:
            return _REPLIES | _MODES

    def _set_flag(self, value: int) -> None:
        if self._known:
            self._any[0] = value

    @contextlib.contextmanager
    def _writing(self, create: bool = False) -> Iterator[sqlite3.Connection]:
        """One short transaction holding the file's write lock: decisions stay exact across workers,
        and the shared flag only changes under the lock. Never held while a rule is matched."""
        with self._connections.using(create) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def add(self, rule: Dict[str, Any]) -> Dict[str, Any]:
        return self.add_all([rule])[0]

    def add_all(self, rules: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """Add checked rules, all or none; a 400 past ``MAX_RULES`` or for a mode this server cannot
        use, a 503 when the file fails."""
        for index, rule in enumerate(rules):
            why = self.mode_unavailable(rule["reply"]["mode"]) if _switches(rule) else None
            if why:
                param = f"rules[{index}].reply.mode" if len(rules) > 1 else "reply.mode"
                raise errors.invalid_request(f"This rule cannot apply: {why}.", param, "mode_unavailable")
        try:
            with self._writing(create=True) as db:
                held = db.execute("SELECT COUNT(*) FROM scenarios").fetchone()[0]
                if held + len(rules) > MAX_RULES:
                    raise errors.invalid_request(
                        f"At most {MAX_RULES} rules are held at once; {held} are, and {len(rules)} more "
                        "were sent. DELETE /mokku/scenarios removes them all.",
                        "rules",
                        "too_many_rules",
                    )
                ids = [
                    db.execute(
                        "INSERT INTO scenarios (rule, times_left) VALUES (?, ?)",
                        (json.dumps(rule), rule["times"]),
                    ).lastrowid
                    for rule in rules
                ]
                for rule in rules:
                    self._set_flag(self._any[0] | (_MODES if _switches(rule) else _REPLIES))
        except statedb.STATE_ERRORS as exc:
            raise statedb.unavailable(self.path, exc) from None
        return [dict(rule, id=rule_id) for rule, rule_id in zip(rules, ids)]

    def rules(self) -> List[Dict[str, Any]]:
        try:
            with self._connections.using() as db:
                rows = db.execute("SELECT id, rule, times_left, seen FROM scenarios ORDER BY id").fetchall()
        except statedb.Missing:
            return []
        except statedb.STATE_ERRORS as exc:
            raise statedb.unavailable(self.path, exc) from None
        return [dict(json.loads(rule), id=i, times_left=left, calls=seen) for i, rule, left, seen in rows]

    def clear(self) -> None:
        try:
            with self._writing() as db:
                db.execute("DELETE FROM scenarios")
                self._set_flag(0)
        except statedb.Missing:
            self._set_flag(0)
        except statedb.STATE_ERRORS as exc:
            raise statedb.unavailable(self.path, exc) from None

    def match(self, endpoint: str, model: str, text: str, modes: bool = False) -> Optional[Dict[str, Any]]:
        """The reply of the first rule that matches this call (counting it), or None; a 503 when
        the rules cannot be read. ``modes``: the rules that switch the mode, else the others."""
        if not self._any[0] & (_MODES if modes else _REPLIES):
            return None
        for rule_id, rule in self._candidates():
            match = rule["match"]
            if (
                _switches(rule) == modes
                and _matches(match, endpoint, model, text)
                and self._count(rule_id, match.get("nth"))
            ):
                return dict(rule["reply"], rule_id=rule_id)
        return None

    def _candidates(self) -> List[Tuple[int, Dict[str, Any]]]:
        """The rules not used up, in order, read without taking the write lock."""
        try:
            with self._connections.using() as db:
                file = self._connections.identity() or (-1, -1)
                ids = db.execute(
                    "SELECT id FROM scenarios WHERE times_left IS NULL OR times_left > 0 ORDER BY id"
                ).fetchall()
                found = []
                for (rule_id,) in ids:
                    rule = self._cache.get((file, rule_id))
                    if rule is None:
                        row = db.execute("SELECT rule FROM scenarios WHERE id = ?", (rule_id,)).fetchone()
                        if row is None:  # removed meanwhile
                            continue
                        if len(self._cache) >= 2 * MAX_RULES:
                            self._cache.clear()
                        rule = self._cache[(file, rule_id)] = json.loads(row[0])
                    found.append((rule_id, rule))
                return found
        except statedb.Missing as exc:
            if not self._known:
                return []
            raise statedb.unavailable(self.path, exc) from None  # rules were added, and the file is gone
        except statedb.STATE_ERRORS as exc:
            raise statedb.unavailable(self.path, exc) from None

    def _count(self, rule_id: int, nth: Optional[int]) -> bool:
        """Count a call that matched the rule; True when the rule answers it. Under the write lock:
        the rule may have been used up by another worker since it was read."""
        try:
            with self._writing() as db:
                row = db.execute("SELECT times_left, seen FROM scenarios WHERE id = ?", (rule_id,)).fetchone()
                if row is None or (row[0] is not None and row[0] <= 0):
                    return False
                if nth is not None and row[1] + 1 != nth:
                    db.execute("UPDATE scenarios SET seen = seen + 1 WHERE id = ?", (rule_id,))
                    return False
                db.execute(
                    "UPDATE scenarios SET seen = seen + 1, times_left = times_left - 1 WHERE id = ?",
                    (rule_id,),
                )
                return True
        except statedb.STATE_ERRORS as exc:
            raise statedb.unavailable(self.path, exc) from None


def _no_proxy(mode: str) -> Optional[str]:
    if mode == "mock":
        return None
    return "this server neither records nor replays (MOKKU_MODE is not set)"


def _switches(rule: Dict[str, Any]) -> bool:
    return "mode" in rule["reply"]


def _shared_flag(path: str) -> Tuple[mmap.mmap, bool]:
    """One byte of memory shared through the file at ``path`` (several processes, one state file),
    and whether this call made the file. A symlink or anything but a regular file is refused."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path} is not a regular file")
        created = info.st_size < 1
        if created:
            os.ftruncate(descriptor, 1)
        return mmap.mmap(descriptor, 1), created
    finally:
        os.close(descriptor)


def _matches(match: Dict[str, Any], endpoint: str, model: str, text: str) -> bool:
    if match.get("model") is not None and match["model"] != model:
        return False
    if match.get("endpoint") is not None and match["endpoint"] != endpoint:
        return False
    if match.get("contains") is not None and match["contains"] not in text:
        return False
    if match.get("regex") is None:
        return True
    try:  # linear in the text, whatever the pattern (rules stored before the check may be unsafe)
        return saferegex.compile(match["regex"]).search(text)
    except saferegex.UnsafePattern:
        return False


def load_file(rules_path: str, state: str) -> int:
    """Add the rules of a JSON file (YAML too when PyYAML is installed) at start-up; returns how many."""
    with open(rules_path, encoding="utf-8") as handle:
        text = handle.read()
    if rules_path.endswith((".yml", ".yaml")):
        try:
            import yaml  # optional: only for YAML rule files
        except ImportError:
            raise ValueError("MOKKU_SCENARIOS is YAML but PyYAML is not installed; use JSON") from None
        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    raw = data.get("rules") if isinstance(data, dict) else data
    if not isinstance(raw, list):
        raise ValueError('MOKKU_SCENARIOS must hold a list of rules, or {"rules": [...]}')
    try:
        rules = [check_rule(rule, f"rules[{index}]") for index, rule in enumerate(raw)]
        if rules:
            Scenarios(state).add_all(rules)
    except errors.APIError as exc:
        raise ValueError(f"MOKKU_SCENARIOS: {exc.message}") from None
    return len(rules)
