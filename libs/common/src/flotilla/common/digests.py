"""Content digests as OCI and containerd spell them: ``<algorithm>:<lowercase hex>``.

Only the algorithms containerd registers by default are accepted: ``sha256`` (the canonical
one, 64 hex characters) and ``sha512`` (128). Anything else is an
:class:`~flotilla.common.errdefs.InvalidArgument` that names the offending value.

Digests travel as plain ``str`` through every API and wire Struct (msgspec does not encode
``str`` subclasses); :class:`Digest` is the parsed view for code that needs the parts.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final, Protocol

from flotilla.common.errdefs import InvalidArgument

__all__ = [
    "ALGORITHMS",
    "CANONICAL",
    "Digest",
    "Hasher",
    "digest_of",
    "hasher",
    "parse",
    "validate",
]

CANONICAL: Final = "sha256"
# algorithm -> length of its hex encoding.
ALGORITHMS: Final[dict[str, int]] = {"sha256": 64, "sha512": 128}

_HEX: Final = re.compile(r"[a-f0-9]+")
# Echo at most this much of a bad value back to the caller: it may be arbitrarily long.
_ECHO: Final = 160


class Hasher(Protocol):
    """The part of a :mod:`hashlib` hash object a content store uses."""

    @property
    def name(self) -> str:
        """The algorithm, e.g. ``sha256``."""
        ...

    def update(self, data: bytes | memoryview, /) -> None:
        """Feed more bytes."""
        ...

    def hexdigest(self) -> str:
        """The hex digest of the bytes fed so far."""
        ...

    def copy(self) -> Hasher:
        """An independent hasher in the same state."""
        ...


@dataclass(frozen=True, slots=True)
class Digest:
    """A validated digest, split into its algorithm and hex encoding.

    Attributes:
        algorithm: ``sha256`` or ``sha512``.
        encoded: the lowercase hex digest, of the algorithm's exact length.
    """

    algorithm: str
    encoded: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"

    @classmethod
    def of(cls, hashed: Hasher) -> Digest:
        """The digest of the bytes ``hashed`` has seen so far."""
        return cls(hashed.name, hashed.hexdigest())


def parse(value: str) -> Digest:
    """Parse ``value`` as ``<algorithm>:<hex>``.

    Raises:
        InvalidArgument: if the algorithm is not supported or the hex part is malformed.
    """
    algorithm, sep, encoded = value.partition(":")
    if not sep:
        raise InvalidArgument(f"invalid digest {_echo(value)}: missing ':' separator")
    length = ALGORITHMS.get(algorithm)
    if length is None:
        raise InvalidArgument(f"invalid digest {_echo(value)}: unsupported algorithm")
    if len(encoded) != length or not _HEX.fullmatch(encoded):
        raise InvalidArgument(
            f"invalid digest {_echo(value)}: want {length} lowercase hex characters"
        )
    return Digest(algorithm, encoded)


def validate(value: str) -> str:
    """``value`` itself once it is known to be a well-formed digest.

    Raises:
        InvalidArgument: as :func:`parse`.
    """
    parse(value)
    return value


def hasher(algorithm: str = CANONICAL) -> Hasher:
    """A fresh hasher for ``algorithm``.

    Raises:
        InvalidArgument: if the algorithm is not supported.
    """
    if algorithm not in ALGORITHMS:
        raise InvalidArgument(f"unsupported digest algorithm {_echo(algorithm)}")
    return hashlib.new(algorithm)


def digest_of(data: bytes, algorithm: str = CANONICAL) -> str:
    """The digest string of ``data`` (for small, in-memory payloads)."""
    hashed = hasher(algorithm)
    hashed.update(data)
    return str(Digest.of(hashed))


def _echo(value: str) -> str:
    shown = value if len(value) <= _ECHO else value[:_ECHO] + "..."
    return repr(shown)
