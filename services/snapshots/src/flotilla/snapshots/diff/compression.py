"""A layer blob's uncompressed tar stream: gzip, zstd or plain, by media type (blocking).

The media type decides the decompressor and the blob's first bytes must agree with it: a
gzip layer that is not gzip, or a "plain" tar that is compressed, is refused rather than
guessed at. Gzip is inflated by ``isal``; it and zstd release the GIL while they work, so a
reader in a thread of its own (the unpacker's) inflates beside the threads that write files.

Every decompressor failure (corrupt data, a truncated stream, a bad checksum) surfaces from
``read`` as an :class:`~flotilla.common.errdefs.InvalidArgument` naming the layer; reading
never blocks on a stream that ended early. The blob is a committed file (a path), or an open
:class:`BlobFile` such as :class:`~flotilla.snapshots.diff.follow.GrowingFile`, whose bytes
may still be arriving: its reads wait for them, and raise its own errors.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Final, Protocol, cast

import zstandard
from isal import igzip, isal_zlib

from flotilla.common import errdefs
from flotilla.snapshots.diff.differ import (
    DOCKER_LAYER_GZIP,
    DOCKER_LAYER_TAR,
    LAYER_GZIP,
    LAYER_TAR,
    LAYER_ZSTD,
)

__all__ = [
    "CHUNK",
    "GZIP",
    "PLAIN",
    "ZSTD",
    "BlobFile",
    "Readable",
    "compression_of",
    "open_tar_stream",
]

CHUNK: Final = 1 << 20
"""How much one read asks of the file and of the decompressor."""

GZIP: Final = "gzip"
ZSTD: Final = "zstd"
PLAIN: Final = "plain"

_BY_MEDIA_TYPE: Final = {
    LAYER_TAR: PLAIN,
    DOCKER_LAYER_TAR: PLAIN,
    LAYER_GZIP: GZIP,
    DOCKER_LAYER_GZIP: GZIP,
    LAYER_ZSTD: ZSTD,
}
_GZIP_MAGIC: Final = b"\x1f\x8b"
_ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
_DICT_ID_BYTES: Final = (0, 1, 2, 4)
_CONTENT_SIZE_BYTES: Final = (0, 2, 4, 8)  # flag 0: one byte in a single-segment frame
# Errors the decompressors raise for bad input (BadGzipFile is an OSError: test it first).
# isal's stub types its error class as an instance, hence the cast.
_CORRUPT: Final = (
    EOFError,
    gzip.BadGzipFile,
    cast("type[Exception]", isal_zlib.error),
    zstandard.ZstdError,
)


class Readable(Protocol):
    """A stream of bytes: ``read`` returns up to ``size`` bytes, ``b""`` at the end."""

    def read(self, size: int, /) -> bytes:
        """The next bytes."""
        ...


class BlobFile(Protocol):
    """An open layer blob: a raw binary file that also tells its first bytes and its length.

    Its reads (``read``, ``readinto``) may wait for bytes still arriving.
    """

    @property
    def size(self) -> int:
        """The blob's length in bytes."""
        ...

    def head(self, size: int, /) -> bytes:
        """The blob's first ``size`` bytes (fewer only when it is shorter)."""
        ...

    def fileno(self) -> int:
        """The file's descriptor."""
        ...

    def read(self, size: int = -1, /) -> bytes:
        """The next bytes; ``b""`` at the blob's end."""
        ...


class _WholeFile(io.FileIO):
    """A committed blob's file: all of its bytes are there."""

    @property
    def size(self) -> int:
        return os.fstat(self.fileno()).st_size

    def head(self, size: int, /) -> bytes:
        return os.pread(self.fileno(), size, 0)


def compression_of(media_type: str) -> str:
    """:data:`GZIP`, :data:`ZSTD` or :data:`PLAIN` for a layer media type.

    Raises:
        InvalidArgument: the media type is not a layer's.
    """
    kind = _BY_MEDIA_TYPE.get(media_type)
    if kind is None:
        raise errdefs.InvalidArgument(f"unsupported layer media type {media_type!r}")
    return kind


@contextlib.contextmanager
def open_tar_stream(
    blob: Path | BlobFile, media_type: str, *, name: str = ""
) -> Iterator[Readable]:
    """The uncompressed tar bytes of the layer ``blob``, for the ``with`` block.

    Args:
        blob: the blob's file (opened and closed here), or an open :class:`BlobFile`, which
            stays open: its owner closes it.
        media_type: the layer's media type (OCI or Docker; tar, gzip or zstd).
        name: what errors call the layer (e.g. its digest); the path when empty.

    Raises:
        InvalidArgument: an unknown media type, or bytes that are not what it says.
        NotFound: no file at ``blob``.
    """
    kind = compression_of(media_type)
    label = name or str(blob)
    with contextlib.ExitStack() as stack:
        file = stack.enter_context(_open(blob, label)) if isinstance(blob, Path) else blob
        _check_magic(file.head(4), kind, label)
        yield _Checked(stack.enter_context(_decompressor(file, kind, label)), label)


def _open(path: Path, label: str) -> _WholeFile:
    try:
        return _WholeFile(path, "rb")
    except OSError as err:
        raise errdefs.from_os_error(err, f"layer {label}") from err


def _check_magic(head: bytes, kind: str, label: str) -> None:
    gzip_bytes = head.startswith(_GZIP_MAGIC)
    zstd_bytes = head == _ZSTD_MAGIC or _skippable(head)
    if kind == GZIP and not gzip_bytes:
        raise errdefs.InvalidArgument(f"layer {label}: not gzip data (bad magic)")
    if kind == ZSTD and not zstd_bytes:
        raise errdefs.InvalidArgument(f"layer {label}: not zstd data (bad magic)")
    if kind == PLAIN and (gzip_bytes or zstd_bytes):
        raise errdefs.InvalidArgument(f"layer {label}: compressed data in an uncompressed layer")


def _skippable(head: bytes) -> bool:
    """A zstd skippable frame (magic 0x184D2A50..5F), allowed before the first frame."""
    return len(head) == 4 and head[1:] == b"\x2a\x4d\x18" and head[0] & 0xF0 == 0x50


@contextlib.contextmanager
def _decompressor(file: BlobFile, kind: str, label: str) -> Iterator[Readable]:
    if kind == PLAIN:
        yield file
    elif kind == GZIP:
        with igzip.open(file, "rb") as reader:  # type: ignore[no-untyped-call]
            yield reader
    else:
        # A raw binary file is all the reader uses of it (``read``), whatever its class.
        source = cast("BinaryIO", file)
        with zstandard.ZstdDecompressor().stream_reader(
            source, read_size=CHUNK, read_across_frames=True, closefd=False
        ) as reader:
            yield _WholeZstd(reader, file, label)


class _WholeZstd:
    """A zstd stream reader that refuses a blob whose last frame is cut short.

    The ``zstandard`` stream reader ends quietly at the end of its input, even in the middle
    of a frame. At that end the frame and block headers are walked (a few bytes per block,
    as many blocks as were just decompressed), which tells a truncated blob from a whole one.
    """

    def __init__(self, reader: Readable, file: BlobFile, label: str) -> None:
        self._reader = reader
        self._file = file
        self._label = label
        self._whole = False

    def read(self, size: int, /) -> bytes:
        data = self._reader.read(size)
        if not data and not self._whole:
            if not _whole_zstd_frames(self._file.fileno(), self._file.size):
                raise errdefs.InvalidArgument(f"layer {self._label}: truncated zstd stream")
            self._whole = True
        return data


def _whole_zstd_frames(fd: int, size: int) -> bool:
    """Whether the file is a sequence of complete zstd (or skippable) frames."""
    pos = 0
    while pos < size:
        head = os.pread(fd, 14, pos)
        if len(head) >= 8 and _skippable(head[:4]):
            pos += 8 + int.from_bytes(head[4:8], "little")
            continue
        if len(head) < 6 or head[:4] != _ZSTD_MAGIC:
            return False
        descriptor = head[4]
        single_segment = descriptor >> 5 & 1
        pos += 5 + (1 - single_segment) + _DICT_ID_BYTES[descriptor & 3]
        pos += _CONTENT_SIZE_BYTES[descriptor >> 6] or single_segment
        last = 0
        while not last:
            block = os.pread(fd, 3, pos)
            if len(block) < 3:
                return False
            header = int.from_bytes(block, "little")
            last, block_type = header & 1, header >> 1 & 3
            pos += 3 + (1 if block_type == 1 else header >> 3)  # an RLE block is one byte
        pos += 4 * (descriptor >> 2 & 1)  # the content checksum
    return pos == size


class _Checked:
    """A decompressed stream whose decompressor errors are InvalidArgument naming the layer."""

    def __init__(self, stream: Readable, label: str) -> None:
        self._stream = stream
        self._label = label

    def read(self, size: int, /) -> bytes:
        try:
            return self._stream.read(size)
        except _CORRUPT as err:
            raise errdefs.InvalidArgument(f"layer {self._label}: corrupt data ({err})") from err
        except OSError as err:
            raise errdefs.from_os_error(err, f"layer {self._label}") from err
