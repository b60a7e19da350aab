"""Regular expressions from clients, searched in time linear in the text.

Python's ``re`` backtracks: ``^(a+)+$`` against 30 ``a`` and a ``!`` takes minutes, and even
``.*a.*a.*a$`` grows with the cube of the text. Schemas (``pattern``, ``patternProperties``) and
scripted-reply rules (``match.regex``) come from clients, so mokku does not hand them to ``re``'s
matcher. It reads them with Python's own parser (same syntax, same errors) and searches with a
set-of-states automaton (Thompson's construction, states cached per character as in a lazy DFA):
every position of the text is visited once, whatever the pattern, so the work is at most the
text's length times the pattern's size, and both are bounded:

- a pattern is at most ``MAX_PATTERN`` characters, and at most ``MAX_STATES`` states once counted
  repeats are written out (``\\d{3}`` is 3 states, ``.{0,1000}`` is about 2,000: refused);
- a search looks at the first ``MAX_TEXT`` characters of the text.

The answer is the one ``re.search`` gives (the tests compare them): single characters, classes,
assertions and flags are decided by small compiled ``re`` patterns, which cannot backtrack.
Backreferences, lookahead/lookbehind, conditionals, atomic groups and possessive repeats cannot
be searched this way, and are refused with the reason (``UnsafePattern``).

The same states write strings too: ``Regex.example`` walks them for the shortest string the
pattern reads whole, which is how a schema's ``pattern`` gets a value no guess satisfies.
"""

from __future__ import annotations

import functools
import importlib
import re
import string
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Tuple

MAX_PATTERN = 1_000
MAX_STATES = 1_000
MAX_TEXT = 10_000
STEP_WORK = 10  # a new step's own cost, reported as work beside the states it visits
MAX_EXAMPLE_STATES = 100_000  # states one ``example`` may hold while it looks for a string
_MAX_CACHE = 50_000  # states held by one search's cache of steps; past it the cache starts over
# The characters an example is written with, first found first used: letters and digits read as
# ordinary values; the rest let negated and unusual classes be written too.
_EXAMPLE_CHARS = (
    string.ascii_lowercase
    + string.ascii_uppercase
    + string.digits
    + " -_.@:/+#,;!?'\"()[]{}<>=*&%$^~|`\\\n\t\r\x0b\x0c"
    + "éÀßñ\u00a0\u2028\u4e2d\U0001f600\x00\x7f"
    + "".join(map(chr, range(0x430, 0x450)))  # Cyrillic letters, small then capital; Greek's the same
    + "".join(map(chr, range(0x410, 0x430)))
    + "".join(map(chr, range(0x3B1, 0x3CA)))
    + "".join(map(chr, range(0x391, 0x3AA)))
)

try:  # Python 3.11+
    _parser: Any = importlib.import_module("re._parser")
    _constants: Any = importlib.import_module("re._constants")
except ImportError:  # Python 3.9, 3.10
    _parser = importlib.import_module("sre_parse")
    _constants = importlib.import_module("sre_constants")

_C = _constants
_CHAR, _EPSILON, _ASSERT, _MATCH = range(4)
_FLAG_LETTERS = ((re.IGNORECASE, "i"), (re.DOTALL, "s"), (re.MULTILINE, "m"), (re.ASCII, "a"))
_CATEGORIES = {
    "CATEGORY_DIGIT": r"\d",
    "CATEGORY_NOT_DIGIT": r"\D",
    "CATEGORY_SPACE": r"\s",
    "CATEGORY_NOT_SPACE": r"\S",
    "CATEGORY_WORD": r"\w",
    "CATEGORY_NOT_WORD": r"\W",
}
_ASSERTIONS = {
    "AT_BEGINNING": "^",
    "AT_BEGINNING_STRING": r"\A",
    "AT_END": "$",
    "AT_END_STRING": r"\Z",
    "AT_BOUNDARY": r"\b",
    "AT_NON_BOUNDARY": r"\B",
}
_REFUSED = {
    "GROUPREF": "backreferences",
    "GROUPREF_EXISTS": "conditional groups",
    "ASSERT": "lookahead and lookbehind",
    "ASSERT_NOT": "lookahead and lookbehind",
    "ATOMIC_GROUP": "atomic groups",
    "POSSESSIVE_REPEAT": "possessive repeats",
}


_Way = Tuple[int, Optional[str], int]  # how an example reached a state: see ``Regex.example``


class UnsafePattern(ValueError):
    """A pattern that is not valid, or not in the subset that can be searched in bounded time."""


@functools.lru_cache(maxsize=2048)  # a full set of scripted replies (1,000 rules) stays compiled
def compile(pattern: str) -> Regex:
    """The pattern, ready to search; ``UnsafePattern`` says why it cannot be."""
    if not isinstance(pattern, str):
        raise UnsafePattern("a pattern is a string")
    if len(pattern) > MAX_PATTERN:
        raise UnsafePattern(f"the pattern is longer than {MAX_PATTERN:,} characters")
    try:
        parsed = _parser.parse(pattern, 0)
    except (re.error, RecursionError, OverflowError) as exc:
        raise UnsafePattern(f"not a valid regular expression ({exc})") from None
    builder = _Builder()
    try:
        start = builder.sequence(list(parsed), parsed.state.flags, builder.add(_MATCH))
    except RecursionError:
        raise UnsafePattern("the pattern nests too deep") from None
    return Regex(pattern, builder, start)


class Regex:
    """A compiled pattern; ``search`` answers whether ``re.search`` would find a match."""

    def __init__(self, pattern: str, program: _Builder, start: int) -> None:
        self.pattern = pattern
        self._kind = program.kind
        self._arg = program.arg
        self._next = program.next
        self._chars = program.chars
        self._assertions = program.assertions
        self._start = start
        self._match = program.kind.index(_MATCH)
        self._contextual = bool(program.assertions)  # assertions depend on the characters around
        self._example_chars: Dict[int, str] = {}  # per character leaf, the characters it reads
        self.size = len(program.kind)  # its states: what searching it costs per character, at most

    def search(self, text: str, spend: Optional[Callable[[int], None]] = None) -> bool:
        """Whether the pattern matches somewhere in the first ``MAX_TEXT`` characters of ``text``.

        ``spend``, if given, is told the work done (characters read, states visited), and may raise
        to stop a caller's budget from being overrun."""
        text = text[:MAX_TEXT]
        if spend is not None:
            spend(len(text) + 1)
        last = len(text) - 1
        cache: Dict[Tuple[Any, ...], Tuple[bool, FrozenSet[int]]] = {}
        held = 0
        states: FrozenSet[int] = frozenset()
        contextual = self._contextual
        previous: Optional[str] = None
        for position, char in enumerate(text):
            key = (states, char, previous, position == last) if contextual else (states, char)
            step = cache.get(key)
            if step is None:
                matched, moved, work = self._step(states, text, position, char)
                if spend is not None:
                    spend(work + STEP_WORK)
                step = (matched, moved)
                held += len(moved) + 1
                if held > _MAX_CACHE:
                    cache.clear()
                    held = len(moved) + 1
                cache[key] = step
            if step[0]:
                return True
            states = step[1]
            previous = char
        return self._step(states, text, len(text), "")[0]

    def example(
        self,
        shortest: int = 0,
        longest: int = MAX_TEXT,
        spend: Optional[Callable[[int], None]] = None,
        variant: int = 0,
    ) -> Optional[str]:
        """A string of ``shortest`` to ``longest`` characters that the pattern reads whole, or None.

        Schemas hold patterns such as ``^\\d{5}$`` that no fixed guess satisfies, so the string is
        written by walking the pattern's states one character at a time (the shortest such string
        at least ``shortest`` long). Assertions are taken as met: the caller checks the string
        with ``search``. The walk holds at most ``MAX_EXAMPLE_STATES`` states; ``spend`` is told
        each step's work, as in ``search``. Another ``variant`` is another string where the pattern
        allows one: its digits, in the bases of the classes read (``\\d{3}``: ``000``, ``100``,
        ``200``... ``010``...), pick each character, and it turns which branch is taken first."""
        longest = min(longest, MAX_TEXT)
        kind, arg, after = self._kind, self._arg, self._next
        # For each length, the states reached and how: (the state before, the character read,
        # or None for a step that reads nothing, what is left of the variant to pick characters).
        layers = [self._closure({self._start: (-1, None, variant)})]
        held = 0
        repeated = set()
        for length in range(longest + 1):
            layer = layers[-1]
            held += len(layer)
            if spend is not None:
                spend(len(layer))
            if held > MAX_EXAMPLE_STATES:
                return None
            if length >= shortest:
                if self._match in layer:
                    return self._written(layers, self._match)
                reached = frozenset(layer)
                if reached in repeated:
                    return None  # the lengths ahead repeat ones already walked
                repeated.add(reached)
            seeds: Dict[int, _Way] = {}
            order = list(layer)
            turn = variant % len(order)  # which of the ways to a state is kept: another branch
            for state in order[turn:] + order[:turn]:
                if kind[state] == _CHAR:
                    chars = self._example_chars_of(arg[state])
                    if chars and after[state][0] not in seeds:
                        rest = layer[state][2]
                        seeds[after[state][0]] = (state, chars[rest % len(chars)], rest // len(chars))
            if not seeds or length == longest:
                return None
            layers.append(self._closure(seeds))
        return None

    def _closure(self, seeds: Dict[int, _Way]) -> Dict[int, _Way]:
        reached = dict(seeds)
        stack = list(seeds)
        kind, after = self._kind, self._next
        while stack:
            state = stack.pop()
            if kind[state] in (_EPSILON, _ASSERT):
                for target in after[state]:
                    if target not in reached:
                        reached[target] = (state, None, reached[state][2])
                        stack.append(target)
        return reached

    @staticmethod
    def _written(layers: List[Dict[int, _Way]], state: int) -> str:
        chars: List[str] = []
        length = len(layers) - 1
        while True:
            before, char, _ = layers[length][state]
            if before < 0:
                return "".join(reversed(chars))
            if char is not None:
                chars.append(char)
                length -= 1
            state = before

    def _example_chars_of(self, leaf: int) -> str:
        if leaf not in self._example_chars:
            test = self._chars[leaf]
            self._example_chars[leaf] = "".join(c for c in _EXAMPLE_CHARS if test(c) is not None)
        return self._example_chars[leaf]

    def _step(
        self, states: FrozenSet[int], text: str, position: int, char: str
    ) -> Tuple[bool, FrozenSet[int], int]:
        """(a match ends here, the states after reading ``char``, states visited): the work of one new
        (states, context) pair. The states reachable without reading are walked from ``states`` and
        from the start (the search starts anew at every position); assertions are decided at
        ``position``; at the end of the text, ``char`` is empty and nothing is read."""
        kind, arg, after, chars = self._kind, self._arg, self._next, self._chars
        tested: Dict[int, bool] = {}
        moved = set()
        seen = set()
        stack = [self._start, *states]
        while stack:
            state = stack.pop()
            if state in seen:
                continue
            seen.add(state)
            what = kind[state]
            if what == _CHAR:
                if char:
                    leaf = arg[state]
                    hit = tested.get(leaf)
                    if hit is None:
                        hit = tested[leaf] = chars[leaf](char) is not None
                    if hit:
                        moved.add(after[state][0])
            elif what == _EPSILON:
                stack.extend(after[state])
            elif what == _MATCH:
                return True, frozenset(), len(seen)
            elif self._assertions[arg[state]](text, position) is not None:
                stack.extend(after[state])
        return False, frozenset(moved), len(seen)


class _Builder:
    """Thompson's construction, back to front: each piece is built before what leads to it."""

    def __init__(self) -> None:
        self.kind: List[int] = []
        self.arg: List[int] = []
        self.next: List[Tuple[int, ...]] = []
        self.chars: List[Callable[[str], Any]] = []
        self.assertions: List[Callable[[str, int], Any]] = []
        self._leaves: Dict[Tuple[str, int], int] = {}
        self.work = 0

    def add(self, kind: int, arg: int = -1, after: Tuple[int, ...] = ()) -> int:
        if len(self.kind) >= MAX_STATES:
            raise UnsafePattern(
                f"the pattern is too large: more than {MAX_STATES:,} states once its counted repeats "
                "are written out"
            )
        self.kind.append(kind)
        self.arg.append(arg)
        self.next.append(after)
        return len(self.kind) - 1

    def sequence(self, items: List[Tuple[Any, Any]], flags: int, after: int) -> int:
        for op, av in reversed(items):
            after = self.item(op, av, flags, after)
        return after

    def item(self, op: Any, av: Any, flags: int, after: int) -> int:
        self.work += 1
        if self.work > 20 * MAX_STATES:
            raise UnsafePattern(f"the pattern is too large: more than {MAX_STATES:,} states")
        name = _name(op)
        if name in ("LITERAL", "NOT_LITERAL", "ANY", "IN"):
            return self.add(_CHAR, self.leaf(_source(name, av), flags, single=True), (after,))
        if name == "AT":
            return self.add(_ASSERT, self.leaf(_ASSERTIONS[_name(av)], flags, single=False), (after,))
        if name == "SUBPATTERN":
            _group, add_flags, del_flags, body = av
            return self.sequence(list(body), (flags | add_flags) & ~del_flags, after)
        if name == "BRANCH":
            return self.add(_EPSILON, after=tuple(self.sequence(list(b), flags, after) for b in av[1]))
        if name in ("MAX_REPEAT", "MIN_REPEAT"):
            low, high, body = av
            items = list(body)
            if low > MAX_STATES or (high != _C.MAXREPEAT and high - low > MAX_STATES):
                raise UnsafePattern(f"the pattern is too large: a repeat of more than {MAX_STATES:,}")
            if high == _C.MAXREPEAT:
                loop = self.add(_EPSILON)
                self.next[loop] = (self.sequence(items, flags, loop), after)
                after = loop
            else:
                end = after  # each optional copy either reads one more or leaves
                for _ in range(high - low):
                    after = self.add(_EPSILON, after=(self.sequence(items, flags, after), end))
            for _ in range(low):
                after = self.sequence(items, flags, after)
            return after
        if name in _REFUSED:
            raise UnsafePattern(f"{_REFUSED[name]} are not supported")
        raise UnsafePattern(f"{name.lower()} is not supported")

    def leaf(self, source: str, flags: int, single: bool) -> int:
        """A small ``re`` pattern for one character (or one assertion), with the flags in force."""
        letters = "".join(letter for flag, letter in _FLAG_LETTERS if flags & flag)
        full = f"(?{letters}){source}" if letters else source
        key = (full, single)
        if key not in self._leaves:
            table: List[Any] = self.chars if single else self.assertions
            table.append(re.compile(full).match)
            self._leaves[key] = len(table) - 1
        return self._leaves[key]


def _source(name: str, av: Any) -> str:
    """``re`` syntax for one character-reading item of the parse."""
    if name == "ANY":
        return "."
    if name == "LITERAL":
        return _escape(av)
    if name == "NOT_LITERAL":
        return f"[^{_escape(av)}]"
    parts: List[str] = []
    for op, value in av:
        kind = _name(op)
        if kind == "NEGATE":
            parts.insert(0, "^")
        elif kind == "LITERAL":
            parts.append(_escape(value))
        elif kind == "RANGE":
            parts.append(f"{_escape(value[0])}-{_escape(value[1])}")
        elif kind == "CATEGORY" and _name(value) in _CATEGORIES:
            parts.append(_CATEGORIES[_name(value)])
        else:
            raise UnsafePattern(f"{kind.lower()} in a character class is not supported")
    return "[" + "".join(parts) + "]"


def _name(constant: Any) -> str:
    """The name of one of the parser's opcodes (named integers)."""
    return str(getattr(constant, "name", constant))


def _escape(code: int) -> str:
    return f"\\U{code:08x}"
