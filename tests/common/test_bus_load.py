"""Many streams on one connection: one credit budget keeps nats-server from cutting it off."""

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator

import pytest

from flotilla.common.bus import Bus

from .echo_service import DIGEST, GENERATE, Echo, expected_digest, pattern

pytestmark = [pytest.mark.usefixtures("echo"), pytest.mark.load]

MIB = 1 << 20
STREAMS = 256


async def read_4_mib(bus: Bus) -> str:
    hasher = hashlib.sha256()
    async with bus.download(GENERATE, Echo(count=4, chunk=MIB), idle_timeout=60) as chunks:
        async for chunk in chunks:
            hasher.update(chunk)
    return hasher.hexdigest()


async def write_4_mib(bus: Bus) -> str:
    async def chunks() -> AsyncIterator[bytes]:
        for index in range(4):
            yield pattern(index, MIB)

    return (await bus.upload(DIGEST, Echo(), chunks(), idle_timeout=60)).text


async def test_256_concurrent_4_mib_reads_and_writes_on_one_bus(
    bus: Bus, server_bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flotilla.common.bus.client")
    reads = [read_4_mib(bus) for _ in range(STREAMS)]
    writes = [write_4_mib(bus) for _ in range(STREAMS)]
    results = await asyncio.gather(*reads, *writes, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, f"{len(failures)} failed, e.g. {failures[0]!r}"
    assert set(results) == {expected_digest(4, MIB)}
    assert "nats disconnected" not in caplog.text  # nobody was cut off as a slow consumer
    assert bus.budget.available == bus.budget.total  # every grant came back
    assert server_bus.budget.available == server_bus.budget.total
