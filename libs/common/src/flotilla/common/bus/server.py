"""The service side of the bus: endpoints registered explicitly, served concurrently.

A :class:`ServiceHost` is built in one composition root per service::

    host = ServiceHost(bus, "content", version)
    host.unary(api.INFO, handlers.info)
    host.source(api.READ, handlers.read)      # server -> client bytes
    host.sink(api.WRITE, handlers.write)      # client -> server bytes
    async with host:
        await stopped.wait()

Every request runs in its own task through one wrapper (:meth:`ServiceHost._serve`) that decodes
(malformed bodies are InvalidArgument), applies the caller's deadline, opens a span linked to the
caller's trace, records metrics and maps every exception to an errdefs class in headers. Nothing
ever leaks a ``repr()``; unexpected exceptions are logged with their traceback and answered as
Internal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from opentelemetry import trace

from flotilla.common import errdefs, headers
from flotilla.common.bus import stream
from flotilla.common.bus.client import Bus
from flotilla.common.bus.context import Context
from flotilla.common.bus.discovery import Discovery, EndpointStat
from flotilla.common.bus.methods import Empty, Method, encode
from flotilla.common.bus.upload import FINAL, READY
from flotilla.common.telemetry import tracing
from flotilla.common.telemetry.metrics import EndpointMetrics

__all__ = ["QUEUE_GROUP", "MetricsText", "ServiceHost"]

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")

QUEUE_GROUP: Final = "q"  # ADR-32's default queue group: replicas share the load.

UnaryHandler = Callable[[Req, Context], Awaitable[Resp]]
SourceHandler = Callable[[Req, Context], AsyncIterator[bytes]]
SinkHandler = Callable[[Req, Context, AsyncIterator[bytes]], Awaitable[Resp]]


class MetricsText(Empty, frozen=True):
    """Reply of every host's node-local ``metrics`` method."""

    text: str = ""


@dataclass(eq=False)
class _Endpoint:
    method: Method[Any, Any]
    kind: Literal["unary", "source", "sink"]
    handler: Callable[..., Any]
    stat: EndpointStat
    subscription: Subscription | None = None


class ServiceHost:
    """Serves one service's endpoints on the bus, plus ADR-32 discovery and metrics."""

    def __init__(self, bus: Bus, name: str, version: str, description: str = "") -> None:
        self.bus = bus
        self.name = name
        self.metrics = EndpointMetrics(name, bus.node)
        self.discovery = Discovery(bus, name, version, description)
        self._endpoints: list[_Endpoint] = []
        self._inflight: set[asyncio.Task[None]] = set()
        self._streams: set[asyncio.Task[None]] = set()
        self.unary(Method(name, "metrics", Empty, MetricsText, node_local=True), self._metrics)

    def unary(self, method: Method[Req, Resp], handler: UnaryHandler[Req, Resp]) -> None:
        """Serve ``method`` with a request/response handler."""
        self._add(method, "unary", handler)

    def source(self, method: Method[Req, Any], handler: SourceHandler[Req]) -> None:
        """Serve ``method`` by streaming the bytes ``handler`` yields to the caller."""
        self._add(method, "source", handler)

    def sink(self, method: Method[Req, Resp], handler: SinkHandler[Req, Resp]) -> None:
        """Serve ``method`` by handing the caller's byte stream to ``handler``."""
        self._add(method, "sink", handler)

    def _add(self, method: Method[Any, Any], kind: Any, handler: Callable[..., Any]) -> None:
        if method.service != self.name:
            raise errdefs.InvalidArgument(f"{method.service}.{method.name} is not in {self.name}")
        subject = method.subject(self.bus.node)
        self._endpoints.append(_Endpoint(method, kind, handler, EndpointStat(method.name, subject)))

    async def start(self) -> None:
        """Subscribe every endpoint (queue group ``q``) and answer discovery."""
        for endpoint in self._endpoints:
            endpoint.subscription = await self.bus.nc.subscribe(
                endpoint.stat.subject, queue=QUEUE_GROUP, cb=self._dispatcher(endpoint)
            )
        await self.discovery.start([e.stat for e in self._endpoints])
        await self.bus.nc.flush()
        log.info("serving", extra={"endpoints": [e.stat.subject for e in self._endpoints]})

    async def stop(self, grace: float = 10.0) -> None:
        """Stop taking requests, let in-flight ones finish within ``grace``, cancel the rest.

        Open streams are ended at once, with Unavailable: a stream lasts as long as its peer
        keeps it open (a writer session's upload may idle for minutes), and every stream is
        resumable (a writer continues at the stored offset, a reader asks for the rest).
        """
        for endpoint in self._endpoints:
            if endpoint.subscription is not None:
                with contextlib.suppress(Exception):
                    await endpoint.subscription.unsubscribe()
                endpoint.subscription = None
        await self.discovery.stop()
        with contextlib.suppress(Exception):
            await self.bus.nc.flush(timeout=2)  # the server knows we left before we return
        for task in self._streams:
            task.cancel()
        if self._inflight:
            _, pending = await asyncio.wait(set(self._inflight), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def __aenter__(self) -> ServiceHost:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _dispatcher(self, endpoint: _Endpoint) -> Callable[[Msg], Awaitable[None]]:
        # nats-py runs a subscription's callbacks one at a time: hand each request to its own task.
        async def dispatch(msg: Msg) -> None:
            task = asyncio.create_task(self._serve(endpoint, msg))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            if endpoint.kind != "unary":
                self._streams.add(task)
                task.add_done_callback(self._streams.discard)

        return dispatch

    async def _serve(self, endpoint: _Endpoint, msg: Msg) -> None:
        started = time.perf_counter()
        name = endpoint.method.span_name
        error: errdefs.ErrdefsError | None = None
        parent = tracing.extract(msg.headers)
        with tracing.span(name, trace.SpanKind.SERVER, parent) as span:
            try:
                await self._run(endpoint, msg)
            except asyncio.CancelledError:
                error = errdefs.Unavailable(f"{self.name} is stopping")
                await self._reply_error(msg, endpoint, error)
                raise
            except BaseException as exc:  # noqa: BLE001 - the one place every error is mapped
                error = self._map(exc, name)
                span.set_attribute("flotilla.error_class", type(error).__name__)
                await self._reply_error(msg, endpoint, error)
            finally:
                elapsed = time.perf_counter() - started
                cls = type(error).__name__ if error else None
                endpoint.stat.record(elapsed, cls and f"{cls}: {error}")
                self.metrics.observe(endpoint.method.name, elapsed, cls)

    def _map(self, exc: BaseException, name: str) -> errdefs.ErrdefsError:
        if isinstance(exc, errdefs.ErrdefsError):
            return exc
        if isinstance(exc, TimeoutError):
            return errdefs.DeadlineExceeded(f"{name}: deadline exceeded")
        if not isinstance(exc, Exception):
            raise exc  # KeyboardInterrupt, SystemExit: not ours to swallow
        log.exception("unexpected error", extra={"endpoint": name})
        return errdefs.wrap(exc)

    async def _run(self, endpoint: _Endpoint, msg: Msg) -> None:
        ctx = Context.from_headers(msg.headers)
        request = endpoint.method.decode_request(msg.data)
        if endpoint.kind == "unary":
            await self._run_unary(endpoint, msg, ctx, request)
        elif endpoint.kind == "source":
            await self._run_source(endpoint, msg, ctx, request)
        else:
            await self._run_sink(endpoint, msg, ctx, request)

    async def _run_unary(self, endpoint: _Endpoint, msg: Msg, ctx: Context, request: Any) -> None:
        remaining = ctx.remaining()
        if remaining is not None and remaining <= 0:
            raise errdefs.DeadlineExceeded("deadline expired before the request was handled")
        async with asyncio.timeout(remaining):
            response = await endpoint.handler(request, ctx)
        if msg.reply:
            await self.bus.nc.publish(msg.reply, encode(response))

    async def _run_source(self, endpoint: _Endpoint, msg: Msg, ctx: Context, request: Any) -> None:
        if not msg.reply:
            raise errdefs.InvalidArgument("a stream request needs a reply subject")
        nc, credit = self.bus.nc, stream.Credit(idle_timeout=ctx.idle_timeout)
        acks = nc.new_inbox()

        async def on_ack(ack: Msg) -> None:
            credit.on_control(ack)

        sub = await nc.subscribe(acks, cb=on_ack)
        try:
            seq = await stream.send_all(nc, endpoint.handler(request, ctx), msg.reply, credit, acks)
            await stream.send_eos(nc, msg.reply, seq, reply=acks)
            await credit.wait_until(seq)  # the receiver consumed everything, or left
        finally:
            await sub.unsubscribe()

    async def _run_sink(self, endpoint: _Endpoint, msg: Msg, ctx: Context, request: Any) -> None:
        if not msg.reply:
            raise errdefs.InvalidArgument("a stream request needs a reply subject")
        nc, caller = self.bus.nc, msg.reply
        receiver = stream.Receiver(nc, ack_subject=caller, idle_timeout=ctx.idle_timeout)
        inbox = nc.new_inbox()

        async def on_data(data: Msg) -> None:
            receiver.on_data(data)

        sub = await nc.subscribe(inbox, cb=on_data)
        try:
            response = await endpoint.handler(
                request, ctx, _ready_then(receiver, nc, caller, inbox)
            )
            await nc.publish(caller, encode(response), headers={FINAL: "1"})
        finally:
            await sub.unsubscribe()

    async def _reply_error(
        self, msg: Msg, endpoint: _Endpoint, error: errdefs.ErrdefsError
    ) -> None:
        if not msg.reply or self.bus.nc.is_closed:
            return
        hdrs = headers.error_headers(error)
        if endpoint.kind == "sink":
            hdrs[FINAL] = "1"
        elif endpoint.kind == "source":
            hdrs[stream.EOS] = "0"
        with contextlib.suppress(Exception):
            await self.bus.nc.publish(msg.reply, b"", headers=hdrs)

    async def _metrics(self, _: Empty, __: Context) -> MetricsText:
        return MetricsText(text=self.metrics.render())


async def _ready_then(
    receiver: stream.Receiver, nc: Any, caller: str, inbox: str
) -> AsyncIterator[bytes]:
    """Tell the caller where to send only once the handler starts reading, then relay chunks."""
    await nc.publish(caller, b"", reply=inbox, headers={READY: "1"})
    async for chunk in receiver:
        yield chunk
