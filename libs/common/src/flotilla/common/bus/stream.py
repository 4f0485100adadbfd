"""Bulk bytes over NATS: chunked, credit-based flow control, cancellable from either side.

One stream has a *data subject* (where the sender publishes chunks; the receiver listens) and an
*ack subject* (where the receiver publishes cumulative acknowledgements; the sender listens).
Chunk ``n`` carries header ``Flotilla-Seq: n``; the sender may publish chunk ``n`` only while
``n - acked <= window``, so it never runs ahead of what the receiver consumed by more than
``window`` chunks. The end is a message with ``Flotilla-Eos`` (carrying error headers when the
sender failed). Either side may give up: the receiver publishes ``Flotilla-Cancel`` on the ack
subject; both sides also give up after ``idle_timeout`` seconds without hearing from the other.

Opening a stream (who owns which subject) is the job of the client and server modules.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Final

from nats.aio.client import Client
from nats.aio.msg import Msg

from flotilla.common import errdefs, headers

__all__ = [
    "ACK",
    "CANCEL",
    "EOS",
    "SEQ",
    "Credit",
    "Receiver",
    "chunk_size",
    "closable",
    "send_all",
    "send_chunk",
]

SEQ: Final = "Flotilla-Seq"
EOS: Final = "Flotilla-Eos"
ACK: Final = "Flotilla-Ack"
CANCEL: Final = "Flotilla-Cancel"

DEFAULT_WINDOW: Final = 16
ACK_EVERY: Final = 4  # at most a quarter of the window goes unacknowledged while chunks queue
DEFAULT_IDLE_TIMEOUT: Final = 30.0
# Room left in each message for subject, reply and headers.
_HEADROOM: Final = 4096
_MAX_CHUNK: Final = 4 * 1024 * 1024


def chunk_size(nc: Client) -> int:
    """The largest chunk that fits the connected server's max_payload with headers."""
    return min(nc.max_payload - _HEADROOM, _MAX_CHUNK)


class Credit:
    """The sender's view of the receiver: how far it may run ahead, and whether it left."""

    def __init__(self, window: int = DEFAULT_WINDOW, idle_timeout: float = DEFAULT_IDLE_TIMEOUT):
        self.window = window
        self.idle_timeout = idle_timeout
        self.acked = 0
        self._error: errdefs.ErrdefsError | None = None
        self._changed = asyncio.Event()

    def on_control(self, msg: Msg) -> None:
        """Feed a message from the ack subject (an ack, a cancel or an error)."""
        hdrs = msg.headers or {}
        if CANCEL in hdrs:
            self.fail(errdefs.Canceled(hdrs[CANCEL] or "receiver canceled the stream"))
        elif ACK in hdrs:
            self.acked = max(self.acked, int(hdrs[ACK]))
        elif (error := headers.error_from(hdrs)) is not None:
            self.fail(error)
        self._changed.set()

    def fail(self, error: errdefs.ErrdefsError) -> None:
        """Stop the sender with ``error`` at its next wait."""
        if self._error is None:
            self._error = error
        self._changed.set()

    def raise_if_failed(self) -> None:
        """Raise the error the receiver sent, if any."""
        if self._error is not None:
            raise self._error

    async def wait_until(self, seq: int) -> None:
        """Wait until the receiver has acknowledged ``seq`` (or left)."""
        while True:
            self.raise_if_failed()
            if self.acked >= seq:
                return
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), self.idle_timeout)
            except TimeoutError:
                raise errdefs.Unavailable(
                    f"stream receiver silent for {self.idle_timeout:.0f}s"
                ) from None

    async def wait_for_room(self, seq: int) -> None:
        """Wait until chunk ``seq`` may be sent without exceeding the window."""
        await self.wait_until(seq - self.window)


async def send_all(
    nc: Client,
    chunks: AsyncIterator[bytes],
    data_subject: str,
    credit: Credit,
    reply: str = "",
) -> int:
    """Publish every chunk of ``chunks`` to ``data_subject`` under ``credit``; return the count.

    Chunks larger than :func:`chunk_size` are split. The end-of-stream marker is *not* sent here:
    the caller sends it (with or without an error) via :func:`send_eos`.
    """
    seq = 0
    async with contextlib.aclosing(closable(chunks)) as closing:
        async for chunk in closing:
            seq = await send_chunk(nc, chunk, data_subject, credit, seq, reply)
    return seq


async def send_chunk(
    nc: Client, data: bytes, data_subject: str, credit: Credit, seq: int, reply: str = ""
) -> int:
    """Publish ``data`` after chunk ``seq``, split to fit max_payload, under credit.

    Returns:
        The sequence number of the last chunk published.
    """
    limit = chunk_size(nc)
    view = memoryview(data)
    for start in range(0, len(view), limit):
        seq += 1
        await credit.wait_for_room(seq)
        # A view, not a copy: publish copies the piece into its outgoing command anyway.
        piece = view[start : start + limit] if len(view) > limit else data
        await nc.publish(data_subject, piece, reply=reply, headers={SEQ: str(seq)})  # type: ignore[arg-type]
    return seq


async def closable(chunks: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    """``chunks``, such that closing this generator closes ``chunks`` too (when it can be).

    A producer's ``finally`` then runs as soon as the stream stops, not whenever the garbage
    collector gets to it.
    """
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


async def send_eos(
    nc: Client,
    data_subject: str,
    last_seq: int,
    error: errdefs.ErrdefsError | None = None,
    reply: str = "",
) -> None:
    """Tell the receiver the stream is over, after ``last_seq`` chunks (or failed)."""
    hdrs = {EOS: str(last_seq)}
    if error is not None:
        hdrs.update(headers.error_headers(error))
    await nc.publish(data_subject, b"", reply=reply, headers=hdrs)


class Receiver:
    """Yields the chunks of one stream in order, acknowledging each as it is consumed.

    Feed it messages from the data subject with :meth:`on_data` (from a subscription callback);
    iterate it to consume. The ack subject is learnt from the first message's reply unless given.
    """

    def __init__(
        self,
        nc: Client,
        ack_subject: str = "",
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    ) -> None:
        self._nc = nc
        self.ack_subject = ack_subject
        self._idle_timeout = idle_timeout
        # Bounded by the sender's window; unbounded here so a callback never blocks the reader.
        self._queue: asyncio.Queue[Msg] = asyncio.Queue()
        self._next_seq = 1
        self._acked = 0
        self.finished = False

    def on_data(self, msg: Msg) -> None:
        """Queue a message that arrived on the data subject."""
        if not self.ack_subject and msg.reply:
            self.ack_subject = msg.reply
        self._queue.put_nowait(msg)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while not self.finished:
            msg = await self._next()
            hdrs = msg.headers or {}
            if (error := headers.error_from(hdrs)) is not None:
                self.finished = True
                raise error
            if EOS in hdrs:
                self._check_complete(int(hdrs[EOS]))
                if self._acked < self._next_seq - 1:
                    await self._ack(self._next_seq - 1)
                self.finished = True
                return
            self._check_order(int(hdrs.get(SEQ, "0")))
            yield msg.data
            consumed = self._next_seq - 1
            # Acknowledge in batches while more chunks wait, and always once the queue runs dry,
            # so the sender learns of everything consumed as soon as it could matter to it.
            if self._queue.empty() or consumed - self._acked >= ACK_EVERY:
                await self._ack(consumed)

    async def _next(self) -> Msg:
        try:
            return await asyncio.wait_for(self._queue.get(), self._idle_timeout)
        except TimeoutError:
            raise errdefs.DeadlineExceeded(
                f"stream sender silent for {self._idle_timeout:.0f}s"
            ) from None

    def _check_order(self, seq: int) -> None:
        if seq != self._next_seq:
            raise errdefs.DataLoss(f"stream chunk {seq} arrived, expected {self._next_seq}")
        self._next_seq += 1

    def _check_complete(self, last_seq: int) -> None:
        if last_seq != self._next_seq - 1:
            raise errdefs.DataLoss(
                f"stream ended after {last_seq} chunks, got {self._next_seq - 1}"
            )

    async def _ack(self, seq: int) -> None:
        self._acked = seq
        if self.ack_subject:
            await self._nc.publish(self.ack_subject, b"", headers={ACK: str(seq)})

    async def cancel(self, reason: str = "receiver went away") -> None:
        """Tell the sender to stop (no-op once the stream finished)."""
        if not self.finished and self.ack_subject and not self._nc.is_closed:
            self.finished = True
            await self._nc.publish(self.ack_subject, b"", headers={CANCEL: reason})
