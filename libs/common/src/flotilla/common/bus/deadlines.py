"""Deadlines of requests in flight, on both sides of the bus: one loop timer for all of them.

A loop timer per request (``asyncio.timeout``, ``asyncio.wait_for``) costs more than
everything else either side does for a small request. Here, requests are grouped by the tick
(:data:`TICK`) their deadline falls in, and one timer, armed for the earliest group, expires
whatever is still waiting when its group is due: at most a tick after the deadline.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Final

__all__ = ["TICK", "Expiring", "TaskDeadline", "Wheel"]

TICK: Final = 0.01
"""Seconds: how late after its deadline a request may expire at most (plus the loop's)."""


class Expiring:
    """Something with a deadline, kept in a :class:`Wheel` until it is removed or expires.

    ``slot`` is the wheel's: :meth:`Wheel.add` sets it.
    """

    __slots__ = ("slot",)
    slot: int

    def expire(self) -> None:
        """The deadline passed while this was still in the wheel."""
        raise NotImplementedError


class Wheel:
    """The deadlines of one connection's or one host's requests, and the timer for them all."""

    def __init__(self) -> None:
        self._slots: dict[int, set[Expiring]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._armed = 0  # the slot the timer is armed for; never later than the earliest slot

    def add(self, entry: Expiring, deadline: float) -> None:
        """Expire ``entry`` at ``time.monotonic()`` ``deadline`` unless it is removed before."""
        loop = asyncio.get_running_loop()
        slot = entry.slot = math.ceil((loop.time() + (deadline - time.monotonic())) / TICK)
        entries = self._slots.get(slot)
        if entries is None:
            entries = self._slots[slot] = set()
            if self._timer is None or slot < self._armed:
                self._arm(loop, slot)
        entries.add(entry)

    def remove(self, entry: Expiring) -> None:
        """Forget ``entry`` (no-op once it expired)."""
        entries = self._slots.get(entry.slot)
        if entries is not None:
            entries.discard(entry)
            if not entries:
                del self._slots[entry.slot]

    def close(self) -> None:
        """Stop the timer once nothing waits any more (it would only find nothing to expire)."""
        if not self._slots and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, loop: asyncio.AbstractEventLoop, slot: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed = slot
        self._timer = loop.call_at(slot * TICK, self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        # The armed slot is due even if the loop's clock (whole milliseconds) is a hair short.
        due = max(self._armed, math.floor(loop.time() / TICK))
        for slot in [slot for slot in self._slots if slot <= due]:
            for entry in self._slots.pop(slot):
                entry.expire()
        if self._slots:
            self._arm(loop, min(self._slots))


class TaskDeadline(Expiring):
    """A ``with`` block that the current task runs until a deadline, as ``asyncio.timeout``.

    On expiry the task is cancelled, and the block ends in ``TimeoutError`` unless someone
    else cancelled the task too. The caller checks first that the deadline has not passed.
    """

    __slots__ = ("_deadline", "_task", "_wheel", "expired")

    def __init__(self, wheel: Wheel, deadline: float) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._wheel = wheel
        self._deadline = deadline
        self.expired = False

    def expire(self) -> None:
        """Cancel the task."""
        self.expired = True
        self._task.cancel()

    def __enter__(self) -> None:
        self._wheel.add(self, self._deadline)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        self._wheel.remove(self)
        if self.expired and self._task.uncancel() == 0 and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc  # ours alone: nobody else asked for the cancellation
