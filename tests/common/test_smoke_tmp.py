import hashlib
from collections.abc import AsyncIterator

import msgspec
import pytest

from flotilla.common import errdefs
from flotilla.common.bus import Bus, Context, Method, ServiceHost


class Echo(msgspec.Struct, frozen=True):
    text: str = ""
    size: int = 0


ECHO = Method("echo", "echo", Echo, Echo)
FAIL = Method("echo", "fail", Echo, Echo)
GEN = Method("echo", "gen", Echo, Echo)
SUM = Method("echo", "sum", Echo, Echo)


async def echo(req: Echo, ctx: Context) -> Echo:
    return Echo(text=req.text + ctx.namespace)


async def fail(req: Echo, ctx: Context) -> Echo:
    raise errdefs.NotFound(f"thing {req.text}")


async def gen(req: Echo, ctx: Context) -> AsyncIterator[bytes]:
    block = b"x" * (1 << 20)
    for _ in range(req.size):
        yield block


async def total(req: Echo, ctx: Context, chunks: AsyncIterator[bytes]) -> Echo:
    h = hashlib.sha256()
    async for c in chunks:
        h.update(c)
    return Echo(text=h.hexdigest())


async def test_roundtrip(bus: Bus) -> None:
    host = ServiceHost(bus, "echo", "0")
    host.unary(ECHO, echo)
    host.unary(FAIL, fail)
    host.source(GEN, gen)
    host.sink(SUM, total)
    async with host:
        assert (await bus.call(ECHO, Echo(text="a"), namespace="ns")).text == "ans"
        with pytest.raises(errdefs.NotFound, match="thing b"):
            await bus.call(FAIL, Echo(text="b"), namespace="ns")
        n = 0
        async with bus.download(GEN, Echo(size=64)) as chunks:
            async for c in chunks:
                n += len(c)
        assert n == 64 << 20

        async def src() -> AsyncIterator[bytes]:
            for _ in range(64):
                yield b"y" * (1 << 20)

        r = await bus.upload(SUM, Echo(), src())
        assert r.text == hashlib.sha256(b"y" * (64 << 20)).hexdigest()
