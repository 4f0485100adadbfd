"""Writing changes as an OCI layer tar, as containerd's ``archive.WriteDiff`` does.

The tar is PAX, with what containerd's ``ChangeWriter`` puts in it: owners, modes, times
truncated to whole seconds, symlinks, devices and fifos (sockets are left out), and xattrs as
``SCHILY.xattr.<name>`` records: every one but overlayfs' own (containerd keeps only
``security.capability``). A deleted path is a whiteout ``.wh.<name>`` beside it, an opaque
directory gets ``<dir>/.wh..wh..opq`` right after its own entry, and a second path to an
inode already in the layer is a hard link to the first. Every changed path's parent
directories come before it (containerd's ``includeParents``).

Whiteouts carry time 0 (containerd: the time of the diff) and the gzip header no time or name,
so the same changes make the same bytes: a layer's digest depends on the trees only.

The layer is streamed through the compressor into a file object while both digests are
computed: the written bytes' and the uncompressed tar's (the diffID). Blocking: call
:func:`write_layer` from a worker thread.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import tarfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final, Literal, Protocol

import zstandard
from isal import isal_zlib

from flotilla.common import errdefs
from flotilla.snapshots.diff.changes import Change, Kind, xattrs

__all__ = ["GZIP_LEVEL", "Compression", "Header", "Layer", "write_layer"]

Compression = Literal["gzip", "zstd", "none"]

GZIP_LEVEL: Final = isal_zlib.ISAL_DEFAULT_COMPRESSION
"""ISA-L's level 2: about the size of zlib's default level, several times as fast."""

WHITEOUT_PREFIX: Final = ".wh."
OPAQUE_MARKER: Final = ".wh..wh..opq"

_BLOCK: Final = 1 << 20  # what the stream gathers before hashing and compressing
_RECORD: Final = tarfile.BLOCKSIZE
_PAX_XATTR: Final = "SCHILY.xattr."
_NAME: Final = 100  # ustar's name and link name fields
_MAX_ID: Final = 8**7  # what 7 octal digits hold (ids, device numbers)
_MAX_SIZE: Final = 8**11  # what 11 octal digits hold (sizes, times)
_USTAR: Final = struct.Struct("100s8s8s8s12s12s8sc100s8s32s32s8s8s155s12x")
_TYPES: Final = {
    stat.S_IFREG: tarfile.REGTYPE,
    stat.S_IFDIR: tarfile.DIRTYPE,
    stat.S_IFLNK: tarfile.SYMTYPE,
    stat.S_IFCHR: tarfile.CHRTYPE,
    stat.S_IFBLK: tarfile.BLKTYPE,
    stat.S_IFIFO: tarfile.FIFOTYPE,
}


@dataclass(frozen=True, slots=True)
class Layer:
    """A written layer.

    Attributes:
        digest: ``sha256:<hex>`` of the bytes written (compressed, unless ``none``).
        size: their length.
        diff_id: ``sha256:<hex>`` of the uncompressed tar.
        tar_size: the uncompressed tar's length.
    """

    digest: str
    size: int
    diff_id: str
    tar_size: int


class _Compressor(Protocol):
    def compress(self, data: bytes | bytearray | memoryview, /) -> bytes: ...

    def flush(self) -> bytes: ...


def _compressor(compression: Compression, gzip_level: int) -> _Compressor | None:
    if compression == "gzip":
        return isal_zlib.compressobj(gzip_level, isal_zlib.DEFLATED, 16 + isal_zlib.MAX_WBITS)
    if compression == "zstd":
        return zstandard.ZstdCompressor().compressobj()
    return None


class _Stream:
    """Tar bytes in, compressed bytes out, both hashed; small writes gathered into blocks."""

    def __init__(self, out: BinaryIO, compressor: _Compressor | None) -> None:
        self._out = out
        self._compressor = compressor
        self._buffer = bytearray()
        self._tar = hashlib.sha256()
        self._blob = hashlib.sha256()
        self._tar_size = 0
        self._blob_size = 0

    def write(self, data: bytes | memoryview) -> None:
        if len(self._buffer) + len(data) > _BLOCK:
            self._flush()
        if len(data) >= _BLOCK:
            self._emit(data)
        else:
            self._buffer += data

    def close(self) -> Layer:
        """Finish the compressed stream; the digests and sizes."""
        self._flush()
        if self._compressor is None:
            digest = f"sha256:{self._tar.hexdigest()}"
            return Layer(digest, self._tar_size, digest, self._tar_size)
        self._put(self._compressor.flush())
        return Layer(
            f"sha256:{self._blob.hexdigest()}",
            self._blob_size,
            f"sha256:{self._tar.hexdigest()}",
            self._tar_size,
        )

    def _flush(self) -> None:
        if self._buffer:
            self._emit(self._buffer)
            self._buffer = bytearray()

    def _emit(self, data: bytes | bytearray | memoryview) -> None:
        self._tar.update(data)
        self._tar_size += len(data)
        if self._compressor is None:
            self._out.write(data)
        else:
            self._put(self._compressor.compress(data))

    def _put(self, packed: bytes) -> None:
        if packed:
            self._blob.update(packed)
            self._blob_size += len(packed)
            self._out.write(packed)


def write_layer(
    changes: Iterable[Change],
    source: Path,
    out: BinaryIO,
    *,
    compression: Compression = "gzip",
    gzip_level: int = GZIP_LEVEL,
    stop: threading.Event | None = None,
) -> Layer:
    """Write ``changes`` as a layer into ``out``.

    Args:
        changes: in the order :mod:`flotilla.snapshots.diff.changes` reports them.
        source: the upper tree the changed paths are read from.
        out: where the (compressed) layer goes.
        compression: ``gzip``, ``zstd`` or ``none`` (a plain tar).
        gzip_level: ISA-L's level (0-3) for ``gzip``.
        stop: set it to stop early (the call then raises Canceled).

    Raises:
        Canceled: ``stop`` was set.
        FailedPrecondition: a file changed size while it was read.
        NotFound, PermissionDenied, ResourceExhausted, Internal: reading the trees or
            writing ``out`` failed (the message names the path).
    """
    stream = _Stream(out, _compressor(compression, gzip_level))
    writer = _ChangeWriter(str(source), stream, stop or threading.Event())
    try:
        for change in changes:
            writer.handle(change)
    except OSError as error:
        where = os.fsdecode(error.filename) if error.filename else "layer"
        raise errdefs.from_os_error(error, where) from error
    stream.write(bytes(2 * _RECORD))  # the end of the archive, as Go's tar writes it
    return stream.close()


class _ChangeWriter:
    """containerd's ``ChangeWriter``: one change at a time into tar entries."""

    def __init__(self, source: str, stream: _Stream, stop: threading.Event) -> None:
        self._source = source
        self._stream = stream
        self._stop = stop
        self._dirs: set[str] = set()  # directories in the layer (parents are written once)
        self._first: dict[tuple[int, int], str] = {}  # inode -> the path holding its data
        self._waiting: dict[tuple[int, int], list[str]] = {}  # inode -> unchanged links
        self._view = memoryview(bytearray(_BLOCK))

    def handle(self, change: Change) -> None:
        if self._stop.is_set():
            raise errdefs.Canceled("writing the layer was canceled")
        if change.kind is Kind.DELETE:
            parent, _, name = change.path.rpartition("/")
            self._marker(parent, WHITEOUT_PREFIX + name)
            return
        assert change.stat is not None, "only a deletion has no stat"
        info = change.stat
        if stat.S_ISSOCK(info.st_mode):
            return
        if stat.S_ISDIR(info.st_mode):
            self._directory(change, info)
        elif info.st_nlink > 1:
            self._linked(change, info)
        elif change.kind is not Kind.UNMODIFIED:
            self._parents(change.path)
            self._entry(change.path, info)

    def _directory(self, change: Change, info: os.stat_result) -> None:
        if change.path not in self._dirs:
            self._parents(change.path)
            self._entry(change.path, info)
            self._dirs.add(change.path)
        if change.opaque:
            self._marker(change.path, OPAQUE_MARKER)

    def _linked(self, change: Change, info: os.stat_result) -> None:
        """A file with several names: the first in the layer has the data, the rest link it."""
        inode = (info.st_dev, info.st_ino)
        first = self._first.get(inode)
        if first is not None:
            self._parents(change.path)
            self._entry(change.path, info, link=first)
        elif change.kind is Kind.UNMODIFIED:
            self._waiting.setdefault(inode, []).append(change.path)
        else:
            self._parents(change.path)
            self._entry(change.path, info)
            self._first[inode] = change.path
            for other in self._waiting.pop(inode, []):
                self._parents(other)
                self._entry(other, info, link=change.path)

    def _parents(self, path: str) -> None:
        """Write the directories above ``path`` that the layer lacks, the topmost first."""
        missing: list[str] = []
        parent = path.rpartition("/")[0]
        while parent and parent not in self._dirs:
            missing.append(parent)
            parent = parent.rpartition("/")[0]
        for directory in reversed(missing):
            self._entry(directory, os.lstat(os.path.join(self._source, directory)))
            self._dirs.add(directory)

    def _marker(self, parent: str, name: str) -> None:
        """An empty file that tells the applier what to remove (whiteout or opaque marker)."""
        path = f"{parent}/{name}" if parent else name
        self._parents(path)
        self._stream.write(Header(path, tarfile.REGTYPE).encode())

    def _entry(self, path: str, info: os.stat_result, link: str = "") -> None:
        full = os.path.join(self._source, path)
        header = Header(
            path,
            tarfile.LNKTYPE if link else _TYPES[stat.S_IFMT(info.st_mode)],
            mode=stat.S_IMODE(info.st_mode),
            uid=info.st_uid,
            gid=info.st_gid,
            mtime=info.st_mtime_ns // 1_000_000_000,
            linkname=link,
        )
        if not link:
            _describe(header, info, full)
        self._stream.write(header.encode())
        if header.type == tarfile.REGTYPE and header.size:
            self._copy(full, header.size)

    def _copy(self, full: str, size: int) -> None:
        """Exactly ``size`` bytes of the file, then the padding to a whole tar block."""
        fd = os.open(full, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            left = size
            while left:
                if self._stop.is_set():
                    raise errdefs.Canceled("writing the layer was canceled")
                count = os.readv(fd, [self._view[: min(left, _BLOCK)]])
                if not count:
                    raise errdefs.FailedPrecondition(f"{full} shrank while it was read")
                self._stream.write(self._view[:count])
                left -= count
            if os.read(fd, 1):
                raise errdefs.FailedPrecondition(f"{full} grew while it was read")
        finally:
            os.close(fd)
        padding = -size % _RECORD
        if padding:
            self._stream.write(bytes(padding))


def _describe(header: Header, info: os.stat_result, full: str) -> None:
    """Size, link target, device numbers and xattrs of a path's own entry."""
    if header.type == tarfile.REGTYPE:
        header.size = info.st_size
    elif header.type == tarfile.SYMTYPE:
        header.linkname = os.readlink(full)
    elif header.type in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        header.devmajor, header.devminor = os.major(info.st_rdev), os.minor(info.st_rdev)
    header.xattrs = xattrs(full)


@dataclass(slots=True)
class Header:
    """One tar header, encoded as Go's and Python's PAX writers encode it.

    Most entries fit a plain ustar header, built here directly (tarfile's encoder costs
    more than reading a small file); the rest (long or non-ASCII names, xattrs, numbers
    too big) go through :mod:`tarfile`, which adds the PAX records.
    """

    name: str
    type: bytes
    mode: int = 0
    uid: int = 0
    gid: int = 0
    size: int = 0
    mtime: int = 0
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)

    def encode(self) -> bytes:
        """The header block(s): a PAX record block first when one is needed."""
        return self._ustar() or self._pax()

    def _ustar(self) -> bytes | None:
        name = self.name + "/" if self.type == tarfile.DIRTYPE else self.name
        plain = (
            not self.xattrs
            and name.isascii()
            and self.linkname.isascii()
            and len(name) <= _NAME
            and len(self.linkname) <= _NAME
        )
        small = max(self.uid, self.gid, self.devmajor, self.devminor) < _MAX_ID
        if not (plain and small and max(self.size, self.mtime) < _MAX_SIZE and self.mtime >= 0):
            return None
        device = self.type in (tarfile.CHRTYPE, tarfile.BLKTYPE)
        block = _USTAR.pack(
            name.encode(),
            b"%07o\0" % self.mode,
            b"%07o\0" % self.uid,
            b"%07o\0" % self.gid,
            b"%011o\0" % self.size,
            b"%011o\0" % self.mtime,
            b" " * 8,  # the checksum is summed with its own field as spaces
            self.type,
            self.linkname.encode(),
            tarfile.POSIX_MAGIC,
            b"",
            b"",
            b"%07o\0" % self.devmajor if device else b"",
            b"%07o\0" % self.devminor if device else b"",
            b"",
        )
        return block[:148] + b"%06o\0" % sum(block) + block[155:]

    def _pax(self) -> bytes:
        info = tarfile.TarInfo(self.name)
        info.type, info.mode, info.uid, info.gid = self.type, self.mode, self.uid, self.gid
        info.size, info.mtime, info.linkname = self.size, self.mtime, self.linkname
        info.devmajor, info.devminor = self.devmajor, self.devminor
        info.uname = info.gname = ""
        info.pax_headers = {
            _PAX_XATTR + name: value.decode("utf-8", "surrogateescape")
            for name, value in self.xattrs.items()
        }
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
