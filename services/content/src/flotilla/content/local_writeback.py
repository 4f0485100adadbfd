"""Early writeback: start writing an ingest's bytes to disk while it still streams in.

Without it, the kernel keeps a whole blob dirty in memory until commit, whose ``fsync`` then
waits for all of it (about 0.3 s per GiB here) while the stream is long over. Asking for
writeback of each range once written (Linux ``sync_file_range(SYNC_FILE_RANGE_WRITE)``, which
starts the IO and does not wait for it) overlaps the disk with the network, leaves the final
``fsync`` little to do and keeps dirty memory small. It is only a hint: ``fsync`` still makes
the data durable, and where the call is missing this does nothing.

The call does not wait for the IO, but it may wait to queue it (a congested disk), so it runs
where the write that preceded it does: in a worker thread, never in the event loop.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable
from typing import Final

__all__ = ["WRITEBACK_EVERY", "Writeback"]

WRITEBACK_EVERY: Final = 8 << 20
_SYNC_FILE_RANGE_WRITE: Final = 2


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        call = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    call.restype = ctypes.c_int
    return call


_sync_file_range: Final = _load_sync_file_range() if os.uname().sysname == "Linux" else None


class Writeback:
    """Starts writeback of a file's bytes in steps of ``every`` as its end moves on.

    Blocking: call :meth:`written` from the worker thread that wrote the bytes.

    Args:
        fd: the file, open for writing.
        start: where the bytes not yet handed to writeback begin.
        every: how many new bytes to gather before starting their writeback.
    """

    def __init__(self, fd: int, start: int, every: int = WRITEBACK_EVERY) -> None:
        self._fd = fd
        self._start = start
        self._every = every

    def written(self, end: int) -> None:
        """The file now holds bytes up to ``end``; start writing back a full step of them."""
        if end < self._start:
            self._start = end  # truncated: nothing beyond ``end`` is left to write back
        elif end - self._start >= self._every:
            if _sync_file_range is not None:
                _sync_file_range(self._fd, self._start, end - self._start, _SYNC_FILE_RANGE_WRITE)
            self._start = end
