"""The bus against plain nats-py doing the same work, on the same nats-server, in one run.

"The same work" for a request is a request carrying the same namespace and deadline headers,
answered by a handler that echoes it.

Cases: request/reply latency p50 and p99 (sequential), request throughput with 64 in flight,
and bulk-byte throughput both ways (our flow-controlled streams against plain publishes to a
subscriber with no flow control at all, i.e. the ceiling).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import msgspec
from bench.harness import BenchContext, Result, abab
from nats.aio.client import Client
from nats.aio.msg import Msg

from flotilla.common import headers
from flotilla.common.bus import QUEUE_GROUP, Bus, Context, ServiceApi, ServiceHost, Wire, connect
from flotilla.common.natsserver import EmbeddedNats

MIB = 1 << 20
NAMESPACE = "bench"
# Every request carries its namespace and deadline in headers (the design requires it), so the
# plain baseline carries the same two headers: the ratio is our library's cost, not the wire's.
_PLAIN_HEADERS = {headers.NAMESPACE: NAMESPACE, headers.TIMEOUT_MS: "10000"}
PLAIN_SUBJECT = "bench.plain.echo"
PLAIN_STREAM = "bench.plain.stream"


class Ping(Wire, frozen=True):
    """The request of the echo cases."""

    text: str = ""
    count: int = 0


class Pong(Wire, frozen=True):
    """The response of the echo cases."""

    text: str = ""
    count: int = 0


API = ServiceApi("bench")
ECHO = API.unary("echo", Ping, Pong)
SOURCE = API.source("source", Ping)
SINK = API.sink("sink", Ping, Pong)
_BLOCK = bytes(MIB)


async def _echo(request: Ping, _: Context) -> Pong:
    return Pong(text=request.text, count=request.count)


async def _source(request: Ping, _: Context) -> AsyncIterator[bytes]:
    for _index in range(request.count):
        yield _BLOCK


async def _sink(_: Ping, __: Context, chunks: AsyncIterator[bytes]) -> Pong:
    total = 0
    async for chunk in chunks:
        total += len(chunk)
    return Pong(count=total)


@dataclass
class Peers:
    """Our caller and server, and plain nats-py's, on one nats-server."""

    bus: Bus
    plain: Client


async def _start(ctx: BenchContext) -> Peers:
    server = await ctx.stack.enter_async_context(EmbeddedNats(ctx.workdir / "bus-nats"))
    buses = [await connect([server.url], node="bench", name=f"bench-{i}") for i in range(4)]
    for bus in buses:
        ctx.stack.push_async_callback(bus.close)
    host = ServiceHost(buses[0], API, "bench")
    host.unary(ECHO, _echo)
    host.source(SOURCE, _source)
    host.sink(SINK, _sink)
    await ctx.stack.enter_async_context(host)
    plain_server = buses[2].nc

    async def respond(msg: Msg) -> None:
        await msg.respond(msg.data)

    async def ack(msg: Msg) -> None:
        await msg.respond(b"")

    await plain_server.subscribe(PLAIN_SUBJECT, queue=QUEUE_GROUP, cb=respond)
    await plain_server.subscribe(PLAIN_STREAM, cb=ack, pending_bytes_limit=-1)
    await buses[2].flush()  # nats-py's own flush may overtake the SUBs just made
    return Peers(bus=buses[1], plain=buses[3].nc)


def _latencies(
    call: Callable[[], Awaitable[object]], count: int
) -> Callable[[], Awaitable[list[float]]]:
    async def run() -> list[float]:
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            await call()
            samples.append((time.perf_counter() - start) * 1000)
        return samples

    return run


def _percentile(
    run: Callable[[], Awaitable[list[float]]], q: int
) -> Callable[[], Awaitable[float]]:
    async def measure() -> float:
        return statistics.quantiles(await run(), n=100)[q - 1]

    return measure


def _throughput(
    call: Callable[[], Awaitable[object]], total: int, inflight: int
) -> Callable[[], Awaitable[float]]:
    async def measure() -> float:
        remaining = total

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await call()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(inflight)))
        return total / (time.perf_counter() - start)

    return measure


async def _latency_cases(ctx: BenchContext, peers: Peers) -> list[Result]:
    body = msgspec.msgpack.encode(Ping(text="x" * 64))
    ours = _latencies(
        lambda: peers.bus.call(ECHO, Ping(text="x" * 64), namespace=NAMESPACE),
        ctx.rounds(3000, 500),
    )
    plain = _latencies(
        lambda: peers.plain.request(PLAIN_SUBJECT, body, timeout=5, headers=_PLAIN_HEADERS),
        ctx.rounds(3000, 500),
    )
    results = []
    for q in (50, 99):
        base, mine = await abab(_percentile(plain, q), _percentile(ours, q), rounds=ctx.rounds(5))
        results.append(Result(f"bus request p{q} (sequential)", "ms", "nats-py", base, mine))
    calls = ctx.rounds(20000, 4000)
    base, mine = await abab(
        _throughput(
            lambda: peers.plain.request(PLAIN_SUBJECT, body, timeout=5, headers=_PLAIN_HEADERS),
            calls,
            64,
        ),
        _throughput(
            lambda: peers.bus.call(ECHO, Ping(text="x" * 64), namespace=NAMESPACE), calls, 64
        ),
        rounds=ctx.rounds(5),
    )
    results.append(Result("bus requests/s (64 in flight)", "req/s", "nats-py", base, mine, True))
    return results


def _plain_stream(peers: Peers, mib: int) -> Callable[[], Awaitable[float]]:
    """Plain nats-py moving the same bytes reliably: each chunk a request, 16 in flight.

    Plain publishes with no flow control at all lose data here: past a few hundred MiB the
    server cuts the subscriber off as a slow consumer. Acknowledged requests with a window
    are the least plain nats-py needs, and the same window our streams use.
    """
    chunk = _BLOCK[: MIB - 4096]  # the same payload limit our streams respect

    async def measure() -> float:
        window = asyncio.Semaphore(16)

        async def send() -> None:
            async with window:
                await peers.plain.request(PLAIN_STREAM, chunk, timeout=30)

        start = time.perf_counter()
        await asyncio.gather(*(send() for _ in range(mib)))
        return mib * len(chunk) / MIB / (time.perf_counter() - start)

    return measure


def _download(bus: Bus, mib: int) -> Callable[[], Awaitable[float]]:
    async def measure() -> float:
        received, start = 0, time.perf_counter()
        async with bus.download(SOURCE, Ping(count=mib)) as chunks:
            async for chunk in chunks:
                received += len(chunk)
        return received / MIB / (time.perf_counter() - start)

    return measure


def _upload(bus: Bus, mib: int) -> Callable[[], Awaitable[float]]:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(mib):
            yield _BLOCK

    async def measure() -> float:
        start = time.perf_counter()
        reply = await bus.upload(SINK, Ping(), chunks())
        return reply.count / MIB / (time.perf_counter() - start)

    return measure


async def _stream_cases(ctx: BenchContext, peers: Peers) -> list[Result]:
    mib = ctx.rounds(256, 64)
    plain = _plain_stream(peers, mib)
    results = []
    for label, ours in (
        ("download", _download(peers.bus, mib)),
        ("upload", _upload(peers.bus, mib)),
    ):
        base, mine = await abab(plain, ours, rounds=ctx.rounds(5))
        results.append(
            Result(f"bus stream {label} {mib} MiB", "MiB/s", "nats-py", base, mine, True)
        )
    return results


async def run(ctx: BenchContext) -> list[Result]:
    """Every bus case."""
    peers = await ctx.lazy("bus-peers", _start)
    return [*await _latency_cases(ctx, peers), *await _stream_cases(ctx, peers)]
