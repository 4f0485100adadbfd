"""Bulk bytes over NATS: chunked, with credit the receiver grants, cancellable from either side.

One stream has a *data subject* (where the sender publishes chunks; the receiver listens) and an
*ack subject* (where the receiver publishes acknowledgements and grants; the sender listens).
Chunk ``n`` carries header ``Flotilla-Seq: n``. The receiver *grants* credit: the sender may
publish chunk ``n`` only once the receiver has granted up to ``n`` (``Flotilla-Grant``, first in
the request or the ready message, then with each acknowledgement). The end is a message with
``Flotilla-Eos`` (carrying error headers when the sender failed). Either side may give up: the
receiver publishes ``Flotilla-Cancel`` on the ack subject; both sides also give up after
``idle_timeout`` seconds without hearing from the other.

Credit comes from the receiving connection's :class:`Budget`: every stream toward one
connection draws on it, so however many streams a connection receives at once, the bytes in
flight toward it stay under nats-server's per-connection pending limit (past which the server
cuts a connection off as a slow consumer). A stream granted nothing yet is told where to ask by
a *hello* (``Flotilla-Seq: 0``) from the sender. Opening a stream (who owns which subject) is
the job of the client and server modules.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Final

from nats.aio.client import Client
from nats.aio.msg import Msg

from flotilla.common import errdefs, headers

__all__ = [
    "ACK",
    "CANCEL",
    "CONNECTION_BUDGET",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_WINDOW",
    "EOS",
    "GRANT",
    "SEQ",
    "Budget",
    "Credit",
    "chunk_size",
    "closable",
    "coalesce",
    "send_all",
    "send_chunk",
    "send_eos",
    "send_hello",
]

SEQ: Final = "Flotilla-Seq"
EOS: Final = "Flotilla-Eos"
ACK: Final = "Flotilla-Ack"
GRANT: Final = "Flotilla-Grant"
CANCEL: Final = "Flotilla-Cancel"

DEFAULT_WINDOW: Final = 16
"""The most chunks one stream may have granted and not yet consumed."""
CONNECTION_BUDGET: Final = 24
"""The most chunks (of at most 1 MiB) granted toward one connection at once, all streams
together: well under nats-server's 64 MiB per-connection pending limit. With 48, 512 streams
at once on one connection still saw it cut off as a slow consumer now and then (the server
counted more pending than our grants allow for: margin it needs); with 24, never."""
ACK_EVERY: Final = 4  # at most a quarter of the window goes unacknowledged while chunks queue
DEFAULT_IDLE_TIMEOUT: Final = 30.0
# Room left in each message for subject, reply and headers.
_HEADROOM: Final = 4096
_MAX_CHUNK: Final = 4 * 1024 * 1024


def chunk_size(nc: Client) -> int:
    """The largest chunk that fits the connected server's max_payload with headers."""
    return min(nc.max_payload - _HEADROOM, _MAX_CHUNK)


class Budget:
    """Chunks that may be in flight toward one connection, shared by all its incoming streams.

    Streams waiting for budget are served first come, first served.
    """

    def __init__(self, total: int = CONNECTION_BUDGET) -> None:
        self.total = total
        self.available = total
        self._waiters: collections.deque[tuple[int, asyncio.Future[int]]] = collections.deque()

    def try_take(self, want: int) -> int:
        """Take up to ``want`` chunks without waiting (none while others wait)."""
        if self._waiters:
            return 0
        got = min(want, self.available)
        self.available -= got
        return got

    async def take(self, want: int, timeout: float) -> int:
        """Take between 1 and ``want`` chunks, waiting in line for them up to ``timeout``."""
        if got := self.try_take(want):
            return got
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters.append((want, waiter))
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self.give(waiter.result())  # handed over just as we gave up: pass it on
            waiter.cancel()
            if isinstance(exc, TimeoutError):
                raise errdefs.Unavailable(
                    f"no stream credit for {timeout:.0f}s: the connection is saturated"
                ) from None
            raise

    def give(self, count: int) -> None:
        """Return ``count`` chunks and hand them to whoever waits."""
        self.available += count
        while self._waiters and self.available > 0:
            want, waiter = self._waiters.popleft()
            if waiter.done():
                continue
            got = min(want, self.available)
            self.available -= got
            waiter.set_result(got)


class Credit:
    """The sender's view of the receiver: how far it may send, and whether it left."""

    def __init__(self, limit: int = 0, idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> None:
        self.limit = limit
        self.idle_timeout = idle_timeout
        self.acked = 0
        self._error: errdefs.ErrdefsError | None = None
        self._changed = asyncio.Event()

    def on_control(self, msg: Msg) -> None:
        """Feed a message from the ack subject (an ack and grant, a cancel or an error)."""
        hdrs = msg.headers or {}
        if CANCEL in hdrs:
            self.fail(errdefs.Canceled(hdrs[CANCEL] or "receiver canceled the stream"))
        elif ACK in hdrs:
            self.acked = max(self.acked, int(hdrs[ACK]))
            self.limit = max(self.limit, int(hdrs.get(GRANT, "0")))
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
        """Wait until the receiver has consumed chunk ``seq`` (or left)."""
        await self._wait(lambda: self.acked >= seq)

    async def wait_for_room(self, seq: int) -> None:
        """Wait until the receiver has granted chunk ``seq``."""
        await self._wait(lambda: self.limit >= seq)

    async def _wait(self, done: Callable[[], bool]) -> None:
        while True:
            self.raise_if_failed()
            if done():
                return
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), self.idle_timeout)
            except TimeoutError:
                raise errdefs.Unavailable(
                    f"stream receiver silent for {self.idle_timeout:.0f}s"
                ) from None


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
        # nats-py's publish only queues; with credit to spare, a stream would otherwise keep
        # the loop from every other task until its window is spent.
        await asyncio.sleep(0)
    return seq


async def send_hello(nc: Client, data_subject: str, reply: str) -> None:
    """Tell a receiver that granted nothing yet where to send its grants."""
    await nc.publish(data_subject, b"", reply=reply, headers={SEQ: "0"})


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


async def coalesce(chunks: AsyncIterator[bytes], size: int) -> AsyncGenerator[bytes, None]:
    """``chunks`` joined into blocks of at least ``size`` bytes (the last may be shorter).

    A chunk of ``size`` or more passes through uncopied when nothing is pending. When
    ``chunks`` fails, what is pending is passed on before the error (a resumed download then
    starts after every byte that arrived).
    """
    pending = bytearray()
    async with contextlib.aclosing(closable(chunks)) as source:
        try:
            async for chunk in source:
                if not pending and len(chunk) >= size:
                    yield chunk
                    continue
                pending += chunk
                if len(pending) >= size:
                    yield bytes(pending)
                    pending.clear()
        except Exception:
            if pending:
                yield bytes(pending)
            raise
    if pending:
        yield bytes(pending)


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
