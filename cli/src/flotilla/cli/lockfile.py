"""One ``flotilla up`` per state directory: an ``flock``-ed file holding the running stack's pid.

The kernel drops an ``flock`` when its holder dies, so a crashed stack never leaves a stale lock;
the pid inside is only there to name the holder. The file itself is left in place: removing it
on exit would let a second stack lock a fresh file while a third still waits on the old one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from flotilla.common import errdefs

__all__ = ["LOCK_NAME", "hold_stack_lock"]

LOCK_NAME: Final = "flotilla.lock"
_PID_READS: Final = 20  # a holder writes its pid right after locking: wait up to ~1 s for it


@contextlib.contextmanager
def hold_stack_lock(state_dir: Path) -> Iterator[Path]:
    """Hold ``<state_dir>/flotilla.lock`` for the ``with`` block, or refuse at once.

    Raises:
        AlreadyExists: another live process holds it (the message names its pid).
        FailedPrecondition: the state directory or the file cannot be created.
    """
    path = state_dir / LOCK_NAME
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as err:
        raise errdefs.FailedPrecondition(f"state directory {state_dir}: {err.strerror}") from err
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            raise errdefs.AlreadyExists(
                f"flotilla up already runs on {state_dir} (pid {holder}, lock {path})"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the only descriptor releases the flock


def _holder(fd: int) -> str:
    for _ in range(_PID_READS):
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if text:
            return text
        time.sleep(0.05)
    return "unknown"
