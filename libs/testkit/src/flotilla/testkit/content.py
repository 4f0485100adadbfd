"""Deterministic file contents for test images: literal bytes or seeded pseudo-random streams."""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["Content", "RandomBytes", "open_content", "size_of"]

_BLOCK = 1 << 20


@dataclass(frozen=True)
class RandomBytes:
    """``size`` pseudo-random bytes from ``seed``, the same on every machine and run.

    Generated in 1 MiB blocks, each seeded from ``(seed, block index)``, so any chunking
    of reads yields the same bytes. ``zero_fraction`` of every block is zeros, which makes
    the stream that much compressible (0.0: incompressible).
    """

    size: int
    seed: str
    zero_fraction: float = 0.0

    def block(self, index: int) -> bytes:
        """The ``index``-th 1 MiB block (the last one may be shorter)."""
        length = min(_BLOCK, self.size - index * _BLOCK)
        zeros = int(length * self.zero_fraction)
        noise = random.Random(f"{self.seed}:{index}").randbytes(length - zeros)
        return noise + bytes(zeros)


Content = bytes | RandomBytes


class _RandomReader(io.RawIOBase):
    """A read-only stream over a ``RandomBytes``."""

    def __init__(self, content: RandomBytes) -> None:
        self._content = content
        self._pos = 0
        self._cached: tuple[int, bytes] = (-1, b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        if self._pos >= self._content.size:
            return 0
        index, offset = divmod(self._pos, _BLOCK)
        chunk = self._block(index)[offset : offset + len(view)]
        view[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)

    def _block(self, index: int) -> bytes:
        if self._cached[0] != index:
            self._cached = (index, self._content.block(index))
        return self._cached[1]


def open_content(content: Content) -> BinaryIO:
    """A binary stream over ``content``."""
    if isinstance(content, bytes):
        return io.BytesIO(content)
    return io.BufferedReader(_RandomReader(content), buffer_size=_BLOCK)


def size_of(content: Content) -> int:
    """The length of ``content`` in bytes."""
    return len(content) if isinstance(content, bytes) else content.size
