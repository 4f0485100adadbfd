"""Crafted layer tars for the unpack and apply tests, and trees to compare before and after."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

from flotilla.snapshots.diff.unpack import Unpacked, Whiteouts, unpack

MTIME = 1_600_000_000
Member = tuple[tarfile.TarInfo, bytes]


def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **fields: Any) -> Member:
    """A tar member; ``fields`` set TarInfo attributes (mode, uid, linkname, pax_headers...)."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.mtime = MTIME
    info.size = len(data)
    for key, value in fields.items():
        setattr(info, key, value)
    return info, data


def file(name: str, data: bytes = b"", **fields: Any) -> Member:
    return member(name, tarfile.REGTYPE, data, **fields)


def directory(name: str, **fields: Any) -> Member:
    return member(name, tarfile.DIRTYPE, **fields)


def symlink(name: str, target: str, **fields: Any) -> Member:
    return member(name, tarfile.SYMTYPE, linkname=target, **fields)


def hardlink(name: str, target: str, **fields: Any) -> Member:
    return member(name, tarfile.LNKTYPE, linkname=target, **fields)


def tar_bytes(*members: Member, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """The members as one tar archive (with its end marker)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.size else None)
    return out.getvalue()


def bare(*members: Member) -> bytes:
    """The members' blocks only: no end marker, no padding to a record."""
    out = b""
    for info, data in members:
        out += info.tobuf(tarfile.PAX_FORMAT) + data + bytes(-len(data) % 512)
    return out


def sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def unpack_bytes(
    data: bytes, root: Path, whiteouts: Whiteouts = Whiteouts.DELETE, **options: Any
) -> Unpacked:
    """Unpack tar bytes under ``root``."""
    return unpack(io.BytesIO(data), root, whiteouts=whiteouts, **options)


def tree(root: Path, *, dir_times: bool = False) -> dict[str, tuple[Any, ...]]:
    """Everything below ``root``: kind, mode, owner, mtime, contents or target, xattrs.

    Directory mtimes only with ``dir_times``: adding and removing entries changes them.
    """
    found: dict[str, tuple[Any, ...]] = {}
    for directory_path, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory_path, name)
            info = path.lstat()
            found[str(path.relative_to(root))] = _describe(path, info, dir_times)
    return found


def _describe(path: Path, info: os.stat_result, dir_times: bool) -> tuple[Any, ...]:
    if stat.S_ISREG(info.st_mode):
        body: Any = path.read_bytes()
    elif stat.S_ISLNK(info.st_mode):
        body = os.readlink(path)
    else:
        body = info.st_rdev
    xattrs = {}
    if not stat.S_ISLNK(info.st_mode):
        xattrs = {key: os.getxattr(path, key) for key in os.listxattr(path)}
    return (
        stat.S_IFMT(info.st_mode),
        stat.S_IMODE(info.st_mode),
        info.st_uid,
        info.st_gid,
        info.st_mtime_ns if dir_times or not stat.S_ISDIR(info.st_mode) else None,
        body,
        xattrs,
    )
