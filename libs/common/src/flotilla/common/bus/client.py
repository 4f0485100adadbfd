"""The caller's side of the bus: typed calls, downloads and uploads over one NATS connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeVar

import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from opentelemetry import trace

from flotilla.common import errdefs, headers
from flotilla.common.bus import stream
from flotilla.common.bus.methods import Method, encode
from flotilla.common.bus.upload import Upload
from flotilla.common.telemetry import tracing

__all__ = ["DEFAULT_TIMEOUT", "Bus", "connect"]

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")
T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0
_NO_RESPONDER_RETRIES = (0.005, 0.02, 0.05)


class Bus:
    """A NATS connection that speaks Flotilla's request, stream and error conventions.

    Attributes:
        nc: the underlying nats-py client (for adapters that need JetStream or raw subjects).
        node: this process's node id, used to address node-local methods by default.
    """

    def __init__(self, nc: Client, node: str, closing: asyncio.Event | None = None) -> None:
        self.nc = nc
        self.node = node
        self._closing = closing or asyncio.Event()

    def _headers(self, namespace: str | None, timeout: float | None) -> dict[str, str]:
        hdrs: dict[str, str] = {}
        if namespace:
            hdrs[headers.NAMESPACE] = namespace
        if timeout is not None:
            hdrs[headers.TIMEOUT_MS] = str(max(1, int(timeout * 1000)))
        return tracing.inject(hdrs)

    def _subject(self, method: Method[Any, Any], node: str | None) -> str:
        return method.subject(node or self.node) if method.node_local else method.subject()

    async def call(
        self,
        method: Method[Req, Resp],
        request: Req,
        *,
        namespace: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        node: str | None = None,
    ) -> Resp:
        """Call a unary method and return its decoded response, or raise its errdefs error."""
        subject = self._subject(method, node)
        with tracing.span(method.span_name, trace.SpanKind.CLIENT):
            hdrs = self._headers(namespace, timeout)
            msg = await self._request(subject, encode(request), hdrs, timeout)
            if (error := headers.error_from(msg.headers)) is not None:
                raise error
            return method.decode_response(msg.data)

    async def _request(
        self, subject: str, payload: bytes, hdrs: dict[str, str], timeout: float
    ) -> Msg:
        # "No responders" can be transient: a service restarting, or a subscription the
        # server has only just made visible to this connection. Retry briefly before giving up.
        for delay in (*_NO_RESPONDER_RETRIES, None):
            try:
                return await self.nc.request(subject, payload, timeout=timeout, headers=hdrs)
            except nats.errors.NoRespondersError:
                if delay is None:
                    raise errdefs.Unavailable(f"no service answers {subject}") from None
                await asyncio.sleep(delay)
            except nats.errors.TimeoutError:
                raise errdefs.DeadlineExceeded(f"{subject}: no reply within {timeout:g}s") from None
            except (nats.errors.ConnectionClosedError, nats.errors.OutboundBufferLimitError) as err:
                raise errdefs.Unavailable(f"{subject}: bus connection unavailable") from err
        raise AssertionError("unreachable")

    @contextlib.asynccontextmanager
    async def download(
        self,
        method: Method[Req, Any],
        request: Req,
        *,
        namespace: str | None = None,
        node: str | None = None,
        idle_timeout: float = stream.DEFAULT_IDLE_TIMEOUT,
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """Open a server-to-client byte stream; iterate what it yields to receive chunks.

        Leaving the ``async with`` early cancels the stream at the sender.
        """
        receiver = stream.Receiver(self.nc, idle_timeout=idle_timeout)
        inbox = self.nc.new_inbox()

        async def on_data(msg: Msg) -> None:
            receiver.on_data(msg)

        sub = await self.nc.subscribe(inbox, cb=on_data)
        try:
            hdrs = self._headers(namespace, idle_timeout)
            subject = self._subject(method, node)
            await self.nc.publish(subject, encode(request), reply=inbox, headers=hdrs)
            yield aiter(receiver)
        finally:
            with contextlib.suppress(Exception):
                await receiver.cancel()
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    @contextlib.asynccontextmanager
    async def open_upload(
        self,
        method: Method[Req, Resp],
        request: Req,
        *,
        namespace: str | None = None,
        node: str | None = None,
        idle_timeout: float = stream.DEFAULT_IDLE_TIMEOUT,
        window: int = stream.DEFAULT_WINDOW,
    ) -> AsyncIterator[Upload[Resp]]:
        """Open a client-to-server byte stream to a sink method; ``finish()`` it to get the answer.

        Leaving the ``async with`` without finishing abandons the stream (the sink sees Canceled).
        """
        upload = Upload(self.nc, method, stream.Credit(window, idle_timeout))
        try:
            hdrs = self._headers(namespace, idle_timeout)
            await upload.open(self._subject(method, node), encode(request), hdrs)
            yield upload
        finally:
            with contextlib.suppress(Exception):
                if not upload.answered:
                    await upload.fail(errdefs.Canceled("caller abandoned the upload"))
            with contextlib.suppress(Exception):
                await upload.close()

    async def upload(
        self,
        method: Method[Req, Resp],
        request: Req,
        chunks: AsyncIterator[bytes],
        *,
        namespace: str | None = None,
        node: str | None = None,
        idle_timeout: float = stream.DEFAULT_IDLE_TIMEOUT,
        window: int = stream.DEFAULT_WINDOW,
    ) -> Resp:
        """Send all of ``chunks`` to a sink method and return its final response."""
        async with self.open_upload(
            method, request, namespace=namespace, node=node,
            idle_timeout=idle_timeout, window=window,
        ) as upload, contextlib.aclosing(stream.closable(chunks)) as source:  # fmt: skip
            try:
                async for chunk in source:
                    await upload.send(chunk)
            except errdefs.Aborted:
                pass  # the sink answered early: finish() returns its answer
            except errdefs.ErrdefsError as error:
                if not upload.answered:
                    await upload.fail(error)
                    raise
            return await upload.finish()

    async def close(self) -> None:
        """Drain the connection: finish in-flight publishes and subscriptions, then close."""
        self._closing.set()
        if not self.nc.is_closed:
            with contextlib.suppress(Exception):
                await self.nc.drain()


async def connect(
    servers: Sequence[str],
    *,
    node: str,
    name: str,
    credentials: str | None = None,
    connect_timeout: float = 30.0,
) -> Bus:
    """Connect to NATS, retrying (nats-py backs off with jitter) until ``connect_timeout``.

    Once connected, nats-py reconnects forever and buffers publishes meanwhile.
    """
    closing = asyncio.Event()
    connected = asyncio.Event()
    try:
        async with asyncio.timeout(connect_timeout):
            nc = await nats.connect(**_options(servers, name, credentials, closing, connected))
    except (TimeoutError, OSError, nats.errors.NoServersError) as err:
        closing.set()
        raise errdefs.Unavailable(f"cannot reach NATS at {', '.join(servers)}") from err
    connected.set()
    return Bus(nc, node, closing)


def _options(
    servers: Sequence[str],
    name: str,
    credentials: str | None,
    closing: asyncio.Event,
    connected: asyncio.Event,
) -> dict[str, Any]:
    async def on_error(err: Exception) -> None:
        # Before the first connection, failures are the connect loop's to report.
        if connected.is_set() and not closing.is_set():
            log.warning("nats error", extra={"error": str(err) or type(err).__name__})

    async def on_disconnect() -> None:
        if not closing.is_set():
            log.warning("nats disconnected")

    async def on_reconnect() -> None:
        log.info("nats reconnected")

    options: dict[str, Any] = {
        "servers": list(servers),
        "name": name,
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.25,
        "connect_timeout": 2,
        "pending_size": 64 * 1024 * 1024,
        "drain_timeout": 5,
        "error_cb": on_error,
        "disconnected_cb": on_disconnect,
        "reconnected_cb": on_reconnect,
    }
    if credentials:
        options["user_credentials"] = credentials
    return options
