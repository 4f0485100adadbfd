"""Key-value keys built from user strings, without collisions and without breaking subjects.

A JetStream KV key is a NATS subject tail: ``.`` separates tokens, ``*`` and ``>`` are
wildcards, and only ``[-/_=.A-Za-z0-9]`` is allowed. Names the user chooses (``k8s.io``,
``docker.io/library/busybox:latest``, a container id with dots) are therefore escaped token by
token: ``A-Z a-z 0-9 _ -`` stay, every other UTF-8 byte becomes ``=XX`` (upper-case hex), so
``=`` itself is escaped and two names never share a key. A record's key is
``<namespace>.<name>``; a lease's resources are ``<namespace>.<lease>.<type>.<id>``.
"""

from __future__ import annotations

import re
from typing import Final

from flotilla.common.errdefs import InvalidArgument

__all__ = ["escape", "join", "split", "unescape"]

_PLAIN: Final = re.compile(r"[A-Za-z0-9_-]")
_ESCAPED: Final = re.compile(rb"=([0-9A-F]{2})")


def escape(name: str) -> str:
    """``name`` as one key token (empty names are refused: they would vanish).

    Raises:
        InvalidArgument: if ``name`` is empty.
    """
    if not name:
        raise InvalidArgument("a record name must not be empty")
    if name.isascii() and all(_PLAIN.match(ch) for ch in name):
        return name
    return "".join(ch if _PLAIN.match(ch) else _hex(ch) for ch in name)


def _hex(ch: str) -> str:
    return "".join(f"={byte:02X}" for byte in ch.encode())


def unescape(token: str) -> str:
    """The name :func:`escape` made ``token`` from."""
    if "=" not in token:
        return token
    return _ESCAPED.sub(
        lambda match: bytes.fromhex(match.group(1).decode()), token.encode()
    ).decode()


def join(*names: str) -> str:
    """A key of escaped tokens, e.g. ``join("k8s.io", "pause")`` is ``k8s=2Eio.pause``."""
    return ".".join(escape(name) for name in names)


def split(key: str) -> list[str]:
    """The names a :func:`join` key was made of."""
    return [unescape(token) for token in key.split(".")]
