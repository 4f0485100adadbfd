"""containerd's filter syntax (``pkg/filters``), used by List, ListStatuses and friends.

A filter is a comma-separated list of *selectors*, all of which must match; a list of
filters matches when any one of them does (an empty list, or an empty filter, matches all)::

    selectors := selector ("," selector)*
    selector  := fieldpath [operator value]
    fieldpath := field ("." field)*
    field     := quoted | [A-Za-z0-9_]+
    operator  := "==" | "!=" | "~="
    value     := quoted | one or more characters other than comma and white space
    quoted    := '"' go-escaped-string '"'      (and /.../ or |...| after "~=")

A selector without an operator tests for presence (``labels.foo``). ``!=`` also matches an
absent field, and ``~=`` searches (unanchored) with a regular expression. Dots split field
paths, so keys containing dots or slashes are quoted: ``labels."containerd.io/gc.root"``.

What a field path means is up to the object being filtered: it supplies an
:data:`Adaptor` that returns the field's value, or ``None`` when absent.

Malformed filters raise :class:`~flotilla.common.errdefs.InvalidArgument` whose message
shows the position, containerd-style: ``[labels. >|?|< foo]: expected field or quoted``.
Regular expressions are Python's (``re``), compiled when the filter is parsed.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from flotilla.common.errdefs import InvalidArgument

__all__ = [
    "ALWAYS",
    "Adaptor",
    "All",
    "Any",
    "Filter",
    "Operator",
    "Selector",
    "parse",
    "parse_all",
]

Adaptor = Callable[[Sequence[str]], str | None]
"""Returns the value at a field path, or ``None`` when the object has no such field."""


class Filter(Protocol):
    """Something that decides whether an object, seen through an :data:`Adaptor`, matches."""

    def match(self, adaptor: Adaptor) -> bool:
        """Whether the adapted object matches."""
        ...


class Operator(enum.Enum):
    """How a selector compares the field's value."""

    PRESENT = "?"
    EQUAL = "=="
    NOT_EQUAL = "!="
    MATCHES = "~="


@dataclass(frozen=True, slots=True)
class Selector:
    """One ``<fieldpath>[<operator><value>]`` term."""

    fieldpath: tuple[str, ...]
    operator: Operator
    value: str = ""
    pattern: re.Pattern[str] | None = None

    def match(self, adaptor: Adaptor) -> bool:
        """Whether the field at :attr:`fieldpath` satisfies the operator."""
        found = adaptor(self.fieldpath)
        if self.operator is Operator.PRESENT:
            return found is not None
        if self.operator is Operator.EQUAL:
            return found is not None and found == self.value
        if self.operator is Operator.NOT_EQUAL:
            return (found or "") != self.value
        assert self.pattern is not None  # set by the parser for MATCHES
        return self.pattern.search(found or "") is not None


@dataclass(frozen=True, slots=True)
class All:
    """Matches when every selector matches (one filter string)."""

    selectors: tuple[Selector, ...]

    def match(self, adaptor: Adaptor) -> bool:
        """Whether all selectors match."""
        return all(selector.match(adaptor) for selector in self.selectors)


@dataclass(frozen=True, slots=True)
class Any:
    """Matches when at least one filter matches (a list of filter strings)."""

    filters: tuple[Filter, ...]

    def match(self, adaptor: Adaptor) -> bool:
        """Whether any filter matches."""
        return any(one.match(adaptor) for one in self.filters)


ALWAYS: Final[Filter] = All(())


def parse(text: str) -> Filter:
    """Parse one filter string; the empty string matches everything.

    Raises:
        InvalidArgument: if the filter is malformed; the message shows where.
    """
    if not text:
        return ALWAYS
    return _Parser(text).selectors()


def parse_all(texts: Iterable[str]) -> Filter:
    """Parse a list of filters, ORed; an empty list matches everything.

    Raises:
        InvalidArgument: if any filter is malformed.
    """
    parsed = tuple(parse(text) for text in texts)
    if not parsed:
        return ALWAYS
    return parsed[0] if len(parsed) == 1 else Any(parsed)


class _Kind(enum.Enum):
    EOF = enum.auto()
    FIELD = enum.auto()
    VALUE = enum.auto()
    QUOTED = enum.auto()
    SEPARATOR = enum.auto()
    OPERATOR = enum.auto()
    ILLEGAL = enum.auto()
    OTHER = enum.auto()


@dataclass(frozen=True, slots=True)
class _Token:
    kind: _Kind
    pos: int
    text: str
    error: str = ""


_QUOTES: Final = '"/|'
_OPERATOR_CHARS: Final = "=!~"
_FIELD: Final = re.compile(r"[A-Za-z0-9_]+")


def _is_value_char(ch: str) -> bool:
    return ch != "," and not ch.isspace() and ch.isprintable()


class _Scanner:
    """Splits a filter into tokens; after an operator, the next bare word is a value."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.value_mode = False

    def peek(self) -> str:
        """The next raw character (no whitespace skipping), or "" at the end."""
        return self.text[self.pos : self.pos + 1]

    def scan(self) -> _Token:
        """Consume and return the next token."""
        while self.peek().isspace():
            self.pos += 1
        start, ch = self.pos, self.peek()
        if not ch:
            return _Token(_Kind.EOF, start, "")
        if ch == "\0":
            return _Token(_Kind.ILLEGAL, start, ch, "unexpected null")
        if ch in _QUOTES:
            return self._quoted(start, ch)
        if ch in ",.":
            self.value_mode = False
            return self._take(_Kind.SEPARATOR, start, start + 1)
        if ch in _OPERATOR_CHARS:
            self.value_mode = True
            return self._take(_Kind.OPERATOR, start, self._run(start, _OPERATOR_CHARS.__contains__))
        if self.value_mode:
            self.value_mode = False
            return self._take(_Kind.VALUE, start, self._run(start, _is_value_char))
        if match := _FIELD.match(self.text, start):
            return self._take(_Kind.FIELD, start, match.end())
        return self._take(_Kind.OTHER, start, start + 1)

    def _run(self, start: int, accept: Callable[[str], bool]) -> int:
        end = start
        while end < len(self.text) and accept(self.text[end]):
            end += 1
        return end

    def _take(self, kind: _Kind, start: int, end: int) -> _Token:
        self.pos = end
        return _Token(kind, start, self.text[start:end])

    def _quoted(self, start: int, quote: str) -> _Token:
        # Find the closing quote, stepping over escaped characters; the escapes themselves
        # are checked when the literal is unquoted.
        end = start + 1
        while end < len(self.text) and self.text[end] not in (quote, "\n"):
            end += 2 if self.text[end] == "\\" else 1
        if end >= len(self.text) or self.text[end] == "\n":
            self.pos = min(end, len(self.text))
            return _Token(_Kind.ILLEGAL, start, "", "quoted literal not terminated")
        return self._take(_Kind.QUOTED, start, end + 1)


_ESCAPE: Final = re.compile(
    r"\\(?:(?P<simple>[abfnrtv\\\"/|])|x(?P<x>[0-9a-fA-F]{2})|(?P<oct>[0-7]{3})"
    r"|u(?P<u>[0-9a-fA-F]{4})|U(?P<U>[0-9a-fA-F]{8}))"
)
_SIMPLE: Final = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _unquote(literal: str) -> str:
    """Go string-literal unquoting with ``"``, ``/`` or ``|`` as the quote character.

    Raises:
        ValueError: on an illegal escape or a stray quote character.
    """
    quote, inner = literal[0], literal[1:-1]
    out = bytearray()
    pos = 0
    while pos < len(inner):
        if inner[pos] != "\\":
            out += inner[pos].encode("utf-8", "surrogateescape")
            pos += 1
            continue
        match = _ESCAPE.match(inner, pos)
        simple = match["simple"] if match else None
        if match is None or (simple is not None and simple in '"/|' and simple != quote):
            raise ValueError(f"illegal escape sequence at {inner[pos : pos + 2]!r}")
        out += _escaped(match)
        pos = match.end()
    # \x and octal escapes are single bytes, as in Go; decode the whole literal at the end.
    return out.decode("utf-8", "surrogateescape")


def _escaped(match: re.Match[str]) -> bytes:
    if simple := match["simple"]:
        return _SIMPLE.get(simple, simple).encode()
    if match["x"] or match["oct"]:
        value = int(match["x"], 16) if match["x"] else int(match["oct"], 8)
        if value > 0xFF:
            raise ValueError(f"octal escape {match[0]!r} out of range")
        return bytes([value])
    code = int(match["u"] or match["U"], 16)
    if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        raise ValueError(f"escape {match[0]!r} is not a valid code point")
    return chr(code).encode()


class _Parser:
    """Recursive descent over :class:`_Scanner` tokens, following containerd's grammar."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.scanner = _Scanner(text)

    def selectors(self) -> All:
        found = [self.selector()]
        while (ch := self.scanner.peek()) != "":
            if ch != ",":
                raise self.error(self.scanner.pos, f"unexpected input: {ch!r}")
            self.scanner.scan()
            found.append(self.selector())
        return All(tuple(found))

    def selector(self) -> Selector:
        fieldpath = self.fieldpath()
        if self.scanner.peek() in ("", ","):
            return Selector(fieldpath, Operator.PRESENT)
        operator = self.operator()
        token = self.scanner.scan()
        value = self.value(token, allow_alt_quotes=operator is Operator.MATCHES)
        if operator is not Operator.MATCHES:
            return Selector(fieldpath, operator, value)
        try:
            pattern = re.compile(value)
        except re.error as err:
            raise self.error(token.pos, f"invalid regular expression: {err}") from err
        return Selector(fieldpath, operator, value, pattern)

    def fieldpath(self) -> tuple[str, ...]:
        fields = [self.field()]
        while self.scanner.peek() == ".":
            self.scanner.scan()
            fields.append(self.field())
        return tuple(fields)

    def field(self) -> str:
        token = self.scanner.scan()
        if token.kind is _Kind.FIELD:
            return token.text
        if token.kind is _Kind.QUOTED:
            return self.unquote(token, allow_alt_quotes=False)
        if token.kind is _Kind.ILLEGAL:
            raise self.error(token.pos, token.error)
        raise self.error(token.pos, "expected field or quoted")

    def operator(self) -> Operator:
        token = self.scanner.scan()
        if token.kind is _Kind.ILLEGAL:
            raise self.error(token.pos, token.error)
        if token.kind is not _Kind.OPERATOR:
            raise self.error(token.pos, 'expected an operator ("=="|"!="|"~=")')
        if token.text not in ("==", "!=", "~="):
            raise self.error(token.pos, f"unsupported operator {token.text!r}")
        return Operator(token.text)

    def value(self, token: _Token, *, allow_alt_quotes: bool) -> str:
        if token.kind in (_Kind.VALUE, _Kind.FIELD):
            return token.text
        if token.kind is _Kind.QUOTED:
            return self.unquote(token, allow_alt_quotes=allow_alt_quotes)
        if token.kind is _Kind.ILLEGAL:
            raise self.error(token.pos, token.error)
        raise self.error(token.pos, "expected value or quoted")

    def unquote(self, token: _Token, *, allow_alt_quotes: bool) -> str:
        if not allow_alt_quotes and token.text[0] != '"':
            raise self.error(token.pos, "invalid quote encountered")
        try:
            return _unquote(token.text)
        except ValueError as err:
            raise self.error(token.pos, f"unquoting failed: {err}") from err

    def error(self, pos: int, message: str) -> InvalidArgument:
        text = self.text
        where = f"{text[:pos]} >|{text[pos]}|< {text[pos + 1 :]}" if pos < len(text) else text
        return InvalidArgument(f"filters: parse error at position {pos}: [{where}]: {message}")
