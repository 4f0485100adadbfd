"""What a handler knows about the request besides its body."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from flotilla.common import errdefs, headers
from flotilla.common.bus.stream import DEFAULT_IDLE_TIMEOUT

__all__ = ["Context"]


def _seconds(raw: str, name: str) -> float:
    try:
        return int(raw) / 1000
    except ValueError as err:
        raise errdefs.InvalidArgument(f"malformed {name}: {raw!r}") from err


@dataclass(frozen=True, slots=True)
class Context:
    """Per-request facts read from the NATS headers.

    Attributes:
        headers: the raw request headers.
        deadline: ``time.monotonic()`` by which the caller of a unary call stops waiting
            (``Flotilla-Timeout-Ms`` after arrival), or None.
        idle_timeout: how long either side of a stream may be silent before the other gives up
            (``Flotilla-Idle-Ms``); streams have no deadline, they last while bytes flow.
    """

    headers: dict[str, str] = field(default_factory=dict)
    deadline: float | None = None
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT

    @classmethod
    def from_headers(cls, hdrs: dict[str, str] | None) -> Context:
        """Build the context of one request; a malformed timeout is InvalidArgument."""
        hdrs = hdrs or {}
        deadline = idle = None
        if raw := hdrs.get(headers.TIMEOUT_MS):
            deadline = time.monotonic() + _seconds(raw, headers.TIMEOUT_MS)
        if raw := hdrs.get(headers.IDLE_MS):
            idle = _seconds(raw, headers.IDLE_MS)
        return cls(hdrs, deadline, idle or DEFAULT_IDLE_TIMEOUT)

    @property
    def namespace(self) -> str:
        """The namespace of the request; a request without one is InvalidArgument."""
        value = self.headers.get(headers.NAMESPACE, "")
        if not value:
            raise errdefs.InvalidArgument("namespace is required")
        return value

    @property
    def caller(self) -> str:
        """The calling connection's id (empty if it did not say)."""
        return self.headers.get(headers.CALLER, "")

    def remaining(self) -> float | None:
        """Seconds left before the deadline (may be negative), or None without one."""
        return None if self.deadline is None else self.deadline - time.monotonic()
