"""Header decoding: the fast paths (one struct unpack, all octal fields checked at once, the
checksum summed by adler32 halves) decode exactly what a field-by-field decoder does."""

from __future__ import annotations

import random
import struct
import tarfile

import pytest

from flotilla.common import errdefs
from flotilla.snapshots.diff import unpack_tar_fields as fields

_SIGNED = struct.Struct("148b8x356b")
_NUMBERS = {"mode": (100, 108), "uid": (108, 116), "gid": (116, 124), "size": (124, 136)}
_NUMBERS |= {"mtime": (136, 148), "devmajor": (329, 337), "devminor": (337, 345)}


def reference(block: bytes) -> tuple[object, ...]:
    """The header, decoded one field at a time with the plain rules (or the error's class)."""
    try:
        try:
            stored = fields.number(block[148:156])
        except errdefs.InvalidArgument:
            stored = -1
        unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
        if stored not in (unsigned, sum(_SIGNED.unpack(block)) + 8 * 32):
            raise errdefs.InvalidArgument("bad header checksum")
        name = fields.c_string(block[0:100])
        magic = block[257:263]
        if magic == b"ustar\x00":
            star = block[508:512] == b"tar\x00"
            prefix = fields.c_string(block[345:476] if star else block[345:500])
            name = prefix + b"/" + name if prefix else name
        kind = block[156:157]
        if kind == b"\x00":
            kind = b"5" if name.endswith(b"/") else b"0"
        modern = magic in (b"ustar\x00", b"ustar ")
        numbers = {
            key: fields.number(block[a:b]) if modern or key not in ("devmajor", "devminor") else 0
            for key, (a, b) in _NUMBERS.items()
        }
        if numbers["size"] < 0:
            raise errdefs.InvalidArgument("negative size")
    except errdefs.InvalidArgument:
        return ("error",)
    numbers["mode"] &= 0o7777
    linkname = fields.c_string(block[157:257])
    return (name, kind, *numbers.values(), linkname)


def decoded(block: bytes) -> tuple[object, ...]:
    try:
        header = fields.parse_header(block, 0)
    except errdefs.InvalidArgument:
        return ("error",)
    return (
        header.name,
        header.type,
        header.mode,
        header.uid,
        header.gid,
        header.size,
        header.mtime,
        header.devmajor,
        header.devminor,
        header.linkname,
    )


def with_checksum(block: bytearray, *, signed: bool = False) -> bytes:
    block[148:156] = b" " * 8
    total = sum(_SIGNED.unpack(bytes(block))) + 256 if signed else sum(block)
    block[148:156] = f"{total:06o}".encode() + b"\x00 "
    return bytes(block)


def headers() -> list[bytes]:
    """Headers of every format tarfile writes, with names and values at their extremes."""
    out = []
    for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        for name, uid, mtime, size in [
            ("f", 0, 0, 0),
            ("dir/", 1000, 1_600_000_000, 0),
            ("ÿ" * 40, 0o7777777, 0o77777777777, 0o77777777777),
            ("p" * 120 + "/" + "n" * 90, 5, 7, 1),
        ]:
            info = tarfile.TarInfo(name)
            info.uid, info.gid, info.mtime, info.size = uid, uid, mtime, size
            info.linkname = "ÿ" * 49  # 98 bytes
            info.type = tarfile.SYMTYPE if name.endswith("/") else tarfile.REGTYPE
            try:
                raw = info.tobuf(fmt, "utf-8", "surrogateescape")
            except ValueError:  # too long for ustar
                continue
            out.append(raw[-512:])
    big = tarfile.TarInfo("big")  # base-256 ids and a negative mtime, as GNU writes them
    big.uid, big.gid, big.mtime = 0o7777777 + 5, 8**11, -5
    out.append(big.tobuf(tarfile.GNU_FORMAT)[-512:])
    return out


def test_tarfile_headers_decode_as_field_by_field() -> None:
    for block in headers():
        assert decoded(block) == reference(block)
        assert decoded(block) != ("error",)


def test_high_bytes_everywhere() -> None:
    block = bytearray(headers()[0])
    block[0:100] = b"\xff" * 100  # more than a half block's sum can reach in 256 bytes
    block[157:257] = b"\xff" * 100
    block[345:500] = b"\x80" * 155
    assert decoded(with_checksum(block)) == reference(with_checksum(block))
    assert decoded(with_checksum(block)) != ("error",)


def test_a_signed_checksum_is_accepted() -> None:
    block = bytearray(headers()[0])
    block[157:257] = bytes(100)  # no link name: a signed sum that is still positive
    block[0:8] = "zoë/☃".encode()  # high bytes: the signed sum differs from the unsigned
    signed = with_checksum(block, signed=True)
    assert signed != with_checksum(block)
    assert decoded(signed) == reference(signed)
    assert decoded(signed)[0] == "zoë/☃".encode()


def test_a_checksum_in_base_256() -> None:
    block = bytearray(headers()[0])
    block[148:156] = b" " * 8
    block[148:156] = b"\x80" + sum(block).to_bytes(7, "big")
    assert decoded(bytes(block)) == reference(bytes(block))
    assert decoded(bytes(block)) != ("error",)


def test_old_v7_and_star_headers() -> None:
    v7 = bytearray(headers()[0])
    v7[257:265] = bytes(8)  # no magic: the device fields are not numbers
    v7[329:345] = b"garbage!garbage!"
    v7[156:157] = b"\x00"
    assert decoded(with_checksum(v7)) == reference(with_checksum(v7))
    star = bytearray(headers()[0])
    star[345:476] = b"prefix".ljust(131, b"\x00")
    star[476:508] = b"0" * 32  # atime, ctime: not part of the prefix
    star[508:512] = b"tar\x00"
    assert decoded(with_checksum(star))[0] == b"prefix/f"
    assert decoded(with_checksum(star)) == reference(with_checksum(star))


@pytest.mark.parametrize(
    "value",
    [b"0_1", b"+7", b"-7", b" 0o7", b"8", b"0x10", b"1 2", b"\t7", b"7\n", b"\xff\xff", b""],
)
def test_malformed_numbers_fail_as_field_by_field(value: bytes) -> None:
    for start, end in _NUMBERS.values():
        block = bytearray(headers()[0])
        block[start:end] = value.ljust(end - start, b"\x00")[: end - start]
        signed = with_checksum(block)
        assert decoded(signed) == reference(signed), (start, value)


def test_random_damage_fails_or_decodes_as_field_by_field() -> None:
    rng = random.Random(20_240_601)
    samples = headers()
    for _ in range(3000):
        block = bytearray(rng.choice(samples))
        for _ in range(rng.randint(1, 4)):
            block[rng.randrange(512)] = rng.choice(b"0123456789 \x00\x80\xff+_-x")
        if rng.random() < 0.8:  # mostly a valid checksum, so the fields themselves are tested
            block = bytearray(with_checksum(block, signed=rng.random() < 0.2))
        assert decoded(bytes(block)) == reference(bytes(block))
