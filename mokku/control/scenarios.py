"""Scripted replies: rules that tell the "model" what to answer in a test.

A rule matches on any of ``model``, ``endpoint`` (``chat.completions``, ``completions``,
``responses``, ``embeddings``, ``moderations``, Anthropic's ``messages``, Gemini's ``generate_content``), a ``contains`` substring or ``regex`` of the last user message
(prompt, input), and ``nth`` (only the nth call that matches the rest); it replies with
``content`` (streamed token by token like the echo), a ``tool_call`` (``name`` and
``arguments``), the moderation categories ``flagged``, or a ``fault`` from the fault table, optionally with ``latency``
(``ttft_ms``, ``token_ms``); ``times`` is how often it may fire (absent: without limit). The
first matching rule wins; with none, the echo. Rules live in the same SQLite file as the
journal, so every worker of a server sees them. A call reads the rules and matches them without any
lock; only counting a hit takes the file's write lock, for one short transaction that checks the rule
is not used up and keeps ``times`` and ``nth`` exact under concurrency: a slow match never holds up
another worker. At most ``MAX_RULES`` rules of ``MAX_RULE_BYTES`` each (docs/limits.md). Rules that
cannot be read answer a 503 naming the state file, never an echo the test did not ask for.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from mokku import config, errors, saferegex
from mokku.api import moderations, validate
from mokku.control import statedb
from mokku.server import http
from mokku.simulation import faults
from mokku.store.base import RulesStore, TooMany
from mokku.store.sqlite import SqliteRules

log = logging.getLogger("mokku")

ENDPOINTS = (
    "chat.completions",
    "completions",
    "responses",
    "embeddings",
    "moderations",
    "messages",
    "generate_content",
)
_RULE_KEYS = ("match", "reply", "times")
_LISTED_KEYS = ("id", "times_left", "calls")  # what a listed rule adds: taken back, not read
_MATCH_KEYS = ("model", "endpoint", "contains", "regex", "nth")
_LATENCY_KEYS = ("ttft_ms", "token_ms")
_REPLY_KEYS = ("content", "tool_call", "flagged", "fault", "latency", "mode")
# What each of a reply's fields holds: present, it is never null (a reply is told by its keys).
_REPLY_TYPES = {
    "content": "a string",
    "tool_call": "an object",
    "flagged": "an array",
    "fault": "a string",
    "latency": "an object",
    "mode": "a string",
}
_ANSWERS = ("content", "tool_call", "flagged", "fault", "mode")  # a reply has one of these
PROXY_MODES = (*config.RECORD_MODES, "mock")  # ``mock``: mokku's own answer
_REPLIES, _MODES = 1, 2  # kinds of rule: replies, switches the mode
MAX_RULES = 1000  # rules held at once
MAX_RULE_BYTES = 64 * 1024  # one rule, as JSON
MAX_TIMES = 1_000_000_000  # the largest ``times`` and ``nth``
COUNT_ONLY = 0  # an ``nth`` no rule has (they start at 1): ``hit`` counts the call and never answers it
# One call's regex matching, over every rule, in saferegex's work (characters read, states
# visited): about a second at worst, however many rules there are.
MATCH_WORK = 4_000_000


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
    known_keys(rule, param, _RULE_KEYS, _LISTED_KEYS)
    match = validate.obj(rule.get("match"), f"{param}.match") or {}
    known_keys(match, f"{param}.match", _MATCH_KEYS)
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
    for key, value in reply.items():
        if key not in _REPLY_KEYS:
            raise validate.invalid_value(f"{param}.reply.{key}", key, _REPLY_KEYS)
        if value is None:
            raise validate.wrong_type(f"{param}.reply.{key}", _REPLY_TYPES[key], value)
    kinds: List[str] = [key for key in _ANSWERS if key in reply]
    if "mode" in reply and "latency" in reply:
        kinds.append("latency")  # a recording or the upstream sets the pace
    if len(kinds) > 1:
        raise errors.invalid_request(
            f"A reply has one of content, tool_call, flagged, fault or mode, not {kinds}.", f"{param}.reply"
        )
    if "mode" in reply and reply["mode"] not in PROXY_MODES:
        raise validate.invalid_value(f"{param}.reply.mode", reply["mode"], PROXY_MODES)
    if not kinds and "latency" not in reply:
        raise validate.missing(f"{param}.reply.content")
    validate.string(reply.get("content"), f"{param}.reply.content")
    if "tool_call" in reply:
        call = validate.obj(reply["tool_call"], f"{param}.reply.tool_call") or {}
        validate.required_string(call, "name", f"{param}.reply.tool_call.name")
        arguments = f"{param}.reply.tool_call.arguments"
        if "arguments" in call and call["arguments"] is None:  # left out, they come from the tool's schema
            raise validate.wrong_type(arguments, "an object", None)
        validate.obj(call.get("arguments"), arguments)
    for index, category in enumerate(validate.array(reply.get("flagged"), f"{param}.reply.flagged", 1) or []):
        if category not in moderations.CATEGORIES:
            raise validate.invalid_value(f"{param}.reply.flagged[{index}]", category, moderations.CATEGORIES)
    if "fault" in reply:
        spec = validate.string(reply["fault"], f"{param}.reply.fault") or ""
        try:
            faults.parse_spec(spec)
        except ValueError as exc:
            raise errors.invalid_request(str(exc), f"{param}.reply.fault") from None
    latency = validate.obj(reply.get("latency"), f"{param}.reply.latency") or {}
    known_keys(latency, f"{param}.reply.latency", _LATENCY_KEYS)
    for key in _LATENCY_KEYS:
        validate.number(latency.get(key), f"{param}.reply.latency.{key}", 0, 600_000)
    times = validate.integer(rule.get("times"), f"{param}.times", 1, MAX_TIMES)
    return {"match": match, "reply": reply, "times": times}


def known_keys(value: Dict[str, Any], param: str, keys: Sequence[str], ignored: Sequence[str] = ()) -> None:
    """A misspelt key is a 400 naming it, not a setting silently dropped (``time`` for ``times``
    would make a one-off rule fire for ever)."""
    for key in value:
        if key not in keys and key not in ignored:
            raise validate.invalid_value(f"{param}.{key}" if param else key, key, keys)


class Scenarios:
    """The shared rule list, in the server's store (``mokku.store``): the embedded state file or Redis.

    A call reads the rules not used up (their parsed form cached: a rule never changes once added,
    only its counters do) and matches them without any lock; only counting a hit is one atomic step
    in the store. A store that cannot be used answers 503 naming it.
    """

    def __init__(self, path: str, shared: bool = True, store: Optional[RulesStore] = None) -> None:
        self.path = path
        self.store: RulesStore = store or SqliteRules(path, shared)
        self._cache: Dict[Tuple[Any, int], Dict[str, Any]] = {}
        # Why this server cannot handle a call in a rule's mode (set by the app when it records or replays).
        self.mode_unavailable: Callable[[str], Optional[str]] = _no_proxy

    def _unavailable(self, exc: BaseException) -> errors.APIError:
        return statedb.unavailable(self.store.name, exc)

    def add(self, rule: Dict[str, Any]) -> Dict[str, Any]:
        return self.add_all([rule])[0]

    def add_all(self, rules: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """Add checked rules, all or none; a 400 past ``MAX_RULES`` or for a mode this server cannot
        use, a 503 when the store fails."""
        for index, rule in enumerate(rules):
            why = self.mode_unavailable(rule["reply"]["mode"]) if _switches(rule) else None
            if why:
                param = f"rules[{index}].reply.mode" if len(rules) > 1 else "reply.mode"
                raise errors.invalid_request(f"This rule cannot apply: {why}.", param, "mode_unavailable")
        try:
            ids = self.store.add(
                [
                    (json.dumps(rule), rule["times"], _MODES if _switches(rule) else _REPLIES)
                    for rule in rules
                ],
                MAX_RULES,
            )
        except TooMany as full:
            raise errors.invalid_request(
                f"At most {MAX_RULES} rules are held at once; {full.held} are, and {len(rules)} more "
                "were sent. DELETE /mokku/scenarios removes them all.",
                "rules",
                "too_many_rules",
            ) from None
        except statedb.STATE_ERRORS as exc:
            raise self._unavailable(exc) from None
        return [dict(rule, id=rule_id) for rule, rule_id in zip(rules, ids)]

    def rules(self) -> List[Dict[str, Any]]:
        try:
            rows = self.store.listed()
        except statedb.STATE_ERRORS as exc:
            raise self._unavailable(exc) from None
        return [dict(json.loads(rule), id=i, times_left=left, calls=seen) for i, rule, left, seen in rows]

    def clear(self) -> None:
        try:
            self.store.clear()
        except statedb.STATE_ERRORS as exc:
            raise self._unavailable(exc) from None

    def may_switch(self) -> bool:
        """Whether a rule that switches the mode may exist (False: no call need be matched for one)."""
        return self.store.may_hold(_MODES)

    def match(self, endpoint: str, model: str, text: str, modes: bool = False) -> Optional[Dict[str, Any]]:
        """The reply of the first rule that matches this call (counting it), or None; a 503 when
        the rules cannot be read. ``modes``: the rules that switch the mode, else the others."""
        if not self.store.may_hold(_MODES if modes else _REPLIES):
            return None
        spent = [0]

        def spend(work: int) -> None:
            spent[0] += work
            if spent[0] > MATCH_WORK:
                raise errors.invalid_request(
                    f"Matching this message against the scripted replies' regular expressions takes more "
                    f"than {MATCH_WORK:,} steps (mokku's bound on one call): use fewer or simpler regex "
                    "rules, or a shorter message."
                )

        try:
            candidates = self._candidates()
            for index, (rule_id, rule) in enumerate(candidates):
                match = rule["match"]
                if (
                    _switches(rule) == modes
                    and _matches(match, endpoint, model, text, spend)
                    and self.store.hit(rule_id, match.get("nth"))
                ):
                    # A later rule's ``nth`` counts this call too: it matches the rest of that rule.
                    for later_id, later in candidates[index + 1 :]:
                        if (
                            later["match"].get("nth") is not None
                            and _switches(later) == modes
                            and _matches(later["match"], endpoint, model, text, spend)
                        ):
                            self.store.hit(later_id, COUNT_ONLY)
                    return dict(rule["reply"], rule_id=rule_id)
        except statedb.STATE_ERRORS as exc:
            raise self._unavailable(exc) from None
        return None

    def _candidates(self) -> List[Tuple[int, Dict[str, Any]]]:
        """The rules not used up, in order."""
        scope, ids = self.store.live()
        missing = [rule_id for rule_id in ids if (scope, rule_id) not in self._cache]
        if missing:
            if len(self._cache) + len(missing) > 2 * MAX_RULES:
                self._cache.clear()
            for rule_id, text in self.store.texts(missing).items():
                self._cache[(scope, rule_id)] = json.loads(text)
        cache = self._cache
        return [(rule_id, cache[(scope, rule_id)]) for rule_id in ids if (scope, rule_id) in cache]


def _no_proxy(mode: str) -> Optional[str]:
    if mode == "mock":
        return None
    return "this server neither records nor replays (MOKKU_MODE is not set)"


def _switches(rule: Dict[str, Any]) -> bool:
    return "mode" in rule["reply"]


def _matches(
    match: Dict[str, Any], endpoint: str, model: str, text: str, spend: Callable[[int], None]
) -> bool:
    if match.get("model") is not None and match["model"] != model:
        return False
    if match.get("endpoint") is not None and match["endpoint"] != endpoint:
        return False
    if match.get("contains") is not None and match["contains"] not in text:
        return False
    if match.get("regex") is None:
        return True
    try:  # linear in the text, whatever the pattern (rules stored before the check may be unsafe)
        return saferegex.compile(match["regex"]).search(text, spend)
    except saferegex.UnsafePattern:
        return False


def load_file(rules_path: str, state: str, store: Optional[RulesStore] = None) -> int:
    """Add the rules of a JSON file (YAML too when PyYAML is installed) at start-up; returns how many."""
    text = config.read_file(rules_path, "the file")
    if rules_path.endswith((".yml", ".yaml")):
        try:
            import yaml  # optional: only for YAML rule files
        except ImportError:
            raise ValueError("the file is YAML but PyYAML is not installed; use JSON") from None
        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if http.nests_deeper(data):
        raise ValueError(f"the file nests deeper than {http.MAX_NESTING} levels")
    raw = data.get("rules") if isinstance(data, dict) else data
    if not isinstance(raw, list):
        raise ValueError('the file must hold a list of rules, or {"rules": [...]}')
    try:
        rules = [check_rule(rule, f"rules[{index}]") for index, rule in enumerate(raw)]
        if rules:
            Scenarios(state, store=store).add_all(rules)
    except errors.APIError as exc:
        where = f" ({exc.param})" if exc.param else ""
        raise ValueError(f"{exc.message}{where}") from None
    return len(rules)
