"""A small service used by the bus tests: every endpoint kind, and every way to fail."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import msgspec

from flotilla.common import errdefs
from flotilla.common.bus import Bus, Context, Method, ServiceHost


class Echo(msgspec.Struct, frozen=True, kw_only=True):
    text: str = ""
    count: int = 0
    chunk: int = 1 << 20
    delay: float = 0.0


ECHO = Method("echo", "echo", Echo, Echo)
RAISE = Method("echo", "raise", Echo, Echo)
SLEEP = Method("echo", "sleep", Echo, Echo)
GENERATE = Method("echo", "generate", Echo, Echo)
DIGEST = Method("echo", "digest", Echo, Echo)
LOCAL = Method("echo", "local", Echo, Echo, node_local=True)
MEET = Method("echo", "meet", Echo, Echo)


def pattern(index: int, size: int) -> bytes:
    """Deterministic, non-repeating chunk contents."""
    return hashlib.shake_256(index.to_bytes(8, "big")).digest(size)


@dataclass
class Probe:
    """What the handlers saw, for assertions."""

    produced: int = 0
    max_ahead: int = 0
    consumed: list[int] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: int = 0
    all_arrived: asyncio.Event = field(default_factory=asyncio.Event)


class EchoHandlers:
    def __init__(self) -> None:
        self.probe = Probe()

    async def echo(self, req: Echo, ctx: Context) -> Echo:
        return Echo(text=f"{req.text}@{ctx.namespace}")

    async def raise_(self, req: Echo, ctx: Context) -> Echo:
        if req.text == "foreign":
            raise RuntimeError("secret /etc/shadow path")
        raise errdefs.KINDS[req.text].cls(f"{req.text} raised on purpose")

    async def sleep(self, req: Echo, ctx: Context) -> Echo:
        await asyncio.sleep(req.delay)
        return req

    async def meet(self, req: Echo, ctx: Context) -> Echo:
        """Returns only once ``req.count`` callers are inside at the same time."""
        self.probe.arrived += 1
        if self.probe.arrived >= req.count:
            self.probe.all_arrived.set()
        await self.probe.all_arrived.wait()
        return req

    async def generate(self, req: Echo, ctx: Context) -> AsyncIterator[bytes]:
        try:
            for index in range(req.count):
                self.probe.produced = index + 1
                ahead = self.probe.produced - len(self.probe.consumed)
                self.probe.max_ahead = max(self.probe.max_ahead, ahead)
                if req.text == "fail" and index == req.count // 2:
                    raise errdefs.DataLoss("disk fell off")
                yield pattern(index, req.chunk)
        finally:
            self.probe.closed.set()

    async def digest(self, req: Echo, ctx: Context, chunks: AsyncIterator[bytes]) -> Echo:
        if req.text == "refuse":
            raise errdefs.Unavailable("ref locked")
        hasher, count = hashlib.sha256(), 0
        async for chunk in chunks:
            hasher.update(chunk)
            count += 1
            self.probe.consumed.append(len(chunk))
            if req.delay:
                await asyncio.sleep(req.delay)
            if req.text == "fail" and count == 3:
                raise errdefs.FailedPrecondition("bad chunk")
        return Echo(text=hasher.hexdigest(), count=count)


def echo_host(bus: Bus, handlers: EchoHandlers) -> ServiceHost:
    host = ServiceHost(bus, "echo", "1.2.3", "test service")
    host.unary(ECHO, handlers.echo)
    host.unary(RAISE, handlers.raise_)
    host.unary(SLEEP, handlers.sleep)
    host.unary(LOCAL, handlers.echo)
    host.unary(MEET, handlers.meet)
    host.source(GENERATE, handlers.generate)
    host.sink(DIGEST, handlers.digest)
    return host
