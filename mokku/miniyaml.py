"""A reader for the small, plain subset of YAML that ``openapi.yml`` is written in.

It exists so that ``/openapi.json`` can be served without a YAML dependency.
Supported: block mappings and sequences indented by spaces, ``- key: value``
items, plain and quoted scalars (``'...'``, ``"..."``), flow sequences of
scalars (``[a, 'b']``), ``{}``, literal and folded block scalars (``|``,
``>``), and whole-line comments. Anything else raises ``ValueError`` with the
line number, rather than being read wrongly; a test checks that it reads
``openapi.yml`` exactly as PyYAML does.
"""

from __future__ import annotations

import json
import re
from typing import Any, List, NamedTuple, Tuple

_INT = re.compile(r"[-+]?[0-9]+\Z")
# YAML 1.1 floats, as PyYAML reads them: a dot is needed, an exponent needs its sign.
_FLOAT = re.compile(r"[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+][0-9]+)?\Z")


class _Line(NamedTuple):
    number: int
    indent: int
    text: str


def load(text: str) -> Any:
    lines = []
    raw_lines = text.splitlines()
    for number, raw in enumerate(raw_lines, 1):
        stripped = raw.strip()
        if stripped and not stripped.startswith("#"):
            if "\t" in raw[: len(raw) - len(raw.lstrip())]:
                raise ValueError(f"line {number}: tabs are not allowed for indentation")
            lines.append(_Line(number, len(raw) - len(raw.lstrip(" ")), raw.strip()))
    if not lines:
        return None
    reader = _Reader(lines, raw_lines)
    value = reader.block(0, lines[0].indent)
    if reader.pos != len(lines):
        line = lines[reader.pos]
        raise ValueError(f"line {line.number}: unexpected indentation")
    return value


class _Reader:
    def __init__(self, lines: List[_Line], raw_lines: List[str]) -> None:
        self.lines = lines
        self.raw_lines = raw_lines
        self.pos = 0

    def block(self, pos: int, indent: int) -> Any:
        self.pos = pos
        first = self.lines[pos]
        if first.text == "-" or first.text.startswith("- "):
            return self.sequence(indent)
        return self.mapping(indent)

    def mapping(self, indent: int) -> dict:
        result: dict = {}
        while self.pos < len(self.lines):
            line = self.lines[self.pos]
            if line.indent < indent:
                break
            if line.indent > indent or line.text.startswith("- "):
                raise ValueError(f"line {line.number}: unexpected indentation")
            key, rest = _split_key(line)
            if key in result:
                raise ValueError(f"line {line.number}: duplicate key {key!r}")
            result[key] = self.value_after(line, rest, indent)
        return result

    def sequence(self, indent: int) -> list:
        result: list = []
        while self.pos < len(self.lines):
            line = self.lines[self.pos]
            if line.indent < indent:
                break
            if line.indent > indent or not (line.text == "-" or line.text.startswith("- ")):
                raise ValueError(f"line {line.number}: expected a '- ' item")
            rest = line.text[1:].strip()
            if not rest:
                result.append(self.nested(line, indent))
            elif _starts_mapping(rest):
                # "- key: value": a mapping whose keys sit two columns in.
                inner = indent + 2
                self.lines[self.pos] = _Line(line.number, inner, rest)
                result.append(self.mapping(inner))
            else:
                self.pos += 1
                result.append(_scalar(rest, line.number))
        return result

    def value_after(self, line: _Line, rest: str, indent: int) -> Any:
        if rest in ("|", "|-", "|+", ">", ">-", ">+"):
            return self.block_scalar(line, rest, indent)
        if rest:
            self.pos += 1
            return _scalar(rest, line.number)
        return self.nested(line, indent)

    def nested(self, line: _Line, indent: int) -> Any:
        self.pos += 1
        if self.pos < len(self.lines) and self.lines[self.pos].indent > indent:
            return self.block(self.pos, self.lines[self.pos].indent)
        return None

    def block_scalar(self, line: _Line, style: str, indent: int) -> str:
        self.pos += 1
        body: List[str] = []
        number = line.number  # 1-based: raw_lines[number] is the line after the key
        block_indent = None
        while number < len(self.raw_lines):
            raw = self.raw_lines[number]
            if raw.strip():
                this_indent = len(raw) - len(raw.lstrip(" "))
                if this_indent <= indent:
                    break
                if block_indent is None:
                    block_indent = this_indent
                if this_indent < block_indent:
                    raise ValueError(f"line {number + 1}: block scalar lines must keep its indentation")
                body.append(raw[block_indent:])
            else:
                body.append("")
            number += 1
        while self.pos < len(self.lines) and self.lines[self.pos].number <= number:
            self.pos += 1
        chomp = style[1:]
        while body and not body[-1] and chomp != "+":
            body.pop()
        if style[0] == "|":
            text = "\n".join(body)
        else:
            text = _fold(body)
        return text if chomp == "-" or not text else text + "\n"


def _fold(body: List[str]) -> str:
    out, previous_blank = "", True
    for text in body:
        if not text:
            out += "\n"
            previous_blank = True
        elif text.startswith(" "):
            out += ("" if previous_blank else "\n") + text
            previous_blank = True
        else:
            out += ("" if previous_blank else " ") + text
            previous_blank = False
    return out


def _starts_mapping(text: str) -> bool:
    if text[0] in "'\"":
        end = _quoted_end(text)
        return text[end:].startswith(":")
    return bool(re.match(r"[^\[\]{},#]+?:( |\Z)", text))


def _quoted_end(text: str) -> int:
    quote, i = text[0], 1
    while i < len(text):
        if text[i] == quote:
            if quote == "'" and text[i + 1 : i + 2] == "'":
                i += 2
                continue
            return i + 1
        if quote == '"' and text[i] == "\\":
            i += 2
            continue
        i += 1
    raise ValueError(f"unterminated quoted string: {text!r}")


def _split_key(line: _Line) -> Tuple[Any, str]:
    text = line.text
    if text[0] in "'\"":
        end = _quoted_end(text)
        key: Any = _scalar(text[:end], line.number)
        rest = text[end:]
        if not rest.startswith(":"):
            raise ValueError(f"line {line.number}: expected ':' after the key")
        return key, rest[1:].strip()
    match = re.match(r"([^#]+?):( +(.*))?\Z", text)
    if not match:
        raise ValueError(f"line {line.number}: expected 'key: value'")
    return _scalar(match.group(1), line.number), (match.group(3) or "").strip()


def _scalar(text: str, number: int) -> Any:
    if text[0] == "'":
        if _quoted_end(text) != len(text):
            raise ValueError(f"line {number}: text after a quoted string")
        return text[1:-1].replace("''", "'")
    if text[0] == '"':
        if _quoted_end(text) != len(text):
            raise ValueError(f"line {number}: text after a quoted string")
        return json.loads(text)
    if text == "{}":
        return {}
    if text[0] == "[":
        if not text.endswith("]"):
            raise ValueError(f"line {number}: unterminated flow sequence")
        inner = text[1:-1].strip()
        return [_scalar(item.strip(), number) for item in _split_flow(inner, number)] if inner else []
    if text[0] in "{&*!|>%@`" or " #" in text:
        raise ValueError(f"line {number}: unsupported YAML: {text!r}")
    if ": " in text or text.endswith(":"):
        raise ValueError(f"line {number}: a plain value cannot hold ': ' (quote it): {text!r}")
    if text in ("null", "Null", "NULL", "~"):
        return None
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    if text.lower() in ("yes", "no", "on", "off", ".nan", ".inf", "-.inf"):
        raise ValueError(f"line {number}: ambiguous plain scalar {text!r}: quote it")
    return text


def _split_flow(inner: str, number: int) -> List[str]:
    items, start, i = [], 0, 0
    while i < len(inner):
        char = inner[i]
        if char in "'\"" and (i == start or not inner[start:i].strip()):
            i = _quoted_end(inner[i:]) + i
            continue
        if char in "[]{}":
            raise ValueError(f"line {number}: nested flow collections are not supported")
        if char == ",":
            items.append(inner[start:i])
            start = i + 1
        i += 1
    items.append(inner[start:])
    return items
