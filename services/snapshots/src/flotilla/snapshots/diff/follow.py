"""A layer read while its bytes still arrive in the content ingest (blocking; in a worker thread).

An image's layer is written into the node's content ingest and applied at the same time: the
applier opens the ingest's data file and reads it as it grows, up to the layer's size. At the
file's end a read waits, looking at the file's size every few milliseconds (1 ms at first, then
up to 20 ms), never spinning. A commit hard-links the file into the blobs, so the open file
reads on; an abort (or an ingest started afresh) takes the file's last name away, which its
link count shows: bytes missing then are :class:`~flotilla.common.errdefs.Aborted`.

The compressed bytes are not hashed here: the ingest's commit verifies the layer's digest, and
the unpacker checks the uncompressed stream's (the diffID).
"""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final

from flotilla.common import errdefs

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["DEFAULT_IDLE", "POLL_MAX", "POLL_MIN", "GrowingFile"]

DEFAULT_IDLE: Final = 60.0
"""Seconds a follower waits for an ingest to appear, and then for each of its next bytes."""

POLL_MIN: Final = 0.001
"""Seconds between the first looks at a file that has no new bytes."""
POLL_MAX: Final = 0.02
"""The longest pause between two looks: a writer's next bytes wait no longer than this."""


class GrowingFile(io.RawIOBase):
    """The first ``size`` bytes of a file that another process is still appending to.

    ``read`` and ``readinto`` return what the file holds past the position, waiting at its end
    until more arrives; they return nothing only once ``size`` bytes were read. :meth:`head`
    peeks at the first bytes. The object owns ``fd`` and closes it with :meth:`close`.

    Args:
        fd: the file, open for reading.
        size: how many bytes the layer has.
        label: what errors call it, e.g. ``layer sha256:... (ingest 'layer-sha256:...')``.
        idle: seconds a read waits without a new byte before DeadlineExceeded.
        stop: once set, a waiting read gives up with Canceled.
    """

    def __init__(
        self,
        fd: int,
        size: int,
        *,
        label: str,
        idle: float,
        stop: threading.Event | None = None,
    ) -> None:
        super().__init__()
        self._fd = fd
        self.size = size
        self.label = label
        self.idle = idle
        self._stop = stop if stop is not None else threading.Event()
        self._offset = 0

    @classmethod
    def open(
        cls,
        path: Path,
        file_id: str,
        size: int,
        *,
        label: str,
        idle: float,
        stop: threading.Event | None = None,
    ) -> GrowingFile | None:
        """The file at ``path`` if it is the one named ``file_id`` (``<device>:<inode>``).

        ``None`` when there is no file at ``path`` (committed or aborted meanwhile) or another
        one (the ingest started afresh): ask for the ingest's file again.
        """
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as err:
            raise errdefs.from_os_error(err, label) from err
        held = os.fstat(fd)
        if f"{held.st_dev}:{held.st_ino}" != file_id:
            os.close(fd)
            return None
        return cls(fd, size, label=label, idle=idle, stop=stop)

    @property
    def position(self) -> int:
        """How many bytes were read."""
        return self._offset

    def readable(self) -> bool:
        """Always: the file is for reading."""
        return True

    def fileno(self) -> int:
        """The file's descriptor."""
        self._check_open()
        return self._fd

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes (all the rest when negative); waits, as :meth:`readinto`."""
        return super().read(size) or b""  # None only from a non-blocking file, never here

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        """Read into ``buffer``; waits for bytes, and returns 0 only at ``size``.

        Raises:
            Aborted: the ingest lost its file with bytes still missing.
            DeadlineExceeded: no byte arrived for ``idle`` seconds.
            Canceled: ``stop`` was set while waiting.
        """
        self._check_open()
        view = memoryview(buffer).cast("B")
        want = min(len(view), self.size - self._offset)
        if want <= 0:
            return 0
        while True:
            try:
                got = os.preadv(self._fd, [view[:want]], self._offset)
            except OSError as err:
                raise errdefs.from_os_error(err, self.label) from err
            if got:
                self._offset += got
                return got
            self._wait(self._offset)

    def head(self, size: int, /) -> bytes:
        """The file's first ``size`` bytes (fewer only when the layer is shorter), waiting."""
        want = min(size, self.size)
        while True:
            try:
                data = os.pread(self._fd, want, 0)
            except OSError as err:
                raise errdefs.from_os_error(err, self.label) from err
            if len(data) == want:
                return data
            self._wait(len(data))

    def close(self) -> None:
        """Close the file; closing twice is harmless."""
        if not self.closed:
            os.close(self._fd)
        super().close()

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError(f"{self.label}: read from a closed file")

    def _wait(self, have: int) -> None:
        """Return once the file holds more than ``have`` bytes, or raise why it never will."""
        since, pause = time.monotonic(), POLL_MIN
        while True:
            try:
                held = os.fstat(self._fd)
            except OSError as err:
                raise errdefs.from_os_error(err, self.label) from err
            if held.st_size > have:
                return
            if held.st_nlink == 0:
                raise errdefs.Aborted(
                    f"{self.label}: the ingest was aborted with {self.size - have} of its "
                    f"{self.size} bytes missing"
                )
            if time.monotonic() - since >= self.idle:
                raise errdefs.DeadlineExceeded(
                    f"{self.label}: no new bytes for {self.idle:g} s "
                    f"({have} of {self.size} bytes arrived)"
                )
            if self._stop.wait(pause):
                raise errdefs.Canceled(f"{self.label}: stopped while waiting for bytes")
            pause = min(pause * 2, POLL_MAX)
