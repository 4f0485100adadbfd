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
from flotilla.common.telemetry import tracing

__all__ = ["DEFAULT_TIMEOUT", "Bus", "connect"]

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")
T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0
READY = "Flotilla-Ready"
FINAL = "Flotilla-Final"


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
        with tracing.tracer().start_as_current_span(
            f"{method.service}.{method.name}", kind=trace.SpanKind.CLIENT
        ):
            hdrs = self._headers(namespace, timeout)
            msg = await self._request(subject, encode(request), hdrs, timeout)
            if (error := headers.error_from(msg.headers)) is not None:
                raise error
            return method.decode_response(msg.data)

    async def _request(
        self, subject: str, payload: bytes, hdrs: dict[str, str], timeout: float
    ) -> Msg:
        try:
            return await self.nc.request(subject, payload, timeout=timeout, headers=hdrs)
        except nats.errors.NoRespondersError:
            raise errdefs.Unavailable(f"no service answers {subject}") from None
        except nats.errors.TimeoutError:
            raise errdefs.DeadlineExceeded(f"{subject}: no reply within {timeout:g}s") from None
        except (nats.errors.ConnectionClosedError, nats.errors.OutboundBufferLimitError) as err:
            raise errdefs.Unavailable(f"{subject}: bus connection unavailable") from err

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
        """Send ``chunks`` to a sink method and return its final response."""
        upload = _Upload(self.nc, stream.Credit(window, idle_timeout))
        sub = await self.nc.subscribe(upload.inbox, cb=upload.on_control)
        try:
            hdrs = self._headers(namespace, idle_timeout)
            subject = self._subject(method, node)
            await self.nc.publish(subject, encode(request), reply=upload.inbox, headers=hdrs)
            data = await upload.send(chunks)
            return method.decode_response(data)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def close(self) -> None:
        """Drain the connection: finish in-flight publishes and subscriptions, then close."""
        self._closing.set()
        if not self.nc.is_closed:
            with contextlib.suppress(Exception):
                await self.nc.drain()


class _Upload:
    """The client's half of one upload: waits for READY, sends under credit, awaits FINAL."""

    def __init__(self, nc: Client, credit: stream.Credit) -> None:
        self.nc = nc
        self.inbox = nc.new_inbox()
        self.credit = credit
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[str] = loop.create_future()
        self.final: asyncio.Future[bytes] = loop.create_future()

    async def on_control(self, msg: Msg) -> None:
        hdrs = msg.headers or {}
        if READY in hdrs:
            _resolve(self.ready, msg.reply)
        elif FINAL in hdrs or headers.STATUS in hdrs:
            self._on_final(msg.data, headers.error_from(hdrs))
        else:
            self.credit.on_control(msg)

    def _on_final(self, data: bytes, error: errdefs.ErrdefsError | None) -> None:
        if error is None:
            _resolve(self.final, data)
            self.credit.fail(errdefs.Aborted("sink finished before the stream ended"))
            _fail(self.ready, errdefs.Aborted("sink finished without reading"))
            return
        for future in (self.ready, self.final):
            _fail(future, error)
        self.credit.fail(error)

    async def send(self, chunks: AsyncIterator[bytes]) -> bytes:
        try:
            data_subject = await self._wait(self.ready)
        except errdefs.Aborted:
            return await self._wait(self.final)
        seq = 0
        try:
            seq = await stream.send_all(self.nc, chunks, data_subject, self.credit, self.inbox)
        except errdefs.Aborted:
            return await self._wait(self.final)
        except errdefs.ErrdefsError as error:
            if self.final.done():
                return await self._wait(self.final)
            await stream.send_eos(self.nc, data_subject, seq, error)
            raise
        await stream.send_eos(self.nc, data_subject, seq)
        return await self._wait(self.final)

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
        "error_cb": on_error,
        "disconnected_cb": on_disconnect,
        "reconnected_cb": on_reconnect,
    }
    if credentials:
        options["user_credentials"] = credentials
    return options
