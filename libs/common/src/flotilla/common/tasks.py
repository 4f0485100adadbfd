"""Task groups as callers want them: one error out, not a group of them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

__all__ = ["first_error"]


@contextlib.contextmanager
def first_error() -> Iterator[None]:
    """Raise a task group's first error alone (not a cancellation), as callers expect one."""
    try:
        yield
    except BaseExceptionGroup as group:
        raise _first(group) from None


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return _first(error)
        if not isinstance(error, asyncio.CancelledError):
            return error
    return group.exceptions[0]
