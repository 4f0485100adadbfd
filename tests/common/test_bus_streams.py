"""Byte streams both ways over a real nats-server: size, order, checksum, flow control, failure."""

import asyncio
import hashlib
from collections.abc import AsyncIterator

import pytest

from flotilla.common import errdefs
from flotilla.common.bus import Bus, ServiceHost
from flotilla.common.bus.stream import DEFAULT_WINDOW, chunk_size

from .echo_service import DIGEST, GENERATE, Echo, EchoHandlers, expected_digest, pattern

pytestmark = pytest.mark.usefixtures("echo")

MIB = 1 << 20


async def produce(count: int, size: int) -> AsyncIterator[bytes]:
    for index in range(count):
        yield pattern(index, size)


# 256 MiB through one loop: nats-py's reader parses a burst of 1 MiB messages in one step
# (56 ms once in debug mode), which the debug-mode pass would count against us.
@pytest.mark.load
async def test_256_mib_download_arrives_whole_and_in_order(bus: Bus) -> None:
    hasher, total = hashlib.sha256(), 0
    async with bus.download(GENERATE, Echo(count=256, chunk=MIB)) as chunks:
        async for chunk in chunks:
            assert len(chunk) <= chunk_size(bus.nc) <= bus.nc.max_payload
            hasher.update(chunk)
            total += len(chunk)
    assert total == 256 * MIB
    assert hasher.hexdigest() == await asyncio.to_thread(expected_digest, 256, MIB)


@pytest.mark.load
async def test_256_mib_upload_arrives_whole_and_in_order(bus: Bus) -> None:
    reply = await bus.upload(DIGEST, Echo(), produce(256, MIB))
    assert reply.text == await asyncio.to_thread(expected_digest, 256, MIB)
    assert reply.count >= 256  # chunks above the payload limit are split


async def test_odd_chunk_sizes_are_split_and_rejoined(bus: Bus) -> None:
    big = chunk_size(bus.nc) * 2 + 17
    reply = await bus.upload(DIGEST, Echo(), produce(3, big))
    assert reply.text == expected_digest(3, big)


async def test_slow_receiver_bounds_what_the_sender_has_produced(
    bus: Bus, handlers: EchoHandlers
) -> None:
    async with bus.download(GENERATE, Echo(count=40, chunk=64 * 1024)) as chunks:
        async for _ in chunks:
            handlers.probe.consumed.append(1)
            await asyncio.sleep(0.01)
    # The generator may be at most one window (plus the chunk being prepared) ahead.
    assert handlers.probe.max_ahead <= DEFAULT_WINDOW + 2


async def test_slow_sink_bounds_what_the_caller_sends(bus: Bus, handlers: EchoHandlers) -> None:
    max_ahead = 0

    async def counted() -> AsyncIterator[bytes]:
        nonlocal max_ahead
        for index in range(30):
            max_ahead = max(max_ahead, index - len(handlers.probe.consumed))
            yield pattern(index, 64 * 1024)

    reply = await bus.upload(DIGEST, Echo(delay=0.01), counted())
    assert reply.count == 30
    assert max_ahead <= DEFAULT_WINDOW + 1


async def test_sender_failure_mid_download_reaches_the_receiver(bus: Bus) -> None:
    received = 0
    with pytest.raises(errdefs.DataLoss, match="disk fell off"):
        async with bus.download(GENERATE, Echo(count=20, text="fail", chunk=1024)) as chunks:
            async for _ in chunks:
                received += 1
    assert received == 10


async def test_sink_failure_mid_upload_reaches_the_caller(bus: Bus) -> None:
    with pytest.raises(errdefs.FailedPrecondition, match="bad chunk"):
        await bus.upload(DIGEST, Echo(text="fail"), produce(50, 64 * 1024))


async def test_sink_refusing_before_reading_reaches_the_caller(bus: Bus) -> None:
    with pytest.raises(errdefs.Unavailable, match="ref locked"):
        await bus.upload(DIGEST, Echo(text="refuse"), produce(50, 64 * 1024))


async def test_receiver_leaving_early_cancels_the_sender(bus: Bus, handlers: EchoHandlers) -> None:
    async with bus.download(GENERATE, Echo(count=10_000, chunk=1024)) as chunks:
        async for _ in chunks:
            break
    await asyncio.wait_for(handlers.probe.closed.wait(), 5)
    assert handlers.probe.produced < 100


async def test_caller_failure_mid_upload_reaches_the_sink(bus: Bus) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"a" * 1024
        raise errdefs.Canceled("caller gave up")

    with pytest.raises(errdefs.Canceled):
        await bus.upload(DIGEST, Echo(), broken())


async def test_download_from_nobody_is_unavailable(bus: Bus, echo: ServiceHost) -> None:
    await echo.stop()
    with pytest.raises(errdefs.Unavailable):
        async with bus.download(GENERATE, Echo(count=1)) as chunks:
            async for _ in chunks:
                pass


async def test_upload_to_nobody_is_unavailable(bus: Bus, echo: ServiceHost) -> None:
    await echo.stop()
    with pytest.raises(errdefs.Unavailable):
        await bus.upload(DIGEST, Echo(), produce(1, 10))


async def test_stopping_ends_open_streams_with_unavailable(bus: Bus, echo: ServiceHost) -> None:
    async with bus.open_upload(DIGEST, Echo()) as upload:
        await upload.send(pattern(0, 1024))
        await upload.sync()
        # The peer keeps the stream open and idle; stopping must not wait out the grace.
        async with asyncio.timeout(10):
            await echo.stop(grace=60)
        with pytest.raises(errdefs.Unavailable, match="stopping"):
            await upload.finish()
