"""Scripted replies: rules that tell the "model" what to answer in a test.

A rule matches on any of ``model``, ``endpoint`` (``chat.completions``, ``completions``,
``responses``, ``embeddings``), a ``contains`` substring or ``regex`` of the last user message
(prompt, input), and ``nth`` (only the nth call that matches the rest); it replies with
``content`` (streamed token by token like the echo), a ``tool_call`` (``name`` and
``arguments``), or a ``fault`` from the fault table, optionally with ``latency``
(``ttft_ms``, ``token_ms``); ``times`` is how often it may fire (absent: without limit). The
first matching rule wins; with none, the echo. Rules live in the same SQLite file as the
journal, so every worker of a server sees them; one transaction per matching decision keeps
``times`` and ``nth`` exact under concurrency.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import re
import sqlite3
import threading
from typing import Any, Dict, Iterator, List, Optional

from mokku import errors
from mokku.api import validate
from mokku.simulation import faults

ENDPOINTS = ("chat.completions", "completions", "responses", "embeddings")
_MATCH_KEYS = ("model", "endpoint", "contains", "regex", "nth")
_REPLY_KEYS = ("content", "tool_call", "fault", "latency")
FLAG_SUFFIX = "-rules"


def check_rule(rule: Any, param: str = "rule") -> Dict[str, Any]:
    """A rule in its stored form, or a 400 naming the field that is wrong."""
    if not isinstance(rule, dict):
        raise validate.wrong_type(param, "an object", rule)
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
            re.compile(match["regex"])
        except re.error as exc:
            raise errors.invalid_request(f"Invalid regex: {exc}.", f"{param}.match.regex") from None
    validate.integer(match.get("nth"), f"{param}.match.nth", 1)
    reply = validate.obj(validate.required(rule, "reply", f"{param}.reply"), f"{param}.reply") or {}
    for key in reply:
        if key not in _REPLY_KEYS:
            raise validate.invalid_value(f"{param}.reply.{key}", key, _REPLY_KEYS)
    kinds = [key for key in ("content", "tool_call", "fault") if key in reply]
    if len(kinds) > 1:
        raise errors.invalid_request(
            f"A reply has one of content, tool_call or fault, not {kinds}.", f"{param}.reply"
        )
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
    times = validate.integer(rule.get("times"), f"{param}.times", 1)
    return {"match": match, "reply": reply, "times": times}


class Scenarios:
    """The shared rule list. The file is created by the first rule.

    Whether any rule exists is also kept in one byte of shared memory (``shared``: a small file
    beside the state file, mapped by every process that uses it; else this process's own), so
    that a request finds "no rules" without touching the file system: a ``stat`` per request
    cost about 5% of the chat throughput.
    """

    def __init__(self, path: str, shared: bool = True) -> None:
        self.path = path
        self._local = threading.local()
        self._any = _flag(path + FLAG_SUFFIX if shared else None)

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA busy_timeout=10000")
            db.execute(
                "CREATE TABLE IF NOT EXISTS scenarios (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "rule TEXT NOT NULL, times_left INTEGER, seen INTEGER NOT NULL DEFAULT 0)"
            )
            self._local.db = db
        return db

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One transaction holding the file's write lock: decisions stay exact across workers, and
        the shared flag only changes under the lock."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        finally:
            db.execute("COMMIT")

    def add(self, rule: Dict[str, Any]) -> Dict[str, Any]:
        with self._writing() as db:
            row = db.execute(
                "INSERT INTO scenarios (rule, times_left) VALUES (?, ?)", (json.dumps(rule), rule["times"])
            )
            self._any[0] = 1
        return dict(rule, id=row.lastrowid)

    def rules(self) -> List[Dict[str, Any]]:
        if not os.path.exists(self.path):
            return []
        rows = self._db().execute("SELECT id, rule, times_left, seen FROM scenarios ORDER BY id").fetchall()
        return [dict(json.loads(rule), id=i, times_left=left, calls=seen) for i, rule, left, seen in rows]

    def clear(self) -> None:
        if os.path.exists(self.path):
            with self._writing() as db:
                db.execute("DELETE FROM scenarios")
                self._any[0] = 0

    def match(self, endpoint: str, model: str, text: str) -> Optional[Dict[str, Any]]:
        """The reply of the first rule that matches this call (counting it), or None."""
        if not self._any[0]:
            return None
        with self._writing() as db:
            rows = db.execute(
                "SELECT id, rule, times_left, seen FROM scenarios WHERE times_left IS NULL OR times_left > 0 ORDER BY id"
            ).fetchall()
            for rule_id, raw, _left, seen in rows:
                rule = json.loads(raw)
                if not _matches(rule["match"], endpoint, model, text):
                    continue
                nth = rule["match"].get("nth")
                if nth is not None and seen + 1 != nth:
                    db.execute("UPDATE scenarios SET seen = seen + 1 WHERE id = ?", (rule_id,))
                    continue
                db.execute(
                    "UPDATE scenarios SET seen = seen + 1, times_left = times_left - 1 WHERE id = ?",
                    (rule_id,),
                )
                return dict(rule["reply"], rule_id=rule_id)
            return None


def _flag(path: Optional[str]) -> mmap.mmap:
    """One byte of memory, shared through ``path`` when given (several processes, one state file)."""
    if path is None:
        return mmap.mmap(-1, 1)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(descriptor).st_size < 1:
            os.ftruncate(descriptor, 1)
        return mmap.mmap(descriptor, 1)
    finally:
        os.close(descriptor)


def _matches(match: Dict[str, Any], endpoint: str, model: str, text: str) -> bool:
    if match.get("model") is not None and match["model"] != model:
        return False
    if match.get("endpoint") is not None and match["endpoint"] != endpoint:
        return False
    if match.get("contains") is not None and match["contains"] not in text:
        return False
    return match.get("regex") is None or re.search(match["regex"], text) is not None


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
    except errors.APIError as exc:
        raise ValueError(f"MOKKU_SCENARIOS: {exc.message}") from None
    store = Scenarios(state)
    for rule in rules:
        store.add(rule)
    return len(rules)
