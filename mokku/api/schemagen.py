"""A JSON value that validates against a JSON Schema, made deterministically from the echo text.

Used for tool-call arguments, structured outputs (``response_format`` json_schema) and the
Responses API. Strings carry the echo text where the schema lets them; every other choice is
fixed (the first enum value that fits, the smallest number in range, one array item), so the same
request always gets the same document.

Generated: ``type`` (one or a list), ``properties``, ``required``, ``additionalProperties``,
``patternProperties`` (for required names), ``minProperties``/``maxProperties``, ``items``,
``prefixItems``, ``minItems``/``maxItems``, ``uniqueItems``, ``enum``, ``const``,
``anyOf``/``oneOf``/``allOf``/``not``, ``$ref`` to ``$defs``/``definitions`` (recursion stops at
optional or empty branches), ``minLength``/``maxLength``, ``pattern`` (the text, then simple
candidates), ``format`` (``date-time``, ``date``, ``time``, ``email``, ``uuid``, ``uri``,
``hostname``, ``ipv4``, ``ipv6``), ``minimum``/``maximum``/``exclusiveMinimum``/
``exclusiveMaximum``/``multipleOf``, and OpenAPI's ``nullable``.

Never an invalid document: before it is returned, every document is checked against its schema
(``_Checker``: the keywords above, plus ``contains``, ``propertyNames``, ``dependentRequired``,
``dependentSchemas`` and ``if``/``then``/``else``); a schema that cannot be satisfied, or that
this generator cannot satisfy, raises ``SchemaError`` saying why, and callers answer a 400.

Bounded work, whatever the schema (a few hundred milliseconds at worst): at most ``MAX_NODES``
schema nodes tried (failed ``anyOf`` branches and dropped optional properties count too),
``MAX_CHARS`` characters of output, ``MAX_DEPTH`` levels, ``MAX_CHECKS`` (schema, value) checks
and ``MAX_PATTERN_WORK`` steps of pattern work (characters read, states visited, each search and
each compiled state counted too, through ``mokku.saferegex``: a pattern outside its subset is a
``SchemaError``), shared by the documents of one request that ``Budget.next_document`` chains. Optional content
(properties not required, array items beyond ``minItems``) may use half of each bound and is left
out past it; what is required fails with a ``SchemaError`` naming the bound. Numeric keywords
must be finite numbers within the range of a double.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import sys
import uuid
from fractions import Fraction
from typing import Any, Callable, Dict, FrozenSet, Iterable, Iterator, List, Optional, Tuple

from mokku import saferegex

MAX_DEPTH = 12
MAX_NODES = 10_000
MAX_CHARS = 1_000_000
MAX_CHECKS = 200_000
MAX_PATTERN_WORK = 2_000_000
COMPILE_WORK = 20  # pattern work per state of a compiled pattern
SEARCH_WORK = 20  # pattern work of a search's setup, whatever the text
_CHECK_DEPTH = 4 * MAX_DEPTH  # $ref, allOf and the like add levels that hold no value
_LARGEST = sys.float_info.max
_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00Z",
    "email": "echo@example.com",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
}
_PATTERN_CANDIDATES = ("a", "A", "0", "echo", "abc", "ABC", "123", "a1", "A1", "aaa", "x-1", "")
_TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")
_UNTYPED_ORDER = ("string", "integer", "number", "boolean", "null", "object", "array")
_OBJECT_KEYS = ("properties", "required", "additionalProperties", "patternProperties", "minProperties")
_ARRAY_KEYS = ("items", "prefixItems", "minItems", "contains")
_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
_APPLICATORS = frozenset(("allOf", "anyOf", "oneOf", "not", "if"))
_CONDITION = ("if", "then", "else")
_MISSING = object()


class SchemaError(ValueError):
    """The schema cannot be satisfied (or uses something this generator cannot honour)."""


class _OverBudget(SchemaError):
    """A bound on the work for one document was reached: no alternative is tried past it."""


def generate(schema: Any, text: str, budget: Optional[Budget] = None) -> Any:
    """A value valid against ``schema``, with strings taken from ``text`` where possible; within
    ``budget`` when given (``Budget.next_document``: documents of one request share their pattern work)."""
    budget = budget or Budget()
    try:
        _check_types(schema)
        generator = _Generator(schema, text or "echo", budget)
        value = generator.value(schema, 0, 0)
        problem = generator.checker.problem(schema, value, "", 0)
    except SchemaError:
        raise
    except (
        TypeError,
        AttributeError,
        KeyError,
        IndexError,
        ValueError,
        RecursionError,
        OverflowError,
        ZeroDivisionError,
    ) as exc:
        # Arbitrary JSON is not always a schema: say so instead of failing the request.
        raise SchemaError(f"not a schema mokku can use ({type(exc).__name__}: {exc})") from None
    if problem is not None:
        raise SchemaError(f"mokku cannot make a document that satisfies it ({problem})")
    return value


class Budget:
    """The work one document may take, as four counters: schema nodes tried, characters of
    output, checks, and pattern work. Optional content runs with each limit lowered to half."""

    LIMITS = (MAX_NODES, MAX_CHARS, MAX_CHECKS, MAX_PATTERN_WORK)
    MESSAGES = (
        f"making a document for it takes more than {MAX_NODES:,} schema nodes (mokku's bound on "
        "the work per document, where every node tried counts)",
        f"the document would be longer than mokku's bound of {MAX_CHARS:,} characters",
        f"checking a document against it takes more than {MAX_CHECKS:,} checks (mokku's bound on "
        "the work per document)",
        f"its patterns take more than {MAX_PATTERN_WORK:,} steps to match (mokku's bound on the "
        "work per document)",
    )

    def __init__(self) -> None:
        self.used = [0, 0, 0, 0]
        self.limits: Tuple[int, ...] = self.LIMITS
        self.regexes: Dict[str, saferegex.Regex] = {}
        self.enums: Dict[int, Tuple[List[Any], FrozenSet[Any]]] = {}  # by the enum list's id

    def spend(self, which: int, count: int) -> None:
        self.used[which] += count
        if self.used[which] > self.limits[which]:
            raise _OverBudget(self.MESSAGES[which])

    def node(self) -> None:
        self.spend(0, 1)

    def spend_chars(self, count: int) -> None:
        self.spend(1, count)

    def check(self) -> None:
        self.spend(2, 1)

    def pattern(self, count: int) -> None:
        self.spend(3, count)

    def next_document(self) -> Budget:
        """The budget of another document of the same request (the calls of one reply): fresh
        bounds, but the pattern work and the compiled patterns carried over, so that a request's
        pattern work is bounded whatever the number of its documents."""
        following = Budget()
        following.used[3] = self.used[3]
        following.regexes = self.regexes
        following.enums = self.enums
        return following

    def enum_keys(self, enum: Any) -> FrozenSet[Any]:
        """An enum's values as ``_key``s, worked out once per request at a check per value: a
        membership test is then one step however long the enum (else a schema of a long enum
        checked against itself, in ``not``, takes the square of its length)."""
        known = self.enums.get(id(enum))
        if known is not None:
            return known[1]
        if not isinstance(enum, list):
            raise SchemaError("enum is a list")
        self.spend(2, len(enum))
        keys = frozenset(_key(option) for option in enum)
        self.enums[id(enum)] = (enum, keys)  # the list kept, so that its id is not another's
        return keys

    def search(self, pattern: Any, where: str, text: str) -> bool:
        """Whether ``pattern`` matches in ``text``; a search costs its setup too (about 20 steps)."""
        self.pattern(SEARCH_WORK)
        return self.regex(pattern, where).search(text, self.pattern)

    def regex(self, pattern: Any, where: str) -> saferegex.Regex:
        """The pattern compiled, once per document; each compiled costs pattern work by its size
        (a state takes about as long to build as 20 steps of a search)."""
        found = self.regexes.get(pattern) if isinstance(pattern, str) else None
        if found is None:
            found = _regex(pattern, where)
            self.pattern(COMPILE_WORK * found.size)
            self.regexes[pattern] = found
        return found

    def room(self) -> int:
        """Characters left for one string."""
        return max(0, self.limits[1] - self.used[1] - 2)

    def optional(self, make: Callable[[], Any]) -> Any:
        """``make()``, or ``_MISSING`` when it fails or would pass half of any bound."""
        soft = tuple(limit // 2 for limit in self.LIMITS)
        if any(used >= limit for used, limit in zip(self.used, soft)):
            return _MISSING
        saved = self.limits
        self.limits = tuple(min(old, new) for old, new in zip(saved, soft))
        try:
            return make()
        except SchemaError:
            return _MISSING
        finally:
            self.limits = saved


class _Generator:
    def __init__(self, root: Any, text: str, budget: Budget) -> None:
        self.root = root
        self.text = text
        # What uuids are made from: the text, or its digest when long (hashed once, not per value).
        self.text_key = text if len(text) <= 1024 else hashlib.sha256(text.encode()).hexdigest()
        self.budget = budget
        self.checker = _Checker(root, budget)

    def value(self, schema: Any, depth: int, salt: int) -> Any:
        self.budget.node()
        if depth > MAX_DEPTH:
            raise SchemaError(
                f"the schema nests deeper than {MAX_DEPTH} levels (or recurses with no way out)"
            )
        if schema is True:
            schema = {}
        if schema is False:
            raise SchemaError("a schema that admits nothing")
        if not isinstance(schema, dict):
            raise SchemaError("a schema is an object or a boolean")
        if "$ref" in schema:
            target = _resolve(self.root, schema["$ref"])
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            return self.value(_merge(target, rest) if rest else target, depth + 1, salt)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return self.choice(schema, key, depth, salt)
        if "if" in schema:
            rest = {k: v for k, v in schema.items() if k not in ("if", "then", "else")}
            condition = schema["if"]
            branches = [
                {"allOf": [condition, schema.get("then", True)]},
                {"allOf": [{"not": condition}, schema.get("else", True)]},
            ]
            return self.choice({**rest, "anyOf": branches}, "anyOf", depth, salt)
        if "allOf" in schema:
            parts = schema["allOf"]
            if not isinstance(parts, list):
                raise SchemaError("allOf is a list of schemas")
            merged: Any = {k: v for k, v in schema.items() if k != "allOf"}
            for part in parts:
                if isinstance(part, dict) and "$ref" in part:
                    rest = {k: v for k, v in part.items() if k != "$ref"}
                    part = _resolve(self.root, part["$ref"])
                    part = _merge(part, rest) if rest and isinstance(part, dict) else part
                merged = _merge(merged, part) if isinstance(merged, dict) else False
            return self.value(merged, depth + 1, salt)
        if "const" in schema or "enum" in schema:
            return self.pick(schema, salt)
        return self.typed(schema, depth, salt)

    def choice(self, schema: Dict[str, Any], key: str, depth: int, salt: int) -> Any:
        options = schema[key]
        if not isinstance(options, list) or not options:
            raise SchemaError(f"{key} is a non-empty list of schemas")
        base = {k: v for k, v in schema.items() if k != key}
        last: Optional[SchemaError] = None
        for index in _non_null_first(options):
            option = options[index]
            try:
                candidate = self.value(_merge(base, option) if base else option, depth + 1, salt)
            except _OverBudget:
                raise
            except SchemaError as exc:
                last = exc
                continue
            if key == "oneOf" and any(
                self.checker.valid(other, candidate) for i, other in enumerate(options) if i != index
            ):
                last = SchemaError("every value mokku tried matches more than one oneOf option")
                continue
            return candidate
        raise last or SchemaError(f"no {key} option can be satisfied")

    def pick(self, schema: Dict[str, Any], salt: int) -> Any:
        """The const, or the first enum value (the echo text if listed), that fits the rest of the schema."""
        options: Any
        if "const" in schema:
            options, rest = [schema["const"]], {k: v for k, v in schema.items() if k != "const"}
        else:
            options, rest = schema["enum"], {k: v for k, v in schema.items() if k != "enum"}
            if not isinstance(options, list):
                raise SchemaError("enum is a list")
            if not options:
                raise SchemaError("an empty enum")
        for option in _preferred(options, self.text, salt):
            if not rest or self.checker.valid(rest, option):
                self.budget.spend_chars(_size(option))
                return option
        which = "the const value does not satisfy" if "const" in schema else "no enum value satisfies"
        raise SchemaError(f"{which} the rest of its schema")

    def typed(self, schema: Dict[str, Any], depth: int, salt: int) -> Any:
        """A value of the first declared (or likely) type that can be made; ``not`` is honoured by
        trying another salt or type."""
        last: Optional[SchemaError] = None
        forbidden = schema.get("not")
        for kind in _kinds(schema):
            for attempt in (salt, salt + 1) if forbidden is not None else (salt,):
                candidate: Any
                try:
                    if kind == "object":
                        candidate = self.object(schema, attempt, depth)
                    elif kind == "array":
                        candidate = self.array(schema, attempt, depth)
                    else:
                        candidate = getattr(self, kind)(schema, attempt)
                except _OverBudget:
                    raise
                except SchemaError as exc:
                    last = exc
                    break
                if forbidden is not None and self.checker.valid(forbidden, candidate):
                    last = SchemaError("every value mokku tried is excluded by not")
                    continue
                return candidate
        raise last or SchemaError("no type can be satisfied")

    # Scalars.

    def null(self, schema: Dict[str, Any], salt: int) -> None:
        self.budget.spend_chars(4)
        return None

    def boolean(self, schema: Dict[str, Any], salt: int) -> bool:
        self.budget.spend_chars(5)
        return salt % 2 == 0

    def integer(self, schema: Dict[str, Any], salt: int) -> int:
        low, low_strict, high, high_strict = _bounds(schema)
        lowest = None if low is None else (math.floor(low) + 1 if low_strict else math.ceil(low))
        highest = None if high is None else (math.ceil(high) - 1 if high_strict else math.floor(high))
        if lowest is not None and highest is not None and lowest > highest:
            raise SchemaError("no integer lies within minimum and maximum")
        step = _step(schema)
        start = _clamp(len(self.text) + salt, lowest, highest)
        candidates: Iterator[int] = _near(start, lowest, highest, 64)
        if step is not None:
            # The integers that are exact multiples of p/q (lowest terms) are the multiples of p.
            unit = Fraction(step).numerator
            below = start // unit * unit
            exact = [c for c in (below, below + unit) if _within(c, lowest, highest)]
            candidates = iter(
                [*_near(start, lowest, highest, 64), *sorted(exact, key=lambda c: abs(c - start))]
            )
        for candidate in candidates:
            if step is None or _is_multiple(candidate, step):
                self.budget.spend_chars(len(str(candidate)))
                return candidate
        raise SchemaError("no integer satisfies the bounds and multipleOf")

    def number(self, schema: Dict[str, Any], salt: int) -> float:
        low, low_strict, high, high_strict = _bounds(schema)
        step = _step(schema)
        if step is not None:
            value = self.multiple(step, low, low_strict, high, high_strict, salt)
        else:
            candidates = [float(len(self.text) + salt) + 0.5]
            if low is not None and high is not None:
                candidates.append(low / 2 + high / 2)
            if low is not None:
                candidates += [float(low) + 1, math.nextafter(float(low), math.inf), float(low)]
            if high is not None:
                candidates += [float(high) - 1, math.nextafter(float(high), -math.inf), float(high)]
            fitting = [c for c in candidates if _in_bounds(c, low, low_strict, high, high_strict)]
            if not fitting:
                raise SchemaError("no number satisfies the bounds")
            value = fitting[0]
        self.budget.spend_chars(len(repr(value)))
        return value

    def multiple(
        self, step: float, low: Any, low_strict: bool, high: Any, high_strict: bool, salt: int
    ) -> float:
        """A double that is k times ``step`` (as JSON Schema validators compute it), within the bounds."""
        exact = Fraction(step)
        k_low = k_high = None
        if low is not None:
            ratio = Fraction(low) / exact
            k_low = math.floor(ratio) + 1 if low_strict else math.ceil(ratio)
        if high is not None:
            ratio = Fraction(high) / exact
            k_high = math.ceil(ratio) - 1 if high_strict else math.floor(ratio)
        if k_low is not None and k_high is not None and k_low > k_high:
            raise SchemaError("no multiple of multipleOf lies within the bounds")
        start = _clamp(round(Fraction(len(self.text) + salt) / exact), k_low, k_high)
        for k in _near(start, k_low, k_high, 64):
            try:
                value = float(k * exact)
            except OverflowError:
                continue
            if _in_bounds(value, low, low_strict, high, high_strict) and _is_multiple(value, step):
                return value
        raise SchemaError("no number satisfies the bounds and multipleOf")

    def string(self, schema: Dict[str, Any], salt: int) -> str:
        fmt = schema.get("format")
        room = self.budget.room()
        text = self.text[:room]  # a long prompt is cut to what the document has room for
        if fmt == "uuid":
            base = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.text_key}#{salt}"))
        elif fmt == "uri":
            base = f"https://example.com/{salt}" if salt else "https://example.com/"
        elif fmt in _FORMATS:
            base = _FORMATS[fmt]
            if salt and fmt == "email":
                base = f"echo{salt}@example.com"
        else:
            base = text if not salt else f"{text} {salt}"
        minimum = _count(schema, "minLength", 0)
        maximum = _count(schema, "maxLength", None)
        if maximum is not None and minimum > maximum:
            raise SchemaError("minLength is above maxLength")
        if fmt == "email" and len(base) < minimum <= MAX_EMAIL:
            base = _longer_email(base, minimum)
        if minimum > MAX_CHARS:
            raise SchemaError(
                f"minLength {_show(minimum)} is above mokku's bound of {MAX_CHARS:,} characters"
            )
        if minimum > room:
            raise SchemaError(
                f"minLength {minimum:,} leaves the document longer than {MAX_CHARS:,} characters"
            )
        longest = room if maximum is None else min(maximum, room)
        pattern = schema.get("pattern")
        regex = None if pattern is None else self.budget.regex(pattern, "pattern")
        if regex is not None:
            if minimum > saferegex.MAX_TEXT:
                raise SchemaError(
                    f"a string with a pattern is at most {saferegex.MAX_TEXT:,} characters long "
                    f"(the most mokku matches a pattern against); minLength is {minimum:,}"
                )
            longest = min(longest, saferegex.MAX_TEXT)
        guesses: Iterable[str] = [] if fmt else dict.fromkeys([text, *_PATTERN_CANDIDATES])
        examples: Iterable[str] = ()
        if regex is not None and not fmt:
            examples = self.pattern_examples(regex, minimum, longest, salt)
        # The guesses are the same for every salt: past the first value, the pattern's own examples
        # (which differ with the salt) come first, so that values can differ (uniqueItems).
        later = (examples, guesses) if salt else (guesses, examples)
        for candidate in itertools.chain([base], *later):
            fitted = _fit_length(candidate, minimum, longest)
            if regex is not None and not self.budget.search(pattern, "pattern", fitted):
                continue
            if fmt and fitted != base:
                break  # a format value cannot be cut or padded
            self.budget.spend_chars(len(fitted) + 2)
            return fitted
        raise SchemaError(f"no string satisfies {_describe(schema)}")

    def pattern_examples(
        self, regex: saferegex.Regex, minimum: int, longest: int, salt: int
    ) -> Iterator[str]:
        """Strings the pattern reads whole, for the patterns no guess satisfies (``^\\d{5}$``):
        one of a fitting length, else the shortest, to be padded; another for another salt."""
        for shortest in (minimum, 0) if minimum else (0,):
            example = regex.example(shortest, longest, self.budget.pattern, salt)
            if example is not None:
                yield example

    # Containers.

    def object(self, schema: Dict[str, Any], salt: int, depth: int) -> Dict[str, Any]:
        properties = _mapping(schema, "properties")
        patterns = _mapping(schema, "patternProperties")
        required = schema.get("required", [])
        if not isinstance(required, list) or not all(isinstance(name, str) for name in required):
            raise SchemaError("required is a list of names")
        extra = schema.get("additionalProperties", True)
        minimum = _count(schema, "minProperties", 0)
        maximum = _count(schema, "maxProperties", None)
        if minimum > MAX_NODES:
            raise SchemaError(
                f"minProperties {_show(minimum)} is above mokku's bound of {MAX_NODES:,} values"
            )
        result: Dict[str, Any] = {}
        optional: List[str] = []
        self.budget.spend_chars(2)
        for name, subschema in properties.items():
            if name in required:
                result[name] = self.value(subschema, depth + 1, salt)
            elif depth < MAX_DEPTH // 2:
                made = self.budget.optional(functools.partial(self.value, subschema, depth + 1, salt))
                if made is _MISSING:
                    continue  # optional: left out (recursive branches end here)
                result[name] = made
                optional.append(name)
            else:
                continue
            self.budget.spend_chars(len(name) + 4)
        for name in required:
            if name not in result:
                result[name] = self.value(self.extra_schema(name, patterns, extra), depth + 1, salt)
                self.budget.spend_chars(len(name) + 4)
        self.dependencies(schema, result, optional, depth, salt)
        names = self.extra_names(patterns, extra)
        while len(result) < minimum:
            key = next(names, None)
            if key is None:
                raise SchemaError("minProperties asks for more property names than mokku can write for it")
            if key not in result:
                result[key] = self.value(self.extra_schema(key, patterns, extra), depth + 1, salt)
                self.budget.spend_chars(len(key) + 4)
        while maximum is not None and len(result) > maximum and optional:
            del result[optional.pop()]
        if maximum is not None and len(result) > maximum:
            raise SchemaError("maxProperties leaves no room for the required properties")
        return result

    def dependencies(
        self, schema: Dict[str, Any], result: Dict[str, Any], optional: List[str], depth: int, salt: int
    ) -> None:
        """dependentRequired: an optional property whose companions are missing is left out; a
        required one gets them."""
        dependent = _mapping(schema, "dependentRequired")
        properties = _mapping(schema, "properties")
        changed = True
        while changed:
            changed = False
            for name, needs in dependent.items():
                missing = [other for other in needs if other not in result]
                if name not in result or not missing:
                    continue
                changed = True
                if name in optional:
                    optional.remove(name)
                    del result[name]
                    continue
                for other in missing:
                    sub = properties[other] if other in properties else None
                    if sub is None:
                        sub = self.extra_schema(
                            other,
                            _mapping(schema, "patternProperties"),
                            schema.get("additionalProperties", True),
                        )
                    result[other] = self.value(sub, depth + 1, salt)
                    self.budget.spend_chars(len(other) + 4)

    def extra_names(self, patterns: Dict[str, Any], extra: Any) -> Iterator[str]:
        """Names for properties past ``properties``: ``key0``, ``key1``..., or where
        additionalProperties is false, names the patternProperties read (their examples)."""
        if extra is not False:
            yield from (f"key{index}" for index in itertools.count())
            return
        sources = [self.pattern_names(self.budget.regex(p, "patternProperties")) for p in patterns]
        while sources:  # in turn, until each has no more
            for source in list(sources):
                name = next(source, None)
                if name is None:
                    sources.remove(source)
                else:
                    yield name

    def pattern_names(self, regex: saferegex.Regex) -> Iterator[str]:
        """Different strings the pattern reads whole: every variant of its shortest, then of longer ones."""
        for shortest in itertools.count():
            seen = set()
            for variant in itertools.count():
                name = regex.example(shortest, spend=self.budget.pattern, variant=variant)
                if name is None:
                    return  # none so long
                if name in seen:
                    break  # no other of this length
                seen.add(name)
                yield name

    def extra_schema(self, name: str, patterns: Dict[str, Any], extra: Any) -> Any:
        """The schema of a property not in ``properties``: the patternProperties it matches, else
        additionalProperties."""
        matching = [
            sub for pattern, sub in patterns.items() if self.budget.search(pattern, "patternProperties", name)
        ]
        if matching:
            return {"allOf": matching}
        if extra is False:
            raise SchemaError(f"property {name!r} is needed but additionalProperties does not allow it")
        return extra

    def array(self, schema: Dict[str, Any], salt: int, depth: int) -> List[Any]:
        prefix = schema.get("prefixItems", [])
        items = schema.get("items", True)
        if isinstance(items, list):  # the tuple form of drafts 4-2019
            prefix, items = items, schema.get("additionalItems", True)
        if not isinstance(prefix, list):
            raise SchemaError("prefixItems is a list of schemas")
        minimum = _count(schema, "minItems", 0)
        maximum = _count(schema, "maxItems", None)
        if maximum is not None and minimum > maximum:
            raise SchemaError("minItems is above maxItems")
        if minimum > MAX_NODES:
            raise SchemaError(f"minItems {_show(minimum)} is above mokku's bound of {MAX_NODES:,} values")
        count = max(minimum, len(prefix), 1 if depth < MAX_DEPTH // 2 else 0)
        if maximum is not None:
            count = min(count, maximum)
        unique = schema.get("uniqueItems") is True
        result: List[Any] = []
        seen = set()
        self.budget.spend_chars(2)
        for index in range(count):
            item_schema = prefix[index] if index < len(prefix) else items
            if index < minimum:
                if item_schema is False:
                    raise SchemaError("minItems needs more items than prefixItems allows")
                made = self.value(item_schema, depth + 1, salt + index)
            else:
                made = self.budget.optional(
                    functools.partial(self.value, item_schema, depth + 1, salt + index)
                )
                if made is _MISSING:
                    break
            if unique:
                key = _key(made)
                if key in seen:
                    if index < minimum:
                        raise SchemaError("cannot make the items unique")
                    break
                seen.add(key)
            result.append(made)
            self.budget.spend_chars(1)
        if "contains" in schema:
            self.contained(schema, result, prefix, items, depth, salt)
        return result

    def contained(
        self, schema: Dict[str, Any], result: List[Any], prefix: List[Any], items: Any, depth: int, salt: int
    ) -> None:
        """contains/minContains: items that match ``contains`` are added until there are enough."""
        wanted = _count(schema, "minContains", 1)
        have = sum(1 for item in result if self.checker.valid(schema["contains"], item))
        while have < wanted:
            index = len(result)
            base = prefix[index] if index < len(prefix) else items
            result.append(self.value({"allOf": [base, schema["contains"]]}, depth + 1, salt + index))
            self.budget.spend_chars(1)
            have += 1


class _Checker:
    """Whether a value satisfies a schema, for the keywords listed in the module docstring, with
    the semantics of Draft 2020-12 (and Draft 4's boolean ``exclusiveMinimum``/``exclusiveMaximum``,
    OpenAPI's ``nullable``). Every (schema, value) pair visited is a step of the budget."""

    def __init__(self, root: Any, budget: Budget) -> None:
        self.root = root
        self.budget = budget

    def valid(self, schema: Any, value: Any) -> bool:
        return self.problem(schema, value, "", 0) is None

    def problem(self, schema: Any, value: Any, path: str, depth: int) -> Optional[str]:
        """What is wrong with ``value`` (None: nothing)."""
        self.budget.check()
        if depth > _CHECK_DEPTH:
            raise SchemaError("the schema nests too deep to check")
        if schema is True:
            return None
        if schema is False:
            return f"{path or '/'} is not allowed"
        if not isinstance(schema, dict):
            raise SchemaError("a schema is an object or a boolean")
        checks: List[Callable[[Dict[str, Any], Any, str, int], Optional[str]]] = [self.type_, self.generic]
        if isinstance(value, str):
            checks.append(self.text)
        elif isinstance(value, dict):
            checks.append(self.object)
        elif isinstance(value, list):
            checks.append(self.array)
        elif _is_number(value):
            checks.append(self.numeric)
        if not _APPLICATORS.isdisjoint(schema):
            checks.append(self.applicators)
        for check in checks:
            problem = check(schema, value, path, depth)
            if problem is not None:
                return problem
        return None

    def type_(self, schema: Dict[str, Any], value: Any, path: str, depth: int) -> Optional[str]:
        if "type" not in schema or (value is None and schema.get("nullable") is True):
            return None
        declared = schema["type"]
        kinds = declared if isinstance(declared, list) else [declared]
        if any(_is_type(value, kind) for kind in kinds):
            return None
        return f"{path or '/'} is not of type {declared!r}"

    def generic(self, schema: Dict[str, Any], value: Any, path: str, depth: int) -> Optional[str]:
        if "const" in schema and _key(schema["const"]) != _key(value):
            return f"{path or '/'} is not the const value"
        if "enum" in schema and _key(value) not in self.budget.enum_keys(schema["enum"]):
            return f"{path or '/'} is not one of the enum values"
        if "$ref" in schema:
            return self.problem(_resolve(self.root, schema["$ref"]), value, path, depth + 1)
        return None

    def numeric(self, schema: Dict[str, Any], value: Any, path: str, depth: int) -> Optional[str]:
        if not _is_type(value, "number"):
            return None
        low, low_strict, high, high_strict = _bounds(schema, check=False)
        if not _in_bounds(value, low, low_strict, high, high_strict):
            return f"{path or '/'} is out of bounds"
        step = schema.get("multipleOf")
        if step is not None and not _is_multiple(value, step):
            return f"{path or '/'} is not a multiple of {step}"
        return None

    def text(self, schema: Dict[str, Any], value: Any, path: str, depth: int) -> Optional[str]:
        if not isinstance(value, str):
            return None
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", math.inf):
            return f"{path or '/'} has the wrong length"
        if "pattern" in schema and not self.matches(schema["pattern"], value, "pattern"):
            return f"{path or '/'} does not match the pattern"
        return None

    def matches(self, pattern: Any, value: str, where: str) -> bool:
        if len(value) > saferegex.MAX_TEXT:
            raise SchemaError(
                f"a string checked against a {where} is at most {saferegex.MAX_TEXT:,} characters"
            )
        return self.budget.search(pattern, where, value)

    def array(self, schema: Dict[str, Any], value: Any, path: str, depth: int) -> Optional[str]:
        if not isinstance(value, list):
            return None
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", math.inf):
            return f"{path or '/'} has the wrong number of items"
        prefix = schema.get("prefixItems", [])
        items = schema.get("items", True)
        if isinstance(items, list):
            prefix, items = items, schema.get("additionalItems", True)
        for index, item in enumerate(value):
            sub = prefix[index] if index < len(prefix) else items
            problem = self.problem(sub, item, f"{path}/{index}", depth + 1)
            if problem is not None:
                return problem
        if schema.get("uniqueItems") is True and len({_key(item) for item in value}) != len(value):
            return f"{path or '/'} has items that are not unique"
        if "contains" in schema:
            found = sum(1 for item in value if self.valid_at(schema["contains"], item, depth))
            low, high = schema.get("minContains", 1), schema.get("maxContains", math.inf)
            if found < low or found > high:
                return f"{path or '/'} does not contain the right number of matching items"
        return None

    def object(self, schema: Dict[str, Any], value: Any, path: str, depth: int) -> Optional[str]:
        if not isinstance(value, dict):
            return None
        if len(value) < schema.get("minProperties", 0) or len(value) > schema.get("maxProperties", math.inf):
            return f"{path or '/'} has the wrong number of properties"
        for name in schema.get("required", []):
            if name not in value:
                return f"{path or '/'} lacks the required property {name!r}"
        for name, needs in schema.get("dependentRequired", {}).items():
            if name in value and any(other not in value for other in needs):
                return f"{path or '/'} has {name!r} without the properties it requires"
        properties = schema.get("properties", {})
        patterns = schema.get("patternProperties", {})
        extra = schema.get("additionalProperties", True)
        names = schema.get("propertyNames", True)
        for name, item in value.items():
            where = f"{path}/{name}"
            if names is not True and not self.valid_at(names, name, depth):
                return f"{where} is not an allowed property name"
            matched = name in properties
            if matched:
                problem = self.problem(properties[name], item, where, depth + 1)
                if problem is not None:
                    return problem
            for pattern, sub in patterns.items():
                if self.matches(pattern, name, "patternProperties"):
                    matched = True
                    problem = self.problem(sub, item, where, depth + 1)
                    if problem is not None:
                        return problem
            if not matched:
                problem = self.problem(extra, item, where, depth + 1)
                if problem is not None:
                    return problem
        for name, sub in schema.get("dependentSchemas", {}).items():
            if name in value:
                problem = self.problem(sub, value, path, depth + 1)
                if problem is not None:
                    return problem
        return None

    def applicators(self, schema: Dict[str, Any], value: Any, path: str, depth: int) -> Optional[str]:
        for sub in schema.get("allOf", []):
            problem = self.problem(sub, value, path, depth + 1)
            if problem is not None:
                return problem
        if "anyOf" in schema and not any(self.valid_at(sub, value, depth) for sub in schema["anyOf"]):
            return f"{path or '/'} matches no anyOf option"
        if "oneOf" in schema and sum(1 for sub in schema["oneOf"] if self.valid_at(sub, value, depth)) != 1:
            return f"{path or '/'} does not match exactly one oneOf option"
        if "not" in schema and self.valid_at(schema["not"], value, depth):
            return f"{path or '/'} matches the schema under not"
        if "if" in schema:
            branch = "then" if self.valid_at(schema["if"], value, depth) else "else"
            if branch in schema:
                return self.problem(schema[branch], value, path, depth + 1)
        return None

    def valid_at(self, schema: Any, value: Any, depth: int) -> bool:
        return self.problem(schema, value, "", depth + 1) is None


# Schemas.


def _resolve(root: Any, ref: Any) -> Any:
    if not isinstance(ref, str) or not ref.startswith("#"):
        raise SchemaError(f"only local $ref are supported, got {ref!r}")
    node = root
    for part in ref[1:].split("/")[1:] if ref != "#" else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise SchemaError(f"$ref {ref!r} points nowhere")
    return node


def _merge(first: Dict[str, Any], second: Any) -> Any:
    """One schema asking for both (for allOf, $ref siblings and anyOf/oneOf options); what cannot be
    combined is left to the document check."""
    if second is True:
        return first
    if second is False:
        return False
    if not isinstance(second, dict):
        raise SchemaError("a schema is an object or a boolean")
    merged = dict(first)
    if "if" in first and "if" in second:  # two conditions: the second waits in allOf
        merged["allOf"] = [*merged.get("allOf", []), {k: v for k, v in second.items() if k in _CONDITION}]
        second = {k: v for k, v in second.items() if k not in _CONDITION}
    for key, value in second.items():
        if key not in first:
            merged[key] = value
            continue
        old = first[key]
        if key == "properties" and isinstance(old, dict) and isinstance(value, dict):
            merged[key] = {**old, **{n: {"allOf": [old[n], s]} if n in old else s for n, s in value.items()}}
        elif key == "required" and isinstance(old, list) and isinstance(value, list):
            merged[key] = list(dict.fromkeys([*old, *value]))
        elif key in _LOWER_BOUNDS and _is_number(old) and _is_number(value):
            merged[key] = max(old, value)
        elif key in _UPPER_BOUNDS and _is_number(old) and _is_number(value):
            merged[key] = min(old, value)
        elif key == "type":
            merged.pop("nullable", None)
            merged[key] = _intersect(_declared(first), _declared(second))
        elif key == "enum" and isinstance(old, list) and isinstance(value, list):
            keys = {_key(option) for option in value}
            merged[key] = [option for option in old if _key(option) in keys]
        elif key == "const" and _key(old) != _key(value):
            raise SchemaError("allOf asks for two different const values")
        elif key in ("items", "additionalProperties", "propertyNames", "contains"):
            merged[key] = {"allOf": [old, value]}
        elif key == "not":
            merged[key] = {"anyOf": [old, value]}
        elif key == "allOf" and isinstance(old, list) and isinstance(value, list):
            merged[key] = [*old, *value]
        elif key in ("anyOf", "oneOf", "$ref", "pattern", "multipleOf", "then", "else"):
            merged["allOf"] = [*merged.get("allOf", []), {key: value}]
        elif key == "uniqueItems":
            merged[key] = old is True or value is True
        else:
            merged[key] = value
    return merged


def _declared(schema: Dict[str, Any]) -> List[str]:
    declared = schema.get("type")
    kinds = (
        list(declared) if isinstance(declared, list) else [declared] if declared is not None else list(_TYPES)
    )
    if schema.get("nullable") is True and "null" not in kinds:
        kinds.append("null")
    return kinds


def _intersect(first: List[str], second: List[str]) -> List[str]:
    kinds = [kind for kind in first if kind in second or (kind == "integer" and "number" in second)]
    kinds += [kind for kind in second if kind == "integer" and "number" in first and kind not in kinds]
    if not kinds:
        raise SchemaError(f"allOf asks for types that exclude each other ({first} and {second})")
    return kinds


# Where a schema holds schemas: under a name each, one, or a list of them.
_NAMED_SCHEMAS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_ONE_SCHEMA = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames")
_LISTED_SCHEMAS = ("anyOf", "oneOf", "allOf", "prefixItems", "items")


def _check_types(root: Any) -> None:
    """Every ``type`` the schema declares, in the parts it never needs to generate too (an optional
    property, an unused branch): the real APIs read the whole schema before they answer."""
    stack = [root]
    while stack:
        schema = stack.pop()
        if not isinstance(schema, dict):
            continue
        declared = schema.get("type")
        kinds = declared if isinstance(declared, list) else [] if declared is None else [declared]
        for kind in kinds:
            if not isinstance(kind, str) or kind not in _TYPES:
                raise SchemaError(f"unknown type {kind!r}")
        for key in _NAMED_SCHEMAS:
            named = schema.get(key)
            if isinstance(named, dict):
                stack.extend(named.values())
        stack.extend(schema.get(key) for key in _ONE_SCHEMA)
        for key in _LISTED_SCHEMAS:
            listed = schema.get(key)
            if isinstance(listed, list):
                stack.extend(listed)


def _kinds(schema: Dict[str, Any]) -> List[str]:
    """The types to try, in order: the declared ones (null last), else the one the keywords suggest."""
    declared = schema.get("type")
    if declared is None:
        if any(key in schema for key in _OBJECT_KEYS):
            first = "object"
        elif any(key in schema for key in _ARRAY_KEYS):
            first = "array"
        else:
            first = "string"
        return [first, *(kind for kind in _UNTYPED_ORDER if kind != first)]
    kinds = declared if isinstance(declared, list) else [declared]
    for kind in kinds:
        if kind not in _TYPES:
            raise SchemaError(f"unknown type {kind!r}")
    if schema.get("nullable") is True:
        kinds = [*kinds, "null"]
    ordered = [kind for kind in _TYPES if kind in kinds and kind != "null"]
    return ordered + (["null"] if "null" in kinds else [])


def _non_null_first(options: List[Any]) -> List[int]:
    is_null = [isinstance(o, dict) and o.get("type") == "null" for o in options]
    return [i for i, n in enumerate(is_null) if not n] + [i for i, n in enumerate(is_null) if n]


def _preferred(options: List[Any], text: str, salt: int) -> Iterator[Any]:
    """The echo text first if listed (for the first of several values), then the options from the
    salt on, so that array items differ."""
    if not salt and text in options:
        yield text
    for index in range(len(options)):
        yield options[(salt + index) % len(options)]


def _mapping(schema: Dict[str, Any], key: str) -> Dict[str, Any]:
    value = schema.get(key, {})
    if not isinstance(value, dict):
        raise SchemaError(f"{key} is an object")
    return value


def _regex(pattern: Any, where: str) -> saferegex.Regex:
    try:
        return saferegex.compile(pattern)
    except saferegex.UnsafePattern as exc:
        raise SchemaError(f"{where} {str(pattern)[:100]!r} cannot be used: {exc}") from None


def _count(schema: Dict[str, Any], key: str, default: Optional[int]) -> Any:
    """A non-negative integer keyword (2.0 counts as 2)."""
    value = schema.get(key)
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SchemaError(f"{key} must be a non-negative integer")
    return value


# Numbers.


def _bounds(schema: Dict[str, Any], check: bool = True) -> Tuple[Any, bool, Any, bool]:
    """(low, low is exclusive, high, high is exclusive), from the four bound keywords (the boolean
    ``exclusiveMinimum``/``exclusiveMaximum`` of Draft 4 and OpenAPI 3.0 too)."""
    for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        value = schema.get(key)
        if check and value is not None and not isinstance(value, bool):
            _finite(key, value)
    low, low_strict = schema.get("minimum"), schema.get("exclusiveMinimum") is True
    high, high_strict = schema.get("maximum"), schema.get("exclusiveMaximum") is True
    low_strict = low_strict and low is not None
    high_strict = high_strict and high is not None
    exclusive_low, exclusive_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if _is_number(exclusive_low) and (low is None or exclusive_low >= low):
        low, low_strict = exclusive_low, True
    if _is_number(exclusive_high) and (high is None or exclusive_high <= high):
        high, high_strict = exclusive_high, True
    if (
        check
        and low is not None
        and high is not None
        and (low > high or (low == high and (low_strict or high_strict)))
    ):
        raise SchemaError("minimum is above maximum")
    return low, low_strict, high, high_strict


def _step(schema: Dict[str, Any]) -> Any:
    step = schema.get("multipleOf")
    if step is None:
        return None
    _finite("multipleOf", step)
    if step <= 0:
        raise SchemaError("multipleOf must be a number above 0")
    return step


def _finite(key: str, value: Any) -> None:
    if not _is_number(value):
        raise SchemaError(f"{key} must be a number")
    if abs(value) > _LARGEST or not math.isfinite(value):
        raise SchemaError(f"{key} must be a finite number within ±{_LARGEST:.1e}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_multiple(value: Any, step: Any) -> bool:
    """``value`` is a multiple of ``step`` as JSON Schema validators in Python compute it (a float
    step divides in floating point: 0.3 is not a multiple of 0.1)."""
    if isinstance(step, float):
        try:
            quotient = value / step
            return bool(int(quotient) == quotient)
        except OverflowError:
            return (Fraction(value) / Fraction(step)).denominator == 1
    return not value % step


def _in_bounds(value: Any, low: Any, low_strict: bool, high: Any, high_strict: bool) -> bool:
    if low is not None and (value < low or (low_strict and value == low)):
        return False
    return high is None or not (value > high or (high_strict and value == high))


def _clamp(value: int, low: Optional[int], high: Optional[int]) -> int:
    if low is not None:
        value = max(value, low)
    if high is not None:
        value = min(value, high)
    return value


def _within(value: int, low: Optional[int], high: Optional[int]) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def _near(start: int, low: Optional[int], high: Optional[int], steps: int) -> Iterator[int]:
    """Integers from ``start`` outwards, within the bounds, for at most ``steps`` distances."""
    for distance in range(steps):
        for candidate in (start + distance, start - distance) if distance else (start,):
            if _within(candidate, low, high):
                yield candidate


# Values.


def _is_type(value: Any, kind: Any) -> bool:
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if kind == "number":
        return _is_number(value)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    raise SchemaError(f"unknown type {kind!r}")


def _key(value: Any) -> Any:
    """A hashable stand-in with JSON's equality: 1 equals 1.0, true is not 1, key order is ignored."""
    if isinstance(value, bool) or value is None:
        return (0, value)
    if isinstance(value, (int, float)):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    if isinstance(value, list):
        return (3, tuple(_key(item) for item in value))
    if isinstance(value, dict):
        return (4, frozenset((name, _key(item)) for name, item in value.items()))
    raise SchemaError(f"not a JSON value: {type(value).__name__}")


def _show(count: int) -> str:
    return f"{count:,}" if count < 10**12 else f"{float(count):.3g}"


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False))


MAX_EMAIL = 254  # characters in an address (RFC 5321)


def _longer_email(address: str, length: int) -> str:
    """``address`` made ``length`` characters long and still an address: labels of up to 63
    characters before its domain, then a longer local part (up to 64 characters)."""
    local, domain = address.split("@", 1)
    extra = length - len(address)
    room = 64 - len(local)
    labels = []
    while extra > room:
        chunk = max(2, min(64, extra - room))  # a label and its dot
        labels.append("x" * (chunk - 1) + ".")
        extra -= chunk
    return "x" * extra + local + "@" + "".join(labels) + domain


def _fit_length(text: str, minimum: int, maximum: Optional[int]) -> str:
    if maximum is not None and len(text) > maximum:
        text = text[:maximum]
    if len(text) < minimum:
        text = text + "x" * (minimum - len(text))
    return text


def _describe(schema: Dict[str, Any]) -> str:
    parts = [
        f"{key}={str(schema[key])[:100]!r}"
        for key in ("pattern", "format", "minLength", "maxLength")
        if key in schema
    ]
    return ", ".join(parts) or "the schema"
