"""A strict, streaming tar reader (blocking): ustar, GNU and PAX, as Go's ``archive/tar``.

It reads what container layers hold: ustar names with a prefix, GNU long names and long
link names, PAX extended headers (path, linkpath, size, uid, gid, mtime, atime, xattrs) and
sparse files in every GNU flavour (old GNU ``S`` members, PAX 0.0, 0.1 and 1.0). PAX global
headers are skipped, as containerd skips them.

Unlike :mod:`tarfile`, nothing bad is quietly taken for the end of the archive: a header
with a bad checksum, a malformed number, a member or header cut short, or a zero block
followed by data is an :class:`~flotilla.common.errdefs.InvalidArgument`. A stream that ends
exactly between members is a complete archive without its end marker (Go accepts it too).

Member data is handed out as :class:`memoryview` slices of the source's reads, so big files
pass from the decompressor to ``write(2)`` without being copied; a small file's data is
usually one slice (:meth:`TarReader.whole`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Final, Protocol

from flotilla.common import errdefs
from flotilla.snapshots.diff import unpack_tar_fields as fields
from flotilla.snapshots.diff.unpack_tar_fields import Member

__all__ = [
    "BLOCK",
    "BLK",
    "CHR",
    "DIR",
    "FIFO",
    "LNK",
    "REG",
    "SYM",
    "Member",
    "Source",
    "TarReader",
]

BLOCK: Final = 512
REG: Final = b"0"
LNK: Final = b"1"
SYM: Final = b"2"
CHR: Final = b"3"
BLK: Final = b"4"
DIR: Final = b"5"
FIFO: Final = b"6"
_CONTIGUOUS: Final = b"7"
_PAX: Final = b"x"
_PAX_GLOBAL: Final = b"g"
_GNU_LONGNAME: Final = b"L"
_GNU_LONGLINK: Final = b"K"
_GNU_SPARSE: Final = b"S"
_HEADER_ONLY: Final = frozenset((LNK, SYM, CHR, BLK, DIR, FIFO))
_SPECIAL: Final = frozenset((_PAX, _PAX_GLOBAL, _GNU_LONGNAME, _GNU_LONGLINK))
_ZERO: Final = bytes(BLOCK)
# The most a PAX header or a GNU long name may hold, as Go's archive/tar allows.
_MAX_SPECIAL: Final = 1 << 20


class Source(Protocol):
    """Where the tar bytes come from: ``read()`` returns the next chunk, ``b""`` at the end."""

    def read(self) -> bytes:
        """The next chunk of the stream."""
        ...


class TarReader:
    """Reads members from ``source`` one after the other.

    Args:
        source: the uncompressed tar stream.
    """

    def __init__(self, source: Source) -> None:
        self._source = source
        self._chunk = b""  # the source's last read, ...
        self._view = memoryview(self._chunk)  # ... and a view of it, to slice without copies
        self._pos = 0
        self._base = 0  # the stream's offset of _chunk[0]
        self._left = 0  # unread data of the current member
        self._padding = 0  # after it, up to the next block
        self._ended = False

    def next(self) -> Member | None:
        """The next member, skipping what is left of the current one; ``None`` at the end."""
        if self._left or self._padding:
            self._skip(self._left + self._padding)
            self._left = self._padding = 0
        if self._ended:
            return None
        pax: dict[str, bytes] = {}
        long_name = long_link = None
        while True:
            block = self._header_block()
            if block is None:
                self._ended = True
                return None
            header = fields.parse_header(block, self._base + self._pos - BLOCK)
            kind = header.type
            if kind in _SPECIAL:
                data = self._special(header.size, kind)
                if kind == _PAX:
                    fields.parse_pax(data, pax)
                elif kind == _GNU_LONGNAME:
                    long_name = fields.c_string(data)
                elif kind == _GNU_LONGLINK:
                    long_link = fields.c_string(data)
                continue
            return self._member(header, pax, long_name, long_link, block)

    def chunks(self, length: int) -> Iterator[memoryview]:
        """The next ``length`` bytes of the current member's data, in slices.

        Raises:
            InvalidArgument: the member has fewer bytes left, or the stream ends early.
        """
        if length > self._left:
            raise errdefs.InvalidArgument(f"tar: member data overrun at offset {self._offset}")
        self._left -= length
        while length:
            view = self._take(length)
            if not view:
                raise self._truncated()
            length -= len(view)
            yield view

    def whole(self, length: int) -> memoryview | None:
        """The next ``length`` bytes of the current member's data, in one slice.

        ``None`` when they are not all in the chunk at hand (then use :meth:`chunks`): a
        small file's data usually is.

        Raises:
            InvalidArgument: the member has fewer bytes left.
        """
        if length > self._left:
            raise errdefs.InvalidArgument(f"tar: member data overrun at offset {self._offset}")
        pos = self._pos
        end = pos + length
        if end > len(self._chunk):
            return None
        self._left -= length
        self._pos = end
        return self._view[pos:end]

    def drain(self) -> None:
        """Read the stream to its end (bytes after the archive count towards its digest)."""
        while self._take(1 << 30):
            pass

    def _member(
        self,
        header: fields.Header,
        pax: dict[str, bytes],
        long_name: bytes | None,
        long_link: bytes | None,
        block: bytes,
    ) -> Member:
        member = fields.member_of(header, pax, long_name, long_link)
        kind = header.type
        # Links, devices, directories and FIFOs have no data, whatever their size field says.
        if kind in _HEADER_ONLY:
            data_size = 0
        else:
            data_size = fields.pax_size(pax, header.size) if pax else header.size
        self._left = data_size
        self._padding = -data_size % BLOCK
        if kind == _CONTIGUOUS:
            member.type = REG
        if kind == _GNU_SPARSE:
            member.type = REG
            member.sparse, member.size = self._old_gnu_sparse(block)
        elif pax and fields.is_pax_sparse(pax):
            member.sparse = self._pax_sparse(member, pax)
        if member.sparse is not None:
            fields.check_sparse(member.sparse, member.size, self._left, member.name)
        elif member.type == REG:
            member.size = data_size
        return member

    def _old_gnu_sparse(self, block: bytes) -> tuple[list[tuple[int, int]], int]:
        """An old GNU sparse member's map: in its header, then in extension blocks."""
        segments, extended = fields.old_gnu_sparse(block[386:482], block[482])
        while extended:
            more = self._exact(BLOCK)
            if more is None:
                raise self._truncated()
            entries, extended = fields.old_gnu_sparse(more[:504], more[504])
            segments += entries
        return segments, fields.number(block[483:495])

    def _pax_sparse(self, member: Member, pax: dict[str, bytes]) -> list[tuple[int, int]]:
        name = pax.get("GNU.sparse.name")
        if name:
            member.name = os.fsdecode(name)
        real_size = pax.get("GNU.sparse.size") or pax.get("GNU.sparse.realsize")
        if real_size is not None:
            member.size = fields.decimal(real_size, "GNU.sparse.size")
        if pax.get("GNU.sparse.major") == b"1":
            return self._sparse_map_1x0()
        flat = pax.get("GNU.sparse.map", b"")
        return fields.pairs(fields.decimals(flat.split(b",")) if flat else [], "GNU.sparse.map")

    def _sparse_map_1x0(self) -> list[tuple[int, int]]:
        """PAX sparse 1.0: the map is decimal lines in whole blocks at the start of the data."""
        text = b""
        while True:
            lines = text.split(b"\n")
            count = fields.decimal(lines[0], "sparse map") if len(lines) > 1 else None
            if count is not None and len(lines) > 2 * count + 1:
                return fields.pairs(fields.decimals(lines[1 : 2 * count + 1]), "sparse map")
            if len(text) >= _MAX_SPECIAL:
                raise errdefs.InvalidArgument("tar: sparse map too large")
            block = b"".join(bytes(v) for v in self.chunks(BLOCK))
            text += block

    def _header_block(self) -> bytes | None:
        """The next header block; ``None`` at the end of the archive."""
        block = self._exact(BLOCK)
        if block is None or block != _ZERO:
            return block
        second = self._exact(BLOCK)
        if second is not None and second != _ZERO:
            raise errdefs.InvalidArgument(f"tar: data after a zero block at offset {self._offset}")
        return None

    def _special(self, size: int, kind: bytes) -> bytes:
        if size > _MAX_SPECIAL:
            raise errdefs.InvalidArgument(f"tar: {kind.decode()} header of {size} bytes")
        data = self._exact(size) if size else b""
        if data is None:
            raise self._truncated()
        self._skip(-size % BLOCK)
        return data

    @property
    def _offset(self) -> int:
        """The stream's offset of the next byte."""
        return self._base + self._pos

    def _take(self, length: int) -> memoryview:
        """Up to ``length`` bytes (at least one unless the stream ended)."""
        if self._pos == len(self._chunk):
            self._base += self._pos
            self._chunk = self._source.read()
            self._view = memoryview(self._chunk)
            self._pos = 0
        start = self._pos
        self._pos = min(len(self._chunk), start + length)
        return self._view[start : self._pos]

    def _exact(self, length: int) -> bytes | None:
        """Exactly ``length`` bytes; ``None`` if the stream ended before the first of them."""
        start = self._pos
        end = start + length
        if end <= len(self._chunk):  # all in the chunk at hand (headers, mostly)
            self._pos = end
            return self._chunk[start:end]
        view = self._take(length)
        if not view:
            return None
        parts = [bytes(view)]
        got = len(view)
        while got < length:
            view = self._take(length - got)
            if not view:
                raise self._truncated()
            parts.append(bytes(view))
            got += len(view)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _skip(self, length: int) -> None:
        end = self._pos + length
        if end <= len(self._chunk):
            self._pos = end
            return
        while length:
            view = self._take(length)
            if not view:
                raise self._truncated()
            length -= len(view)

    def _truncated(self) -> errdefs.InvalidArgument:
        return errdefs.InvalidArgument(f"tar: unexpected end of stream at offset {self._offset}")
