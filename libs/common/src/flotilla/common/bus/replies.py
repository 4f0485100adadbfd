"""Request/reply for unary calls: the replies of one connection arrive on one wildcard inbox.

The same protocol as nats-py's ``request()`` (a subscription to ``<inbox>.*``, a token per
request in the reply subject, a 503 status for "no responders"), without its per-request costs:
a fresh NUID plus random bytes from the OS for the token, a callback closure, and a loop timer
through ``asyncio.wait_for``. Tokens here count up under a prefix unique to the connection, and
deadlines share one :class:`~flotilla.common.bus.deadlines.Wheel`.
"""

from __future__ import annotations

import asyncio
import time

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from flotilla.common import headers
from flotilla.common.bus.deadlines import Expiring, Wheel

__all__ = ["Replies"]

_NO_RESPONDERS = "503"


class _Pending(Expiring):
    """One request waiting for its reply; expiring resolves it with None (no reply in time)."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[Msg | None]) -> None:
        self.future = future

    def expire(self) -> None:
        if not self.future.done():
            self.future.set_result(None)


class Replies:
    """Sends requests on one connection and hands each reply to the request that awaits it."""

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._prefix = ""  # "<inbox>." once subscribed
        self._pending: dict[str, _Pending] = {}
        self._sent = 0
        self._wheel = Wheel()
        self._subscribing: asyncio.Lock | None = None

    async def request(
        self, subject: str, payload: bytes, timeout: float, hdrs: dict[str, str] | None
    ) -> Msg:
        """Publish a request and return its reply.

        Raises:
            nats.errors.TimeoutError: no reply within ``timeout`` seconds.
            nats.errors.NoRespondersError: nobody listens on ``subject``.
        """
        prefix = self._prefix or await self._subscribe()
        self._sent += 1
        token = str(self._sent)
        pending = _Pending(asyncio.get_running_loop().create_future())
        self._pending[token] = pending
        self._wheel.add(pending, time.monotonic() + timeout)
        try:
            await self._nc.publish(subject, payload, reply=prefix + token, headers=hdrs)
            msg = await pending.future
        finally:
            del self._pending[token]
            self._wheel.remove(pending)
        if msg is None:
            raise nats.errors.TimeoutError
        if msg.headers and msg.headers.get(headers.STATUS) == _NO_RESPONDERS:
            raise nats.errors.NoRespondersError
        return msg

    async def _subscribe(self) -> str:
        if self._subscribing is None:
            self._subscribing = asyncio.Lock()
        async with self._subscribing:
            if not self._prefix:
                prefix = self._nc.new_inbox() + "."
                await self._nc.subscribe(prefix + "*", cb=self._on_reply)
                self._prefix = prefix
        return self._prefix

    async def _on_reply(self, msg: Msg) -> None:
        pending = self._pending.get(msg.subject[len(self._prefix) :])
        if pending is not None and not pending.future.done():
            pending.future.set_result(msg)
