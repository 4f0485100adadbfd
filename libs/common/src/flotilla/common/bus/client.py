"""The caller's side of the bus: typed calls, downloads and uploads over one NATS connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any, Protocol, TypeVar

import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.nuid import NUID
from opentelemetry import trace

from flotilla.common import errdefs, headers
from flotilla.common.bus import stream
from flotilla.common.bus.methods import Items, Method, Sink, Source, Unary, encode
from flotilla.common.bus.receiver import Receiver
from flotilla.common.bus.replies import Replies
from flotilla.common.bus.upload import Upload
from flotilla.common.telemetry import tracing

__all__ = ["DEFAULT_TIMEOUT", "Bus", "connect"]

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Item = TypeVar("Item")

DEFAULT_TIMEOUT = 10.0
_MAX_CACHED_HEADERS = 256


class Failable(Protocol):
    """An open stream end that the connection's loss must end (a receiver or a sender's credit)."""

    def fail(self, error: errdefs.ErrdefsError) -> None:
        """End the stream with ``error``."""
        ...


class Bus:
    """A NATS connection that speaks Flotilla's request, stream and error conventions.

    Every stream toward this connection draws credit from one :class:`~stream.Budget`, so
    however many run at once, nats-server never sees this connection fall behind. When the
    connection is lost, every open stream fails at once with Unavailable (bytes in flight are
    gone; every stream is resumable) and new calls work again as soon as it is back.

    Attributes:
        nc: the underlying nats-py client (for adapters that need JetStream or raw subjects).
        node: this process's node id, used to address node-local methods by default.
        id: this connection's id, sent with every request (``Flotilla-Caller``).
        budget: the credit shared by every stream toward this connection.
    """

    def __init__(self, nc: Client, node: str, closing: asyncio.Event | None = None) -> None:
        self.nc = nc
        self.node = node
        self.id = NUID().next().decode()
        self.budget = stream.Budget()
        self._closing = closing or asyncio.Event()
        self._streams: weakref.WeakSet[Failable] = weakref.WeakSet()
        self._call_headers: dict[tuple[str | None, float], dict[str, str]] = {}
        self._replies = Replies(nc)

    def track(self, end: Failable) -> None:
        """Fail ``end`` if this connection is lost while it is open."""
        self._streams.add(end)

    def connection_lost(self) -> None:
        """End every open stream: what was in flight is gone."""
        error = errdefs.Unavailable("bus connection lost; retry (streams resume)")
        for end in list(self._streams):
            end.fail(error)

    async def flush(self, timeout: int = 5) -> None:
        """Wait until the server has processed everything this connection sent so far.

        nats-py's own ``flush()`` writes its PING straight to the socket, ahead of commands
        still queued for its flusher task (a SUB just made), so its PONG may come back before
        the server saw that SUB, and a caller on another connection then gets "no responders".
        Hand the queued commands to the socket first (nats-py has no public call for that).
        """
        await self.nc._flush_pending(force_flush=True)
        await self.nc.flush(timeout)

    def _headers(
        self, namespace: str | None, timeout: float | None = None, idle: float | None = None
    ) -> dict[str, str]:
        return tracing.inject(self._plain_headers(namespace, timeout, idle))

    def _plain_headers(
        self, namespace: str | None, timeout: float | None = None, idle: float | None = None
    ) -> dict[str, str]:
        hdrs: dict[str, str] = {headers.CALLER: self.id}
        if namespace:
            hdrs[headers.NAMESPACE] = namespace
        if timeout is not None:
            hdrs[headers.TIMEOUT_MS] = str(max(1, int(timeout * 1000)))
        if idle is not None:
            hdrs[headers.IDLE_MS] = str(max(1, int(idle * 1000)))
        return hdrs

    def _unary_headers(self, namespace: str | None, timeout: float) -> dict[str, str]:
        """The headers of a unary call: built once per namespace and timeout, then shared.

        Nobody changes them (nats-py only reads them); a trace context goes into a copy.
        """
        hdrs = self._call_headers.get((namespace, timeout))
        if hdrs is None:
            if len(self._call_headers) >= _MAX_CACHED_HEADERS:
                self._call_headers.clear()
            hdrs = self._call_headers[namespace, timeout] = self._plain_headers(namespace, timeout)
        return tracing.injected(hdrs)

    def _subject(self, method: Method[Any, Any], node: str | None) -> str:
        return method.subject(node or self.node) if method.node_local else method.subject()

    async def call(
        self,
        method: Unary[Req, Resp],
        request: Req,
        *,
        namespace: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        node: str | None = None,
    ) -> Resp:
        """Call a unary method and return its decoded response, or raise its errdefs error."""
        subject = self._subject(method, node)
        with tracing.span(method.span_name, trace.SpanKind.CLIENT):
            hdrs = self._unary_headers(namespace, timeout)
            try:
                msg = await self._replies.request(subject, encode(request), timeout, hdrs)
            except nats.errors.NoRespondersError:
                raise errdefs.Unavailable(f"no service answers {subject}") from None
            except nats.errors.TimeoutError:
                raise errdefs.DeadlineExceeded(f"{subject}: no reply within {timeout:g}s") from None
            except (nats.errors.ConnectionClosedError, nats.errors.OutboundBufferLimitError) as err:
                raise errdefs.Unavailable(f"{subject}: bus connection unavailable") from err
            if msg.headers and (error := headers.error_from(msg.headers)) is not None:
                raise error
            return method.decode_response(msg.data)

    @contextlib.asynccontextmanager
    async def download(
        self,
        method: Source[Req] | Items[Req, Any],
        request: Req,
        *,
        namespace: str | None = None,
        node: str | None = None,
        idle_timeout: float = stream.DEFAULT_IDLE_TIMEOUT,
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """Open a server-to-client byte stream; iterate what it yields to receive chunks.

        Leaving the ``async with`` early cancels the stream at the sender.
        """
        receiver = Receiver(self.nc, self.budget, idle_timeout=idle_timeout)
        self.track(receiver)
        inbox = self.nc.new_inbox()

        async def on_data(msg: Msg) -> None:
            receiver.on_data(msg)

        sub = await self.nc.subscribe(inbox, cb=on_data)
        try:
            hdrs = self._headers(namespace, idle=idle_timeout)
            hdrs[stream.GRANT] = str(receiver.grant_now())
            subject = self._subject(method, node)
            await self.nc.publish(subject, encode(request), reply=inbox, headers=hdrs)
            yield aiter(receiver)
        finally:
            with contextlib.suppress(Exception):
                await receiver.cancel()
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def items(
        self,
        method: Items[Req, Item],
        request: Req,
        *,
        namespace: str | None = None,
        node: str | None = None,
        idle_timeout: float = stream.DEFAULT_IDLE_TIMEOUT,
    ) -> AsyncGenerator[Item, None]:
        """The items a List-like method streams, decoded, in order.

        Close the iterator (``contextlib.aclosing``) to stop early; that cancels the stream.
        """
        async with self.download(
            method, request, namespace=namespace, node=node, idle_timeout=idle_timeout
        ) as batches:
            async for batch in batches:
                for item in method.decode_batch(batch):
                    yield item

    @contextlib.asynccontextmanager
    async def open_upload(
        self,
        method: Sink[Req, Resp],
        request: Req,
        *,
        namespace: str | None = None,
        node: str | None = None,
        idle_timeout: float = stream.DEFAULT_IDLE_TIMEOUT,
    ) -> AsyncIterator[Upload[Resp]]:
        """Open a client-to-server byte stream to a sink method; ``finish()`` it to get the answer.

        Leaving the ``async with`` without finishing abandons the stream (the sink sees Canceled).
        """
        upload = Upload(self.nc, method, stream.Credit(idle_timeout=idle_timeout))
        self.track(upload.credit)
        try:
            hdrs = self._headers(namespace, idle=idle_timeout)
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
        method: Sink[Req, Resp],
        request: Req,
        chunks: AsyncIterator[bytes],
        *,
        namespace: str | None = None,
        node: str | None = None,
        idle_timeout: float = stream.DEFAULT_IDLE_TIMEOUT,
    ) -> Resp:
        """Send all of ``chunks`` to a sink method and return its final response."""
        async with self.open_upload(
            method, request, namespace=namespace, node=node, idle_timeout=idle_timeout,
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


class _Link:
    """What nats-py's connection callbacks need: whether we are up, closing, and the Bus."""

    def __init__(self) -> None:
        self.connected = False
        self.closing = asyncio.Event()
        self.bus: Bus | None = None

    async def on_error(self, err: Exception) -> None:
        # Before the first connection, failures are the connect loop's to report.
        if self.connected and not self.closing.is_set():
            log.warning("nats error", extra={"error": str(err) or type(err).__name__})

    async def on_disconnect(self) -> None:
        if self.bus is not None:
            self.bus.connection_lost()
        if not self.closing.is_set():
            log.warning("nats disconnected")

    async def on_reconnect(self) -> None:
        log.info("nats reconnected")


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
    link = _Link()
    try:
        async with asyncio.timeout(connect_timeout):
            nc = await nats.connect(**_options(servers, name, credentials, link))
    except (TimeoutError, OSError, nats.errors.NoServersError) as err:
        link.closing.set()
        raise errdefs.Unavailable(f"cannot reach NATS at {', '.join(servers)}") from err
    link.connected = True
    link.bus = Bus(nc, node, link.closing)
    return link.bus


def _options(
    servers: Sequence[str], name: str, credentials: str | None, link: _Link
) -> dict[str, Any]:
    options: dict[str, Any] = {
        "servers": list(servers),
        "name": name,
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.25,
        "connect_timeout": 2,
        "pending_size": 64 * 1024 * 1024,
        "drain_timeout": 5,
        "error_cb": link.on_error,
        "disconnected_cb": link.on_disconnect,
        "reconnected_cb": link.on_reconnect,
    }
    if credentials:
        options["user_credentials"] = credentials
    return options
