"""The receiving end of a stream (see :mod:`flotilla.common.bus.stream` for the protocol).

A :class:`Receiver` yields a stream's chunks in order and grants its sender credit from the
connection's :class:`~flotilla.common.bus.stream.Budget`: never more than its window unconsumed,
topped up as the consumer takes chunks. Its queue is bounded by that credit: a sender that runs
past it fails the stream (ResourceExhausted) instead of growing memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from nats.aio.client import Client
from nats.aio.msg import Msg

from flotilla.common import errdefs, headers
from flotilla.common.bus.stream import (
    ACK,
    ACK_EVERY,
    CANCEL,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_WINDOW,
    EOS,
    GRANT,
    SEQ,
    Budget,
)

__all__ = ["Receiver"]


class Receiver:
    """Yields the chunks of one stream in order, acknowledging and granting as they are consumed.

    Feed it messages from the data subject with :meth:`on_data` (from a subscription callback);
    iterate it to consume. The ack subject is learnt from the first message's reply unless given.
    """

    def __init__(
        self,
        nc: Client,
        budget: Budget,
        *,
        ack_subject: str = "",
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        self._nc = nc
        self._budget = budget
        self.ack_subject = ack_subject
        self._idle_timeout = idle_timeout
        self._window = window
        self._queue: asyncio.Queue[Msg | None] = asyncio.Queue()  # None: failed
        self._error: errdefs.ErrdefsError | None = None
        self._next_seq = 1
        self._acked = 0
        self.granted = 0
        self.finished = False  # the sender ended the stream, or was told to stop
        self._closed = False  # nothing more is taken in (consumer gone, or failed)

    @property
    def _consumed(self) -> int:
        return self._next_seq - 1

    @property
    def outstanding(self) -> int:
        """Chunks granted and not yet taken from the queue (each holds budget)."""
        return self.granted - self._consumed

    def grant_now(self) -> int:
        """Grant what the budget has, without waiting (for a request's header); the new limit."""
        self.granted += self._budget.try_take(self._window - self.outstanding)
        return self.granted

    async def grant_initial(self) -> int:
        """Wait in line for at least one chunk of credit (for a ready message); the new limit."""
        self.granted += await self._budget.take(self._window, self._idle_timeout)
        return self.granted

    def on_data(self, msg: Msg) -> None:
        """Queue a message that arrived on the data subject."""
        if self._closed:
            return
        if not self.ack_subject and msg.reply:
            self.ack_subject = msg.reply
        if self._queue.qsize() > self.outstanding:  # past its credit (one end marker aside)
            self.fail(errdefs.ResourceExhausted("stream sender ran past the credit granted to it"))
            return
        self._queue.put_nowait(msg)

    def fail(self, error: errdefs.ErrdefsError) -> None:
        """End the stream with ``error`` (raised to the consumer) and free its credit."""
        if self._closed:
            return
        self._error = error
        self._close()
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        try:
            while not self.finished:
                if self.outstanding <= 0 and self.ack_subject:
                    self.granted += await self._budget.take(self._window, self._idle_timeout)
                    await self._ack()
                msg = await self._next()
                hdrs = msg.headers or {}
                if (error := headers.error_from(hdrs)) is not None:
                    self.finished = True
                    raise error
                if EOS in hdrs:
                    await self._end(int(hdrs[EOS]))
                    return
                if hdrs.get(SEQ) == "0":
                    continue  # hello: the ack subject is known now
                self._take(int(hdrs.get(SEQ, "-1")))
                yield msg.data
                if self._queue.empty() or self._consumed - self._acked >= ACK_EVERY:
                    await self._ack()
        finally:
            self._close()

    async def _next(self) -> Msg:
        try:
            msg = await asyncio.wait_for(self._queue.get(), self._idle_timeout)
        except TimeoutError:
            raise errdefs.DeadlineExceeded(
                f"stream sender silent for {self._idle_timeout:.0f}s"
            ) from None
        if msg is None:
            assert self._error is not None
            raise self._error
        return msg

    def _take(self, seq: int) -> None:
        """Account for chunk ``seq`` leaving the queue: in order, its credit back to the budget."""
        if seq != self._next_seq:
            raise errdefs.DataLoss(f"stream chunk {seq} arrived, expected {self._next_seq}")
        self._next_seq += 1
        self._budget.give(1)
        self.granted += self._budget.try_take(self._window - self.outstanding)

    async def _end(self, last_seq: int) -> None:
        if last_seq != self._consumed:
            raise errdefs.DataLoss(f"stream ended after {last_seq} chunks, got {self._consumed}")
        if self._acked < self._consumed:
            await self._ack()
        self.finished = True

    async def _ack(self) -> None:
        self._acked = self._consumed
        if self.ack_subject:
            hdrs = {ACK: str(self._consumed), GRANT: str(self.granted)}
            await self._nc.publish(self.ack_subject, b"", headers=hdrs)

    def _close(self) -> None:
        self._closed = True
        if self.outstanding > 0:
            self._budget.give(self.outstanding)
            self.granted = self._consumed

    async def cancel(self, reason: str = "receiver went away") -> None:
        """Tell the sender to stop (no-op once the stream finished) and free the credit."""
        try:
            if not self.finished and self.ack_subject and not self._nc.is_closed:
                self.finished = True
                await self._nc.publish(self.ack_subject, b"", headers={CANCEL: reason})
        finally:
            self._close()
