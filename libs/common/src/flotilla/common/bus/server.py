"""The service side of the bus: endpoints registered explicitly, served concurrently.

A :class:`ServiceHost` is built in one composition root per service::

    host = ServiceHost(bus, api.API, version)
    host.unary(api.INFO, handlers.info)
    host.items(api.LIST, handlers.list)       # server -> client items, batched
    host.source(api.READ, handlers.read)      # server -> client bytes
    host.sink(api.WRITE, handlers.write)      # client -> server bytes
    async with host:
        await stopped.wait()

Every method the service's :class:`~flotilla.common.bus.methods.ServiceApi` declares must have
a handler before the host starts. Each endpoint runs at most ``max_inflight`` requests at once;
past that it answers ResourceExhausted at once rather than queueing without bound.

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
from typing import Any, Final, TypeVar

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from opentelemetry import trace

from flotilla.common import errdefs, headers
from flotilla.common.bus import stream
from flotilla.common.bus.client import Bus
from flotilla.common.bus.context import Context
from flotilla.common.bus.deadlines import TaskDeadline, Wheel
from flotilla.common.bus.discovery import QUEUE_GROUP, Discovery, EndpointStat
from flotilla.common.bus.items import batches
from flotilla.common.bus.methods import (
    Empty,
    Items,
    Method,
    ServiceApi,
    Sink,
    Source,
    Unary,
    encode,
)
from flotilla.common.bus.receiver import Receiver
from flotilla.common.bus.upload import FINAL, READY
from flotilla.common.telemetry import tracing
from flotilla.common.telemetry.metrics import EndpointMetrics

__all__ = ["DEFAULT_MAX_INFLIGHT", "MetricsText", "ServiceHost", "metrics_method"]

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Item = TypeVar("Item")

DEFAULT_MAX_INFLIGHT: Final = 1024
"""Requests one endpoint runs at once (streams included) before it answers ResourceExhausted."""

UnaryHandler = Callable[[Req, Context], Awaitable[Resp]]
ItemsHandler = Callable[[Req, Context], AsyncIterator[Item]]
SourceHandler = Callable[[Req, Context], AsyncIterator[bytes]]
SinkHandler = Callable[[Req, Context, AsyncIterator[bytes]], Awaitable[Resp]]


class MetricsText(Empty, frozen=True):
    """Reply of every host's node-local ``metrics`` method."""

    text: str = ""


def metrics_method(service: str) -> Unary[Empty, MetricsText]:
    """The node-local ``metrics`` method every host serves (Prometheus text)."""
    return Unary(service, "metrics", Empty, MetricsText, node_local=True)


Runner = Callable[["_Endpoint", Msg, Context, Any], Awaitable[None]]
"""Runs one request of an endpoint's kind, once its context and body are decoded."""


@dataclass(eq=False)
class _Endpoint:
    method: Method[Any, Any]
    handler: Callable[..., Any]
    stat: EndpointStat
    run: Runner
    subscription: Subscription | None = None
    inflight: int = 0


class ServiceHost:
    """Serves one service's endpoints on the bus, plus ADR-32 discovery and metrics.

    Args:
        bus: the connection to serve on.
        api: the service's declared methods (or just its name, for a service with none yet).
        version: reported by discovery.
        description: reported by discovery.
        max_inflight: requests each endpoint runs at once.
    """

    def __init__(
        self,
        bus: Bus,
        api: ServiceApi | str,
        version: str,
        description: str = "",
        *,
        max_inflight: int = DEFAULT_MAX_INFLIGHT,
    ) -> None:
        self.api = api if isinstance(api, ServiceApi) else ServiceApi(api)
        self.bus = bus
        self.name = self.api.service
        self.max_inflight = max_inflight
        self.metrics = EndpointMetrics(self.name, bus.node)
        self.discovery = Discovery(bus, self.name, version, description)
        self._endpoints: list[_Endpoint] = []
        self._unary: set[asyncio.Task[None]] = set()  # requests still being answered
        self._streams: set[asyncio.Task[None]] = set()  # streams still open
        self._deadlines = Wheel()
        self._runners: dict[str, Runner] = {
            "unary": self._run_unary,
            "items": self._run_items,
            "source": self._run_source,
            "sink": self._run_sink,
        }
        self._add(metrics_method(self.name), self._metrics)

    def unary(self, method: Unary[Req, Resp], handler: UnaryHandler[Req, Resp]) -> None:
        """Serve ``method`` with a request/response handler."""
        self._add(method, handler)

    def items(self, method: Items[Req, Item], handler: ItemsHandler[Req, Item]) -> None:
        """Serve ``method`` by streaming the items ``handler`` yields, in batches."""
        self._add(method, handler)

    def source(self, method: Source[Req], handler: SourceHandler[Req]) -> None:
        """Serve ``method`` by streaming the bytes ``handler`` yields to the caller."""
        self._add(method, handler)

    def sink(self, method: Sink[Req, Resp], handler: SinkHandler[Req, Resp]) -> None:
        """Serve ``method`` by handing the caller's byte stream to ``handler``."""
        self._add(method, handler)

    def _add(self, method: Method[Any, Any], handler: Callable[..., Any]) -> None:
        if method.service != self.name:
            raise errdefs.InvalidArgument(f"{method.service}.{method.name} is not in {self.name}")
        if any(e.method.name == method.name for e in self._endpoints):
            raise errdefs.AlreadyExists(f"{method.span_name} has a handler already")
        stat = EndpointStat(method.name, method.subject(self.bus.node))
        self._endpoints.append(_Endpoint(method, handler, stat, self._runners[method.kind]))

    def _check_complete(self) -> None:
        served = {e.method.name for e in self._endpoints}
        if missing := sorted(set(self.api.methods) - served):
            raise errdefs.FailedPrecondition(f"{self.name}: no handler for {', '.join(missing)}")

    async def start(self) -> None:
        """Subscribe every endpoint (queue group ``q``) and answer discovery."""
        self._check_complete()
        for endpoint in self._endpoints:
            endpoint.subscription = await self.bus.nc.subscribe(
                endpoint.stat.subject, queue=QUEUE_GROUP, cb=self._dispatcher(endpoint)
            )
            await asyncio.sleep(0)  # nats-py's subscribe never yields: let others run between
        await self.discovery.start([e.stat for e in self._endpoints])
        await self.bus.flush()  # callable the moment this returns
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
            await self.bus.flush(timeout=2)  # the server knows we left before we return
        for task in self._streams:
            task.cancel()
        if running := self._unary | self._streams:
            _, pending = await asyncio.wait(running, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._deadlines.close()

    async def __aenter__(self) -> ServiceHost:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _dispatcher(self, endpoint: _Endpoint) -> Callable[[Msg], Awaitable[None]]:
        # nats-py runs a subscription's callbacks one at a time: hand each request to its own task.
        tasks = self._unary if endpoint.method.kind == "unary" else self._streams
        loop = asyncio.get_running_loop()

        def finished(task: asyncio.Task[None]) -> None:
            endpoint.inflight -= 1
            tasks.discard(task)

        async def dispatch(msg: Msg) -> None:
            if endpoint.inflight >= self.max_inflight:
                await self._refuse(endpoint, msg)
                return
            endpoint.inflight += 1
            task = loop.create_task(self._serve(endpoint, msg))
            tasks.add(task)
            task.add_done_callback(finished)

        return dispatch

    async def _refuse(self, endpoint: _Endpoint, msg: Msg) -> None:
        error = errdefs.ResourceExhausted(
            f"{endpoint.method.span_name}: {self.max_inflight} requests in flight; retry later"
        )
        self._record(endpoint, 0.0, error)
        await self._reply_error(msg, endpoint, error)

    async def _serve(self, endpoint: _Endpoint, msg: Msg) -> None:
        started = time.perf_counter()
        name = endpoint.method.span_name
        error: errdefs.ErrdefsError | None = None
        parent = tracing.extract(msg.headers)
        with tracing.span(name, trace.SpanKind.SERVER, parent) as span:
            try:
                ctx = Context.from_headers(msg.headers)
                await endpoint.run(endpoint, msg, ctx, endpoint.method.decode_request(msg.data))
            except asyncio.CancelledError:
                error = errdefs.Unavailable(f"{self.name} is stopping")
                await self._reply_error(msg, endpoint, error)
                raise
            except BaseException as exc:  # noqa: BLE001 - the one place every error is mapped
                error = self._map(exc, name)
                span.set_attribute("flotilla.error_class", type(error).__name__)
                await self._reply_error(msg, endpoint, error)
            finally:
                self._record(endpoint, time.perf_counter() - started, error)

    def _record(
        self, endpoint: _Endpoint, elapsed: float, error: errdefs.ErrdefsError | None
    ) -> None:
        """Count one request in the endpoint's ADR-32 stats and its Prometheus metrics."""
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

    async def _run_unary(self, endpoint: _Endpoint, msg: Msg, ctx: Context, request: Any) -> None:
        if ctx.deadline is None:
            response = await endpoint.handler(request, ctx)
        elif ctx.deadline <= time.monotonic():
            raise errdefs.DeadlineExceeded("deadline expired before the request was handled")
        else:
            with TaskDeadline(self._deadlines, ctx.deadline):
                response = await endpoint.handler(request, ctx)
        if msg.reply:
            await self.bus.nc.publish(msg.reply, encode(response))

    async def _run_items(self, endpoint: _Endpoint, msg: Msg, ctx: Context, request: Any) -> None:
        limit = stream.chunk_size(self.bus.nc)
        await self._send_stream(msg, ctx, batches(endpoint.handler(request, ctx), limit))

    async def _run_source(self, endpoint: _Endpoint, msg: Msg, ctx: Context, request: Any) -> None:
        await self._send_stream(msg, ctx, endpoint.handler(request, ctx))

    async def _send_stream(self, msg: Msg, ctx: Context, chunks: AsyncIterator[bytes]) -> None:
        if not msg.reply:
            raise errdefs.InvalidArgument("a stream request needs a reply subject")
        granted = _grant(msg.headers)
        nc, credit = self.bus.nc, stream.Credit(granted, idle_timeout=ctx.idle_timeout)
        self.bus.track(credit)
        acks = nc.new_inbox()

        async def on_ack(ack: Msg) -> None:
            credit.on_control(ack)

        sub = await nc.subscribe(acks, cb=on_ack)
        try:
            if not granted:
                await stream.send_hello(nc, msg.reply, acks)
            seq = await stream.send_all(nc, chunks, msg.reply, credit, acks)
            await stream.send_eos(nc, msg.reply, seq, reply=acks)
            await credit.wait_until(seq)  # the receiver consumed everything, or left
        finally:
            await sub.unsubscribe()

    async def _run_sink(self, endpoint: _Endpoint, msg: Msg, ctx: Context, request: Any) -> None:
        if not msg.reply:
            raise errdefs.InvalidArgument("a stream request needs a reply subject")
        nc, caller = self.bus.nc, msg.reply
        receiver = Receiver(nc, self.bus.budget, ack_subject=caller, idle_timeout=ctx.idle_timeout)
        self.bus.track(receiver)
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
            receiver.fail(errdefs.Canceled("the sink stopped reading"))
            await sub.unsubscribe()

    async def _reply_error(
        self, msg: Msg, endpoint: _Endpoint, error: errdefs.ErrdefsError
    ) -> None:
        if not msg.reply or self.bus.nc.is_closed:
            return
        hdrs = headers.error_headers(error)
        if endpoint.method.kind == "sink":
            hdrs[FINAL] = "1"
        elif endpoint.method.kind in ("source", "items"):
            hdrs[stream.EOS] = "0"
        with contextlib.suppress(Exception):
            await self.bus.nc.publish(msg.reply, b"", headers=hdrs)

    async def _metrics(self, _: Empty, __: Context) -> MetricsText:
        return MetricsText(text=self.metrics.render())


def _grant(hdrs: dict[str, str] | None) -> int:
    """The credit a download's caller granted in its request."""
    raw = (hdrs or {}).get(stream.GRANT, "0")
    try:
        return max(0, int(raw))
    except ValueError as err:
        raise errdefs.InvalidArgument(f"malformed {stream.GRANT}: {raw!r}") from err


async def _ready_then(receiver: Receiver, nc: Any, caller: str, inbox: str) -> AsyncIterator[bytes]:
    """Tell the caller where to send, with credit, once the handler starts reading; relay chunks."""
    granted = await receiver.grant_initial()
    await nc.publish(caller, b"", reply=inbox, headers={READY: "1", stream.GRANT: str(granted)})
    async for chunk in receiver:
        yield chunk
