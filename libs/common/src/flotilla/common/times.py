"""Times as containerd keeps them: UTC, on disk as nanoseconds since the epoch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

__all__ = ["EPOCH", "from_ns", "to_ns"]

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = 1_000


def from_ns(nanoseconds: int) -> datetime:
    """A UTC datetime from nanoseconds since the epoch (to the microsecond)."""
    return EPOCH + timedelta(microseconds=nanoseconds // _MICROSECOND)


def to_ns(moment: datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime."""
    return (moment.astimezone(UTC) - EPOCH) // timedelta(microseconds=1) * _MICROSECOND
