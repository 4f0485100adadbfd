"""Ingest directories of :class:`~flotilla.content.local.LocalStore` (blocking; run in threads).

Each ingest lives in ``ingest/<sha256(namespace NUL ref)>/``:

- ``lock``: ``flock``-ed (exclusive, non-blocking) by the one writer of the ref; the kernel
  drops the lock when its holder dies, so a crashed process never leaves a ref locked.
- ``data``: the bytes written so far. Its size *is* the offset: a resumed writer re-hashes
  it, so nothing else has to be kept in step with it.
- ``meta.json``: namespace, ref, total, expected digest and start time, replaced atomically.

The data file is created before ``meta.json``; a directory without a readable ``meta.json``
is a torn start and is recreated by the next writer, or removed at start-up.

A writer on the same node may write into ``data`` itself and then report how far it got
(:meth:`Ingest.adopt`): the bytes then never cross the bus, and this side only hashes them.
Bytes past the last reported end are not part of this writer's ingest (commit cuts them off),
but after a crash the file's size is again the offset. Commit
hard-links ``data`` into ``blobs/`` and then removes the ingest; a data file with more than
one link is therefore a committed blob whose ingest a crash left behind: it is never written
to again, and counts as no ingest at all.

Disk errors leave as errdefs errors naming the file (a full disk is ``ResourceExhausted``), and
leave the ingest resumable: a failed append or adoption changes neither the offset nor the
hash, so the writer may go on once the disk has room again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import Executor
from pathlib import Path
from typing import Final

import msgspec

from flotilla.common import digests
from flotilla.common.digests import Digest, Hasher
from flotilla.common.errdefs import (
    ErrdefsError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
    Unavailable,
    from_os_error,
)
from flotilla.common.files import pwrite_all, write_atomic
from flotilla.common.times import from_ns
from flotilla.content.local_writeback import Writeback
from flotilla.content.store import Status

__all__ = [
    "Ingest",
    "IngestMeta",
    "ingest_dir",
    "ingest_file",
    "read_namespace",
    "read_status",
    "recover_ingests",
    "remove_ingest",
]

CHUNK: Final = 1 << 20
_LOCK: Final = "lock"
_DATA: Final = "data"
_META: Final = "meta.json"
_LOCK_ATTEMPTS: Final = 8


class IngestMeta(msgspec.Struct, frozen=True, kw_only=True):
    """What an ingest directory remembers besides its bytes."""

    namespace: str
    ref: str
    total: int = 0
    expected: str | None = None
    started_at: int = 0  # nanoseconds since the epoch


_decoder: Final = msgspec.json.Decoder(IngestMeta)


def ingest_dir(root: Path, namespace: str, ref: str) -> Path:
    """The directory of ``ref`` in ``namespace``; hashed to keep any ref a safe, short name."""
    key = hashlib.sha256(f"{namespace}\0{ref}".encode()).hexdigest()
    return root / key


@contextlib.contextmanager
def _disk_errors(where: Path) -> Iterator[None]:
    """Raise the OS errors of the block as errdefs errors naming ``where``."""
    try:
        yield
    except OSError as err:
        raise from_os_error(err, str(where)) from err


def _write_meta(directory: Path, meta: IngestMeta) -> None:
    # Not durable: after a crash an ingest without metadata is torn, and removed at start-up.
    write_atomic(directory / _META, msgspec.json.encode(meta), durable=False)


def _open_data(path: Path) -> int | None:
    """The ingest's data file opened for writing, if it is there and not a committed blob."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    if os.fstat(fd).st_nlink == 1:
        return fd
    os.close(fd)
    return None


def _resumed(stored: IngestMeta, wanted: IngestMeta) -> IngestMeta | None:
    """``stored`` updated with what ``wanted`` adds, or ``None`` if they contradict."""
    if (stored.namespace, stored.ref) != (wanted.namespace, wanted.ref):
        return None
    if stored.total and wanted.total and stored.total != wanted.total:
        return None
    if stored.expected and wanted.expected and stored.expected != wanted.expected:
        return None
    return msgspec.structs.replace(
        stored, total=stored.total or wanted.total, expected=stored.expected or wanted.expected
    )


def read_meta(directory: Path) -> IngestMeta | None:
    """The ingest's metadata, or ``None`` if it is missing or torn."""
    try:
        meta = _decoder.decode((directory / _META).read_bytes())
        if meta.expected is not None:
            digests.parse(meta.expected)
    except (OSError, msgspec.DecodeError, InvalidArgument):
        return None
    return meta


def read_status(directory: Path, namespace: str, ref: str | None = None) -> Status | None:
    """The status of the ingest in ``directory`` if it belongs to ``namespace`` (and ``ref``)."""
    meta = read_meta(directory)
    if meta is None or meta.namespace != namespace or ref not in (None, meta.ref):
        return None
    try:
        stat = os.stat(directory / _DATA)
    except FileNotFoundError:
        return None
    if stat.st_nlink > 1:
        return None  # a committed blob (see the module docstring)
    return _status(meta, stat.st_size, stat.st_mtime_ns)


def ingest_file(directory: Path, namespace: str, ref: str) -> tuple[Path, tuple[int, int]] | None:
    """The data file of the ingest in ``directory`` and its device and inode, for a reader.

    ``None`` when there is no such ingest of ``namespace`` (torn, committed, or another's).
    """
    meta = read_meta(directory)
    if meta is None or (meta.namespace, meta.ref) != (namespace, ref):
        return None
    path = directory / _DATA
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    if stat.st_nlink > 1:
        return None  # a committed blob (see the module docstring)
    return path, (stat.st_dev, stat.st_ino)


def read_namespace(directory: Path) -> str | None:
    """The namespace of the ingest in ``directory``, or ``None`` if it is torn or committed."""
    meta = read_meta(directory)
    if meta is None or read_status(directory, meta.namespace, meta.ref) is None:
        return None
    return meta.namespace


def _status(meta: IngestMeta, offset: int, updated_ns: int) -> Status:
    return Status(
        ref=meta.ref,
        offset=offset,
        total=meta.total,
        expected=meta.expected,
        started_at=from_ns(meta.started_at),
        updated_at=from_ns(updated_ns),
    )


def remove_ingest(directory: Path, ref: str) -> None:
    """Abort: remove the ingest, which no writer may hold.

    Raises:
        NotFound: if there is no such ingest.
        Unavailable: if a writer holds it.
    """
    try:
        if read_meta(directory) is None and not (directory / _DATA).exists():
            raise FileNotFoundError(directory)
        with _locked(directory, ref) as _:
            shutil.rmtree(directory)
    except FileNotFoundError:
        raise NotFound(f"ingest ref {ref!r}") from None


def recover_ingests(root: Path) -> None:
    """Remove the ingests no writer holds that are torn (no metadata or data) or committed."""
    for directory in root.iterdir():
        with contextlib.suppress(Unavailable, OSError), _locked(directory, "") as _:
            for leftover in directory.glob("*.tmp"):
                leftover.unlink()
            meta = read_meta(directory)
            if meta is None or read_status(directory, meta.namespace, meta.ref) is None:
                shutil.rmtree(directory)


@contextlib.contextmanager
def _locked(directory: Path, ref: str) -> Iterator[int]:
    fd = _lock(directory, ref, create=False)
    try:
        yield fd
    finally:
        os.close(fd)


def _lock(directory: Path, ref: str, *, create: bool) -> int:
    """Open and flock the ingest's lock file; retried if the ingest is removed meanwhile."""
    for _ in range(_LOCK_ATTEMPTS):
        if create:
            directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / _LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Unavailable(f"ref {ref} locked") from None
        if _is_current(fd, directory / _LOCK):
            return fd
        # An abort removed the directory between our open and our flock: start over.
        os.close(fd)
    raise Unavailable(f"ref {ref} locked: the ingest keeps being removed")


def _is_current(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _hash_range(hashed: Hasher, fd: int, offset: int, end: int | None = None) -> int:
    """Add the bytes of ``fd`` from ``offset`` to ``end`` (the end of file when ``None``).

    Returns:
        Where the hashed bytes end.
    """
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    while end is None or offset < end:
        want = CHUNK if end is None else min(CHUNK, end - offset)
        got = os.preadv(fd, [view[:want]], offset)
        if not got:
            break
        hashed.update(view[:got])
        offset += got
    return offset


def _hash_file(fd: int, algorithm: str, size: int | None = None) -> tuple[Hasher, int]:
    """Hash the first ``size`` bytes (all when ``None``) of ``fd``, a chunk at a time."""
    hashed = digests.hasher(algorithm)
    return hashed, _hash_range(hashed, fd, 0, size)


class Ingest:
    """An ingest whose lock this process holds, with its data file open for writing.

    Methods block on disk IO and hashing: call them from a worker thread, one at a time.
    """

    def __init__(self, directory: Path, lock_fd: int, data_fd: int, meta: IngestMeta) -> None:
        self.directory = directory
        self.meta = meta
        self._lock_fd = lock_fd
        self._data_fd = data_fd
        algorithm = digests.parse(meta.expected).algorithm if meta.expected else digests.CANONICAL
        self.hasher, self.offset = _hash_file(data_fd, algorithm)
        self._writeback = Writeback(data_fd, self.offset)
        self.updated_ns = os.fstat(data_fd).st_mtime_ns
        self.closed = False
        self._failed = False

    @classmethod
    def open(cls, directory: Path, meta: IngestMeta) -> Ingest:
        """Lock the ingest, then resume it, or start it afresh from ``meta``.

        A stored ingest is resumed unless it contradicts ``meta``: another non-zero total or
        another expected digest means other content, so (as containerd) it starts afresh.

        Raises:
            Unavailable: if another writer holds the ref.
            ResourceExhausted: if the disk is full (a fresh ingest leaves nothing behind).
        """
        with _disk_errors(directory):
            lock_fd = _lock(directory, meta.ref, create=True)
            try:
                stored = read_meta(directory)
                resumed = _resumed(stored, meta) if stored else None
                if resumed is None:
                    return cls._open(directory, lock_fd, meta, fresh=True)
                if resumed != stored:
                    _write_meta(directory, resumed)
                return cls._open(directory, lock_fd, resumed, fresh=False)
            except BaseException:
                os.close(lock_fd)
                raise

    @classmethod
    def _open(cls, directory: Path, lock_fd: int, meta: IngestMeta, *, fresh: bool) -> Ingest:
        data_fd = None if fresh else _open_data(directory / _DATA)
        try:
            if data_fd is None:
                # A new file, never a truncated one: the old may be a committed blob's inode.
                (directory / _DATA).unlink(missing_ok=True)
                flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
                data_fd = os.open(directory / _DATA, flags, 0o644)
                # Data before metadata: metadata without data would look resumable.
                if fresh:
                    _write_meta(directory, meta)
            return cls(directory, lock_fd, data_fd, meta)
        except BaseException:
            if data_fd is not None:
                os.close(data_fd)
            if fresh:  # e.g. no room for the metadata: a torn start would only take up space
                shutil.rmtree(directory, ignore_errors=True)
            raise

    @property
    def data_path(self) -> Path:
        """Where the bytes are."""
        return self.directory / _DATA

    def data_identity(self) -> tuple[int, int]:
        """The data file's device and inode, which no file at that path elsewhere shares."""
        held = os.fstat(self._data_fd)
        return held.st_dev, held.st_ino

    def status(self) -> Status:
        """The ingest's status as this writer knows it."""
        return _status(self.meta, self.offset, self.updated_ns)

    def append(self, data: bytes, hasher_pool: Executor | None = None) -> None:
        """Write all of ``data`` at the current offset and hash it.

        Args:
            data: the bytes.
            hasher_pool: where to hash while this thread writes (about halves the time of
                large appends); ``None`` hashes here, after writing.

        Raises:
            ResourceExhausted: if the disk is full; nothing of ``data`` is kept, and the same
                append may be tried again once there is room.
            FailedPrecondition: if an earlier failure left the file and the hash disagreeing,
                so only a reopened writer (which re-hashes) may go on.
        """
        self._check()
        # Hashed into a copy: a failed write must leave the hash as it was.
        hashed = self.hasher.copy() if hasher_pool else self.hasher
        hashing = hasher_pool.submit(hashed.update, data) if hasher_pool else None
        try:
            pwrite_all(self._data_fd, data, self.offset)
        except OSError as err:
            self._cut_back()
            raise self._os_error(err) from err
        except BaseException:
            self._failed = True
            raise
        finally:
            # Never return (not even with an error) while the hasher is still busy.
            if hashing is not None:
                hashing.result()
        if hashing is None:
            hashed.update(data)
        self.hasher = hashed
        self._moved_to(self.offset + len(data))

    def _cut_back(self) -> None:
        """Drop what a failed write left past the offset, so the file matches the hash again."""
        try:
            os.ftruncate(self._data_fd, self.offset)
        except OSError:
            self._failed = True

    def _moved_to(self, offset: int) -> None:
        self.offset = offset
        self.updated_ns = time.time_ns()
        self._writeback.written(offset)

    def _os_error(self, err: OSError) -> ErrdefsError:
        return from_os_error(err, str(self.data_path))

    def adopt(self, end: int) -> None:
        """Take in the bytes a same-node writer wrote into the data file, up to ``end``.

        Raises:
            OutOfRange: if ``end`` is before the offset.
            FailedPrecondition: if the file holds fewer than ``end`` bytes: the writer did not
                write what it reports (or wrote into another file); nothing is taken in.
        """
        self._check()
        if end < self.offset:
            raise OutOfRange(f"ref {self.meta.ref}: reported end {end} before offset {self.offset}")
        hashed = self.hasher.copy()  # a failed read must leave the hash as it was
        with _disk_errors(self.data_path):
            held = os.fstat(self._data_fd).st_size
            if held < end:
                raise FailedPrecondition(
                    f"ref {self.meta.ref}: writer reports {end} bytes, the ingest file holds {held}"
                )
            offset = _hash_range(hashed, self._data_fd, self.offset, end)
        self.hasher = hashed
        self._moved_to(offset)

    def truncate(self, size: int) -> None:
        """Cut the data back to ``size`` bytes (at most the offset) and re-hash what stays."""
        self._check()
        try:
            os.ftruncate(self._data_fd, size)
            self.hasher, offset = _hash_file(self._data_fd, self.hasher.name, size)
        except OSError as err:
            self._failed = True  # perhaps cut, not re-hashed
            raise self._os_error(err) from err
        self._moved_to(offset)

    def verify(self, size: int, expected: Digest | None) -> Digest:
        """Make the data durable and check it against ``size`` and ``expected``.

        Raises:
            FailedPrecondition: on a mismatch, naming the expected and actual values.
            ResourceExhausted: if the disk is full: the bytes may not all have reached it, so
                only a reopened writer (which re-hashes what the file holds) may go on.
        """
        self._check()
        try:
            if os.fstat(self._data_fd).st_size != self.offset:
                os.ftruncate(self._data_fd, self.offset)  # bytes a same-node writer never reported
            os.fsync(self._data_fd)
        except OSError as err:
            self._failed = True  # after a failed fsync, the file may have lost written pages
            raise self._os_error(err) from err
        if size and size != self.offset:
            raise FailedPrecondition(
                f"commit size mismatch for ref {self.meta.ref}: "
                f"expected {size}, actual {self.offset}"
            )
        hashed = self.hasher
        if expected is not None and expected.algorithm != hashed.name:
            # Opened without knowing the algorithm: hash again with the one asked for.
            hashed, _ = _hash_file(self._data_fd, expected.algorithm)
        actual = Digest.of(hashed)
        if expected is not None and actual != expected:
            raise FailedPrecondition(
                f"commit digest mismatch for ref {self.meta.ref}: "
                f"expected {expected}, actual {actual}"
            )
        return actual

    def _check(self) -> None:
        if self._failed:
            raise FailedPrecondition(
                f"ref {self.meta.ref}: an earlier write failed and its bytes are in doubt; "
                "close the writer and open it again to resume"
            )

    def close(self, *, sync: bool = True) -> None:
        """Close the data file (after an fsync, so a resume finds the bytes) and unlock."""
        if self.closed:
            return
        self.closed = True
        try:
            if sync:
                with _disk_errors(self.data_path):
                    os.fsync(self._data_fd)
        finally:
            os.close(self._data_fd)
            os.close(self._lock_fd)

    def remove(self) -> None:
        """Delete the ingest directory while still holding its lock, then unlock."""
        try:
            shutil.rmtree(self.directory, ignore_errors=True)
        finally:
            self.close(sync=False)
