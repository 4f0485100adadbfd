"""A small service used by the bus tests: every endpoint kind, and every way to fail."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from flotilla.common import errdefs
from flotilla.common.bus import Bus, Context, ServiceApi, ServiceHost, Wire


class Echo(Wire, frozen=True):
    text: str = ""
    count: int = 0
    chunk: int = 1 << 20
    delay: float = 0.0


class Reply(Wire, frozen=True):
    text: str = ""
    count: int = 0


API = ServiceApi("echo")
ECHO = API.unary("echo", Echo, Reply)
RAISE = API.unary("raise", Echo, Reply)
SLEEP = API.unary("sleep", Echo, Reply)
GENERATE = API.source("generate", Echo)
ITEMS = API.items("items", Echo, Reply)
DIGEST = API.sink("digest", Echo, Reply)
LOCAL = API.unary("local", Echo, Reply, node_local=True)
MEET = API.unary("meet", Echo, Reply)


def pattern(index: int, size: int) -> bytes:
    """Deterministic, non-repeating chunk contents."""
    return hashlib.shake_256(index.to_bytes(8, "big")).digest(size)


def expected_digest(count: int, size: int) -> str:
    """The sha256 (hex) of ``count`` patterns of ``size``, in order."""
    hasher = hashlib.sha256()
    for index in range(count):
        hasher.update(pattern(index, size))
    return hasher.hexdigest()


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

    async def echo(self, req: Echo, ctx: Context) -> Reply:
        return Reply(text=f"{req.text}@{ctx.namespace}")

    async def raise_(self, req: Echo, ctx: Context) -> Reply:
        if req.text == "foreign":
            raise RuntimeError("secret /etc/shadow path")
        raise errdefs.KINDS[req.text].cls(f"{req.text} raised on purpose")

    async def sleep(self, req: Echo, ctx: Context) -> Reply:
        await asyncio.sleep(req.delay)
        return Reply(text=req.text)

    async def meet(self, req: Echo, ctx: Context) -> Reply:
        """Returns only once ``req.count`` callers are inside at the same time."""
        self.probe.arrived += 1
        if self.probe.arrived >= req.count:
            self.probe.all_arrived.set()
        await self.probe.all_arrived.wait()
        return Reply(text=req.text, count=req.count)

    async def items(self, req: Echo, ctx: Context) -> AsyncIterator[Reply]:
        for index in range(req.count):
            yield Reply(text=req.text * (req.chunk // max(1, len(req.text))), count=index)

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

    async def digest(self, req: Echo, ctx: Context, chunks: AsyncIterator[bytes]) -> Reply:
        if req.text == "refuse":
            raise errdefs.Unavailable("ref locked")
        if req.text == "skip":
            return Reply(text="answered without reading")
        hasher, count = hashlib.sha256(), 0
        async for chunk in chunks:
            hasher.update(chunk)
            count += 1
            self.probe.consumed.append(len(chunk))
            if req.delay:
                await asyncio.sleep(req.delay)
            if req.text == "fail" and count == 3:
                raise errdefs.FailedPrecondition("bad chunk")
        return Reply(text=hasher.hexdigest(), count=count)


def echo_host(bus: Bus, handlers: EchoHandlers, max_inflight: int = 1024) -> ServiceHost:
    host = ServiceHost(bus, API, "1.2.3", "test service", max_inflight=max_inflight)
    host.unary(ECHO, handlers.echo)
    host.unary(RAISE, handlers.raise_)
    host.unary(SLEEP, handlers.sleep)
    host.unary(LOCAL, handlers.echo)
    host.unary(MEET, handlers.meet)
    host.source(GENERATE, handlers.generate)
    host.items(ITEMS, handlers.items)
    host.sink(DIGEST, handlers.digest)
    return host
