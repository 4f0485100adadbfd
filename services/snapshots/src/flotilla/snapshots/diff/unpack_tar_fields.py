"""Decoding tar header blocks and PAX records (the pure part of the tar reader).

Numbers are octal text or base-256 binary (GNU), checksums may be signed or unsigned sums,
as Go's ``archive/tar`` accepts them. Anything malformed is an
:class:`~flotilla.common.errdefs.InvalidArgument`.
"""

from __future__ import annotations

import os
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final
from zlib import adler32

from flotilla.common import errdefs

__all__ = [
    "Header",
    "Member",
    "c_string",
    "check_sparse",
    "decimal",
    "decimals",
    "is_pax_sparse",
    "member_of",
    "number",
    "old_gnu_sparse",
    "pairs",
    "parse_header",
    "parse_pax",
    "pax_size",
]

_USTAR: Final = b"ustar\x00"
_STAR_TRAILER: Final = b"tar\x00"
_OCTAL: Final = b"01234567"
_SIGNED: Final = struct.Struct("148b8x356b")
# name, mode, uid, gid, size, mtime, checksum, typeflag, linkname, magic, (version, user and
# group names), devmajor, devminor, prefix (155 bytes in ustar, 131 in star), the rest.
_LAYOUT: Final = struct.Struct("100s8s8s8s12s12s8sc100s6s66x8s8s155s12x")
_XATTR: Final = "SCHILY.xattr."
_SPARSE_PAIR: Final = ("GNU.sparse.offset", "GNU.sparse.numbytes")
_NS: Final = 1_000_000_000
_FS_ENCODING: Final = sys.getfilesystemencoding()  # what os.fsdecode uses
_FS_ERRORS: Final = sys.getfilesystemencodeerrors()


@dataclass(slots=True)
class Header:
    """The fields of one header block (before extension headers apply)."""

    name: bytes
    type: bytes
    mode: int
    uid: int
    gid: int
    size: int
    mtime: int
    linkname: bytes
    devmajor: int
    devminor: int


@dataclass(slots=True)
class Member:
    """One file system entry of the archive, all extension headers applied.

    Attributes:
        name: the path as the archive spells it (not yet cleaned or checked).
        type: the typeflag: ``0`` file, ``1`` hard link, ``2`` symlink, ``3``/``4``
            character/block device, ``5`` directory, ``6`` FIFO; others are unknown.
        mode: permission bits, with setuid, setgid and sticky.
        uid: owner.
        gid: group.
        size: the file's length (for a sparse file, including its holes).
        mtime_ns: modification time.
        atime_ns: access time, if the archive has one (PAX).
        linkname: a symlink's target, or the archive path a hard link links to.
        device: major and minor numbers of a device.
        xattrs: extended attributes (``SCHILY.xattr.<name>`` PAX records).
        sparse: a sparse file's data segments, ``(offset, length)`` in archive order.
    """

    name: str
    type: bytes
    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    atime_ns: int | None = None
    linkname: str = ""
    device: tuple[int, int] = (0, 0)
    xattrs: dict[str, bytes] = field(default_factory=dict)
    sparse: list[tuple[int, int]] | None = None


def parse_header(block: bytes, offset: int) -> Header:
    """Decode the header block found at stream ``offset``.

    Raises:
        InvalidArgument: a bad checksum or a malformed field.
    """
    name, mode, uid, gid, size, mtime, stored, kind, link, magic, major, minor, prefix = (
        _LAYOUT.unpack(block)
    )
    _check_sum(block, stored, offset)
    name = name.split(b"\x00", 1)[0]
    if magic == _USTAR:  # POSIX ustar (or star): names may have a prefix
        prefix = c_string(prefix[:131] if block[508:512] == _STAR_TRAILER else prefix)
        if prefix:
            name = prefix + b"/" + name
    if kind == b"\x00":  # pre-POSIX regular files; a trailing slash makes a directory
        kind = b"5" if name.endswith(b"/") else b"0"
    if magic != _USTAR and magic != b"ustar ":  # no device numbers before ustar
        major = minor = b""
    mode, uid, gid, size, mtime, major, minor = _numbers(mode, uid, gid, size, mtime, major, minor)
    if size < 0:
        raise errdefs.InvalidArgument(f"tar: negative size in header at offset {offset}")
    link = link.split(b"\x00", 1)[0]
    return Header(name, kind, mode & 0o7777, uid, gid, size, mtime, link, major, minor)


def _numbers(*fields: bytes) -> tuple[int, ...]:
    """A header's numeric fields; octal text, the usual case, is checked all at once."""
    mode, uid, gid, size, mtime, major, minor = fields
    mode, uid, gid = mode.strip(b" \x00"), uid.strip(b" \x00"), gid.strip(b" \x00")
    size, mtime = size.strip(b" \x00"), mtime.strip(b" \x00")
    major, minor = major.strip(b" \x00"), minor.strip(b" \x00")
    if (mode + uid + gid + size + mtime + major + minor).lstrip(_OCTAL):
        return tuple(map(number, fields))  # base-256, or malformed: one field at a time
    return (
        int(mode or b"0", 8),
        int(uid or b"0", 8),
        int(gid or b"0", 8),
        int(size or b"0", 8),
        int(mtime or b"0", 8),
        int(major or b"0", 8),
        int(minor or b"0", 8),
    )


def _check_sum(block: bytes, stored_field: bytes, offset: int) -> None:
    """The stored checksum must be the sum of the block's bytes, its own field as spaces.

    A half block sums to at most 256 * 255, less than adler32's modulus, so the low half
    of a half's adler32 is that sum plus one: the sum at C speed.
    """
    text = stored_field.strip(b" \x00")
    try:
        stored = int(text, 8) if text and not text.lstrip(_OCTAL) else number(stored_field)
    except errdefs.InvalidArgument:
        stored = -1
    total = (adler32(block[:256]) & 0xFFFF) + (adler32(block[256:]) & 0xFFFF) - 2
    unsigned = total - sum(stored_field) + 8 * 32
    if stored != unsigned and stored != sum(_SIGNED.unpack(block)) + 8 * 32:
        raise errdefs.InvalidArgument(f"tar: bad header checksum at offset {offset}")


def number(field: bytes) -> int:
    """A numeric field: octal text, or GNU base-256 when the first bit is set."""
    if field and field[0] & 0x80:
        invert = 0xFF if field[0] & 0x40 else 0
        value = int.from_bytes(bytes(b ^ invert for b in field), "big")
        value &= (1 << (8 * len(field) - 1)) - 1  # drop the marker bit
        return ~value if invert else value
    text = field.strip(b" \x00")
    if not text:
        return 0
    if text.lstrip(_OCTAL):
        raise errdefs.InvalidArgument(f"tar: malformed number {text[:16]!r} in header")
    return int(text, 8)


def c_string(data: bytes) -> bytes:
    """``data`` up to its first NUL."""
    return data.split(b"\x00", 1)[0]


def parse_pax(data: bytes, pax: dict[str, bytes]) -> None:
    """Add the records of a PAX extended header (``<len> <key>=<value>`` lines) to ``pax``.

    PAX 0.0 sparse maps come as repeated offset and size records, which are joined into one
    ``GNU.sparse.map``, as Go does. An empty value unsets the key.
    """
    pos = 0
    sparse: list[bytes] = []
    while pos < len(data):
        space = data.find(b" ", pos, pos + 21)
        length = decimal(data[pos:space], "PAX record length") if space > pos else 0
        record = data[space + 1 : pos + length]
        if length <= space - pos + 1 or pos + length > len(data) or record[-1:] != b"\n":
            raise errdefs.InvalidArgument("tar: malformed PAX record")
        raw_key, equals, value = record[:-1].partition(b"=")
        key = raw_key.decode("utf-8", "surrogateescape")
        if not equals or not key:
            raise errdefs.InvalidArgument("tar: malformed PAX record")
        if key in _SPARSE_PAIR:
            if key != _SPARSE_PAIR[len(sparse) % 2] or b"," in value:
                raise errdefs.InvalidArgument("tar: malformed PAX sparse record")
            sparse.append(value)
        elif value:
            pax[key] = value
        else:
            pax.pop(key, None)
        pos += length
    if sparse:
        pax["GNU.sparse.map"] = b",".join(sparse)


def pax_size(pax: dict[str, bytes], size: int) -> int:
    """The member's data size: the PAX ``size`` record, else the header's."""
    value = pax.get("size")
    return size if value is None else decimal(value, "PAX size")


def member_of(
    header: Header, pax: dict[str, bytes], long_name: bytes | None, long_link: bytes | None
) -> Member:
    """The member a header describes, with its PAX records and GNU long names applied."""
    if not pax and long_name is None and long_link is None and min(header.uid, header.gid) >= 0:
        return Member(  # a plain ustar header, the usual case
            header.name.decode(_FS_ENCODING, _FS_ERRORS),
            header.type,
            header.mode,
            header.uid,
            header.gid,
            0,
            header.mtime * _NS,
            None,
            header.linkname.decode(_FS_ENCODING, _FS_ERRORS),
            (header.devmajor, header.devminor),
        )
    mtime = pax.get("mtime")
    atime = pax.get("atime")
    return Member(
        name=os.fsdecode(pax.get("path") or long_name or header.name),
        type=header.type,
        mode=header.mode,
        uid=_id(pax.get("uid"), header.uid, "uid"),
        gid=_id(pax.get("gid"), header.gid, "gid"),
        size=0,
        mtime_ns=header.mtime * _NS if mtime is None else _pax_time(mtime),
        atime_ns=None if atime is None else _pax_time(atime),
        linkname=os.fsdecode(pax.get("linkpath") or long_link or header.linkname),
        device=(header.devmajor, header.devminor),
        xattrs={k[len(_XATTR) :]: v for k, v in pax.items() if k.startswith(_XATTR)},
    )


def _id(value: bytes | None, default: int, what: str) -> int:
    number = default if value is None else decimal(value, f"PAX {what}")
    if number < 0:
        raise errdefs.InvalidArgument(f"tar: negative {what} {number}")
    return number


def _pax_time(value: bytes) -> int:
    """A PAX time, ``[-]seconds[.fraction]``, in nanoseconds."""
    negative = value.startswith(b"-")
    seconds, _, fraction = value[negative:].partition(b".")
    if fraction and not fraction.isdigit():
        raise errdefs.InvalidArgument(f"tar: malformed PAX time {value[:32]!r}")
    ns = decimal(seconds, "PAX time") * _NS + int((fraction + b"0" * 9)[:9])
    return -ns if negative else ns


def decimal(value: bytes, what: str) -> int:
    """A non-negative decimal number."""
    if not value.isdigit() or len(value) > 30:
        raise errdefs.InvalidArgument(f"tar: malformed {what} {value[:32]!r}")
    return int(value)


def decimals(values: Sequence[bytes]) -> list[int]:
    """Each of ``values`` as a decimal number."""
    return [decimal(v, "sparse map entry") for v in values]


def pairs(values: list[int], what: str) -> list[tuple[int, int]]:
    """``[a, b, c, d]`` as ``[(a, b), (c, d)]``."""
    if len(values) % 2:
        raise errdefs.InvalidArgument(f"tar: malformed {what}")
    return list(zip(values[::2], values[1::2], strict=True))


def is_pax_sparse(pax: dict[str, bytes]) -> bool:
    """Whether PAX records make the member a GNU sparse file (formats 0.0, 0.1 and 1.0)."""
    version = (pax.get("GNU.sparse.major"), pax.get("GNU.sparse.minor"))
    if version in ((b"0", b"0"), (b"0", b"1"), (b"1", b"0")):
        return True
    if version != (None, None):  # a version this reader does not know: a plain file
        return False
    return "GNU.sparse.map" in pax


def old_gnu_sparse(area: bytes, extended: int) -> tuple[list[tuple[int, int]], bool]:
    """The 24-byte (offset, length) entries of an old GNU sparse area; whether more follow."""
    segments = []
    for start in range(0, len(area), 24):
        if area[start] == 0:
            break
        segments.append((number(area[start : start + 12]), number(area[start + 12 : start + 24])))
    return segments, extended != 0


def check_sparse(segments: list[tuple[int, int]], size: int, data: int, name: str) -> None:
    """Segments must be in order, apart, inside the file, and hold exactly its data.

    Raises:
        InvalidArgument: naming the member.
    """
    end = 0
    for offset, length in segments:
        if offset < end or length < 0 or offset + length > size:
            raise errdefs.InvalidArgument(f"layer entry {name!r}: malformed sparse map")
        end = offset + length
    if sum(length for _, length in segments) != data:
        raise errdefs.InvalidArgument(f"layer entry {name!r}: sparse data size mismatch")
