"""The caller's half of a client-to-server byte stream (a ``sink`` endpoint).

The caller sends the request with its control inbox as reply; when the sink starts reading, the
server answers ``Flotilla-Ready`` with the data subject and the first grant of credit; the caller
sends chunks under credit;
``Flotilla-Final`` carries the sink's response or error. An :class:`Upload` may stay open across
many :meth:`Upload.send` calls (a writer session), and :meth:`Upload.sync` waits until the sink has
consumed everything sent so far.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final, Generic, TypeVar

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from flotilla.common import errdefs, headers
from flotilla.common.bus import stream
from flotilla.common.bus.methods import Sink

__all__ = ["FINAL", "READY", "Upload"]

READY: Final = "Flotilla-Ready"
FINAL: Final = "Flotilla-Final"

Resp = TypeVar("Resp")
T = TypeVar("T")


class Upload(Generic[Resp]):
    """One open upload. Use through ``Bus.open_upload``; not reusable once finished."""

    def __init__(self, nc: Client, method: Sink[Any, Resp], credit: stream.Credit) -> None:
        self._nc = nc
        self._method = method
        self.credit = credit
        self.inbox = nc.new_inbox()
        self.seq = 0
        self._data_subject: str | None = None
        self._sub: Subscription | None = None
        loop = asyncio.get_running_loop()
        self._ready: asyncio.Future[str] = loop.create_future()
        self._final: asyncio.Future[bytes] = loop.create_future()

    async def open(self, subject: str, payload: bytes, hdrs: dict[str, str]) -> None:
        """Send the request and wait until the sink reads (or answers without reading)."""
        self._sub = await self._nc.subscribe(self.inbox, cb=self._on_control)
        await self._nc.publish(subject, payload, reply=self.inbox, headers=hdrs)
        # Aborted: the sink answered without reading; finish() returns its answer.
        with contextlib.suppress(errdefs.Aborted):
            self._data_subject = await self._wait(self._ready)

    async def send(self, data: bytes) -> None:
        """Send ``data`` in chunks that fit the server's max_payload, under credit.

        Raises:
            Aborted: if the sink answered without reading (nothing of ``data`` was sent;
                :meth:`finish` returns its answer).
        """
        if self._data_subject is None:
            if self._final.done() and self._final.exception() is not None:
                raise self._final.exception()  # type: ignore[misc]
            raise errdefs.Aborted(f"sink answered before reading: {len(data)} bytes not sent")
        self.seq = await stream.send_chunk(
            self._nc, data, self._data_subject, self.credit, self.seq, self.inbox
        )

    async def sync(self) -> None:
        """Wait until the sink has consumed every chunk sent so far."""
        await self.credit.wait_until(self.seq)

    async def finish(self) -> Resp:
        """End the stream and return the sink's response (or raise its error)."""
        if self._data_subject is not None and not self._final.done():
            await stream.send_eos(self._nc, self._data_subject, self.seq, reply=self.inbox)
        return self._method.decode_response(await self._wait(self._final))

    async def fail(self, error: errdefs.ErrdefsError) -> None:
        """Abandon the stream, telling the sink why."""
        if self._data_subject is not None and not self._final.done():
            await stream.send_eos(self._nc, self._data_subject, self.seq, error, reply=self.inbox)

    @property
    def answered(self) -> bool:
        """Whether the sink has sent its final answer."""
        return self._final.done()

    async def close(self) -> None:
        """Stop listening for control messages."""
        if self._sub is not None:
            sub, self._sub = self._sub, None
            await sub.unsubscribe()

    async def _on_control(self, msg: Msg) -> None:
        hdrs = msg.headers or {}
        if READY in hdrs:
            self.credit.limit = max(self.credit.limit, int(hdrs.get(stream.GRANT, "0")))
            _resolve(self._ready, msg.reply)
        elif FINAL in hdrs or headers.STATUS in hdrs:
            self._on_final(msg.data, headers.error_from(hdrs))
        else:
            self.credit.on_control(msg)

    def _on_final(self, data: bytes, error: errdefs.ErrdefsError | None) -> None:
        if error is None:
            _resolve(self._final, data)
            self.credit.fail(errdefs.Aborted("sink finished before the stream ended"))
            _fail(self._ready, errdefs.Aborted("sink finished without reading"))
            return
        for future in (self._ready, self._final):
            _fail(future, error)
        self.credit.fail(error)

    async def _wait(self, future: asyncio.Future[T]) -> T:
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.credit.idle_timeout)
        except TimeoutError:
            raise errdefs.DeadlineExceeded("upload: sink did not answer") from None


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
        future.exception()  # mark retrieved: not every failed future is awaited
