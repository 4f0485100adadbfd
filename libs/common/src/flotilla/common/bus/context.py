"""What a handler knows about the request besides its body."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from flotilla.common import errdefs, headers
from flotilla.common.bus.stream import DEFAULT_IDLE_TIMEOUT

__all__ = ["Context"]


@dataclass(frozen=True, slots=True)
class Context:
    """Per-request facts read from the NATS headers.

    Attributes:
        headers: the raw request headers.
        deadline: ``time.monotonic()`` by which the caller stops waiting, or None.
        timeout: the caller's timeout as sent; for streams, how long either side may be silent.
    """

    headers: dict[str, str] = field(default_factory=dict)
    deadline: float | None = None
    timeout: float | None = None

    @classmethod
    def from_headers(cls, hdrs: dict[str, str] | None) -> Context:
        """Build the context of one request; a malformed timeout is InvalidArgument."""
        hdrs = hdrs or {}
        timeout = None
        if raw := hdrs.get(headers.TIMEOUT_MS):
            try:
                timeout = int(raw) / 1000
            except ValueError as err:
                raise errdefs.InvalidArgument(f"malformed {headers.TIMEOUT_MS}: {raw!r}") from err
        deadline = None if timeout is None else time.monotonic() + timeout
        return cls(headers=hdrs, deadline=deadline, timeout=timeout)

    @property
    def idle_timeout(self) -> float:
        """How long a stream may stay silent: the caller's timeout, else the default."""
        return self.timeout or DEFAULT_IDLE_TIMEOUT

    @property
    def namespace(self) -> str:
        """The namespace of the request; a request without one is InvalidArgument."""
        value = self.headers.get(headers.NAMESPACE, "")
        if not value:
            raise errdefs.InvalidArgument("namespace is required")
        return value

    def remaining(self) -> float | None:
        """Seconds left before the deadline (may be negative), or None without one."""
        return None if self.deadline is None else self.deadline - time.monotonic()
