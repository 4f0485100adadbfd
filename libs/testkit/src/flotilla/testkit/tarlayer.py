"""Deterministic gzip'd tar layers: same entries in, same bytes (and digests) out.

Entries are sorted by path, missing parent directories are added, owners are 0:0, every
mtime is ``EPOCH``, the tar is GNU format (never PAX timestamps) and the gzip header has
no name and mtime 0.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Protocol

from flotilla.testkit.content import Content, open_content, size_of

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = [
    "EPOCH",
    "Entry",
    "WrittenLayer",
    "directory",
    "file",
    "hardlink",
    "opaque",
    "symlink",
    "whiteout",
    "write_layer",
]

EPOCH = 0


@dataclass(frozen=True)
class Entry:
    """One tar member. ``path`` is relative to the root, without a leading slash."""

    path: str
    type: bytes
    mode: int
    content: Content = b""
    linkname: str = ""


def _clean(path: str) -> str:
    return str(PurePosixPath("/", path).relative_to("/"))


def directory(path: str, mode: int = 0o755) -> Entry:
    """A directory."""
    return Entry(_clean(path), tarfile.DIRTYPE, mode)


def file(path: str, content: Content, mode: int = 0o644) -> Entry:
    """A regular file with ``content``."""
    return Entry(_clean(path), tarfile.REGTYPE, mode, content)


def symlink(path: str, target: str) -> Entry:
    """A symbolic link to ``target`` (taken literally, relative or absolute)."""
    return Entry(_clean(path), tarfile.SYMTYPE, 0o777, linkname=target)


def hardlink(path: str, target: str) -> Entry:
    """A hard link to ``target``, which must be a file earlier in the same layer."""
    return Entry(_clean(path), tarfile.LNKTYPE, 0o644, linkname=_clean(target))


def whiteout(path: str) -> Entry:
    """Deletes ``path`` of a lower layer (the ``.wh.<name>`` marker)."""
    pure = PurePosixPath(_clean(path))
    return file(str(pure.parent / f".wh.{pure.name}"), b"", 0o644)


def opaque(path: str) -> Entry:
    """Hides everything lower layers have in directory ``path`` (``.wh..wh..opq``)."""
    return file(str(PurePosixPath(_clean(path)) / ".wh..wh..opq"), b"", 0o644)


@dataclass(frozen=True)
class WrittenLayer:
    """A layer blob on disk with its digest, compressed size and diff id."""

    path: Path
    digest: str
    size: int
    diff_id: str


class _Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...

    def flush(self) -> None: ...


class _HashingWriter(io.BufferedIOBase):
    """A write-only stream that forwards to ``sink``, hashing and counting on the way."""

    def __init__(self, sink: _Sink) -> None:
        super().__init__()
        self._sink = sink
        self._hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer, /) -> int:
        chunk = bytes(data)
        self._hash.update(chunk)
        self.size += len(chunk)
        self._sink.write(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._sink.flush()

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of everything written."""
        return "sha256:" + self._hash.hexdigest()


def _ordered(entries: Iterable[Entry]) -> list[Entry]:
    """Sorted by path, parents added, duplicates and dangling hard links refused."""
    by_path: dict[str, Entry] = {}
    for entry in entries:
        if entry.path in by_path:
            raise ValueError(f"duplicate path {entry.path} in layer")
        by_path[entry.path] = entry
    for path in list(by_path):
        for parent in PurePosixPath(path).parents:
            if str(parent) != ".":
                by_path.setdefault(str(parent), directory(str(parent)))
    ordered = [by_path[path] for path in sorted(by_path)]
    _check_hardlinks(ordered)
    return ordered


def _check_hardlinks(ordered: list[Entry]) -> None:
    seen: set[str] = set()
    for entry in ordered:
        if entry.type == tarfile.LNKTYPE and entry.linkname not in seen:
            raise ValueError(f"hard link {entry.path} precedes its target {entry.linkname}")
        seen.add(entry.path)


def _tarinfo(entry: Entry) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.path)
    info.type = entry.type
    info.mode = entry.mode
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = EPOCH
    info.linkname = entry.linkname
    info.size = size_of(entry.content) if entry.type == tarfile.REGTYPE else 0
    return info


def write_layer(entries: Iterable[Entry], dest: Path, *, compresslevel: int = 6) -> WrittenLayer:
    """Write the entries as a gzip'd tar at ``dest``; returns its digest, size and diff id."""
    ordered = _ordered(entries)
    with dest.open("wb") as raw:
        compressed = _HashingWriter(raw)
        with gzip.GzipFile("", "wb", compresslevel, compressed, mtime=0) as gz:
            plain = _HashingWriter(gz)
            _write_tar(ordered, plain)
    return WrittenLayer(dest, compressed.digest, compressed.size, plain.digest)


def _write_tar(ordered: list[Entry], sink: _HashingWriter) -> None:
    with tarfile.open(fileobj=sink, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for entry in ordered:
            info = _tarinfo(entry)
            tar.addfile(info, open_content(entry.content) if info.size else None)
