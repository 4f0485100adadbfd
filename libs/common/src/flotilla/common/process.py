"""Child processes that neither outlive their parent nor take its terminal's signals."""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import shutil
import signal
from collections.abc import Sequence
from typing import Any, Final

__all__ = ["child_command", "child_options", "die_with_parent"]

_PR_SET_PDEATHSIG: Final = 1


def die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the parent dies (Linux ``prctl``)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@functools.cache
def _setpriv() -> str | None:
    return shutil.which("setpriv")


def child_command(argv: Sequence[str]) -> list[str]:
    """``argv``, run so that the child gets SIGTERM when its parent dies.

    util-linux's ``setpriv --pdeathsig`` sets the kernel's parent-death signal and execs
    ``argv`` (same pid), so no Python code runs in the child between fork and exec. A
    ``preexec_fn`` would force a full fork, which holds the parent's event loop 8-28 ms with a
    large heap; it is the fallback where setpriv is missing (see :func:`child_options`).
    """
    setpriv = _setpriv()
    if setpriv is None:
        return list(argv)
    _check_runnable(argv[0])  # as exec would: setpriv itself would start, then fail
    return [setpriv, "--pdeathsig", "TERM", "--", *argv]


def _check_runnable(program: str) -> None:
    """Raise what ``exec`` of ``program`` would: it is missing, or not executable."""
    path = shutil.which(program) if os.sep not in program else program
    if path is None or not os.path.isfile(path):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
    if not os.access(path, os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)


def child_options() -> dict[str, Any]:
    """Keyword arguments for ``create_subprocess_exec`` of a :func:`child_command`.

    A new session keeps a terminal's Ctrl-C away from the child: the parent decides the order
    in which its children stop (services first, then NATS), and the children die with it.
    """
    options: dict[str, Any] = {"start_new_session": True}
    if _setpriv() is None:
        options["preexec_fn"] = die_with_parent
    return options
