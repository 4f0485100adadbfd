"""``WWW-Authenticate`` challenges (RFC 7235), parsed as containerd's ``auth.ParseAuthHeader``.

A registry answers 401 with one or more challenges, e.g.
``Bearer realm="https://auth.docker.io/token",service="registry.docker.io"``. Schemes other than
Basic and Bearer are ignored; the rest come back Bearer first, then Basic, each group in the order
the registry sent them. Parameter names are lower-cased; quoted values are unescaped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

__all__ = ["Challenge", "Scheme", "parse_challenges"]

Scheme = Literal["bearer", "basic"]
_RANK: Final[dict[str, int]] = {"bearer": 0, "basic": 1}
# RFC 7230 token characters: any visible ASCII character except the separators.
_SEPARATORS: Final = frozenset(' \t"(),/:;<=>?@[]\\{}')
_SPACE: Final = frozenset(" \t\r\n")


@dataclass(frozen=True)
class Challenge:
    """One challenge: its scheme and its auth parameters (``realm``, ``service``, ``scope``)."""

    scheme: Scheme
    params: dict[str, str] = field(default_factory=dict, hash=False)


def parse_challenges(values: Iterable[str]) -> list[Challenge]:
    """The Basic and Bearer challenges in ``values`` (the header's values), Bearer first."""
    found: list[Challenge] = []
    for value in values:
        for scheme, params in _split(value):
            if scheme in _RANK:
                found.append(Challenge(scheme, params))  # type: ignore[arg-type]
    return sorted(found, key=lambda c: _RANK[c.scheme])  # sorted() is stable


def _is_token(char: str) -> bool:
    return " " < char < "\x7f" and char not in _SEPARATORS


def _token(text: str, pos: int) -> tuple[str, int]:
    end = pos
    while end < len(text) and _is_token(text[end]):
        end += 1
    return text[pos:end], end


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _SPACE:
        pos += 1
    return pos


def _quoted(text: str, pos: int) -> tuple[str | None, int]:
    """The quoted string starting at ``text[pos] == '"'``; None if it never ends."""
    out: list[str] = []
    pos += 1
    while pos < len(text):
        char = text[pos]
        if char == "\\" and pos + 1 < len(text):
            out.append(text[pos + 1])
            pos += 2
        elif char == '"':
            return "".join(out), pos + 1
        else:
            out.append(char)
            pos += 1
    return None, pos


def _value(text: str, pos: int) -> tuple[str | None, int]:
    if pos < len(text) and text[pos] == '"':
        return _quoted(text, pos)
    return _token(text, pos)


def _split(header: str) -> list[tuple[str, dict[str, str]]]:
    """Every ``scheme param=value, ...`` in one header value (several may share one line)."""
    result: list[tuple[str, dict[str, str]]] = []
    pos = _skip_space(header, 0)
    while pos < len(header):
        scheme, pos = _token(header, pos)
        if not scheme:
            break
        params: dict[str, str] = {}
        result.append((scheme.lower(), params))
        pos = _params(header, _skip_space(header, pos), params)
        if pos < 0:
            break
    return result


def _params(text: str, pos: int, params: dict[str, str]) -> int:
    """Read ``k=v`` pairs into ``params``; return where the next challenge starts, or -1."""
    while pos < len(text):
        start = pos
        name, pos = _token(text, pos)
        after = _skip_space(text, pos)
        if not name or after >= len(text) or text[after] != "=":
            # Not a parameter: the next challenge's scheme (or garbage, which ends parsing).
            return start if name else -1
        value, pos = _value(text, _skip_space(text, after + 1))
        if value is None:
            return -1
        params[name.lower()] = value
        pos = _skip_space(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_space(text, pos + 1)
        elif pos < len(text):
            return -1
    return pos
