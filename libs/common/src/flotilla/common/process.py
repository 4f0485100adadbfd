"""Child processes that neither outlive their parent nor take its terminal's signals."""

from __future__ import annotations

import ctypes
import signal
from typing import Any, Final

__all__ = ["CHILD_OPTIONS", "die_with_parent"]

_PR_SET_PDEATHSIG: Final = 1


def die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the parent dies (Linux ``prctl``)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


# A new session keeps a terminal's Ctrl-C away from the child: the parent decides the order
# in which its children stop (services first, then NATS), and the children die with it.
CHILD_OPTIONS: Final[dict[str, Any]] = {"start_new_session": True, "preexec_fn": die_with_parent}
