"""The content service under a greedy or careless caller: bounded, and everyone else served."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flotilla.common import digests, errdefs
from flotilla.common.bus import Bus, connect
from flotilla.content import api
from flotilla.content.proxy import ContentProxy
from flotilla.testkit.services import ServiceProcess

NODE = "bounds-node"
NS = "bounds"
GREEDY = 2000


@pytest.fixture
async def content(tmp_path: Path, nats_url: str, bus: Bus) -> AsyncIterator[ServiceProcess]:
    env = {
        "FLOTILLA_ROOT": str(tmp_path / "root"),
        "FLOTILLA_NATS__URLS": nats_url,
        "FLOTILLA_NODE_ID": NODE,
        "FLOTILLA_LOG_LEVEL": "warning",
    }
    service = ServiceProcess("content", env)
    await service.start(bus)
    yield service
    await service.kill()


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def test_a_caller_that_never_closes_its_writers_is_bounded(
    content: ServiceProcess, bus: Bus, nats_url: str
) -> None:
    assert content.process is not None
    before = open_files(content.process.pid)
    greedy = ContentProxy(bus, node=NODE)
    outcomes = []
    for index in range(GREEDY):
        try:
            outcomes.append(await greedy.writer(NS, f"ref-{index}"))
        except errdefs.ResourceExhausted as err:
            outcomes.append(err)
    held = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, errdefs.ResourceExhausted)]
    assert len(held) == 256  # [content] max_sessions_per_caller
    assert len(refused) == GREEDY - 256
    assert "this caller holds 256 writer sessions" in str(refused[0])
    assert open_files(content.process.pid) - before < 3 * 256 + 16  # lock and data file each
    # Someone else is still served, at once.
    other = await connect([nats_url], node="elsewhere", name="other", connect_timeout=5)
    try:
        polite = ContentProxy(other, node=NODE)
        data = b"still served"
        async with await polite.writer(NS, "polite", len(data)) as writer:
            await writer.write(data)
            assert await writer.commit(len(data), digests.digest_of(data)) == digests.digest_of(
                data
            )
    finally:
        await other.close()
    for writer in held:
        await writer.close()
    assert open_files(content.process.pid) - before < 16


async def test_a_commit_never_lands_between_the_chunks_of_a_write(
    content: ServiceProcess, bus: Bus
) -> None:
    opened = await bus.call(api.WRITER_OPEN, api.WriterOpen(ref="racy"), namespace=NS, node=NODE)
    request = api.WriteRequest(session=opened.session, offset=0)
    async with bus.open_upload(api.WRITE, request, namespace=NS, node=NODE) as upload:
        await upload.send(b"first half ")
        await upload.sync()
        commit = api.CommitRequest(session=opened.session)
        with pytest.raises(errdefs.FailedPrecondition, match="busy"):
            await bus.call(api.COMMIT, commit, namespace=NS, node=NODE)
        await upload.send(b"second half")
        status = await upload.finish()
    assert status.offset == len(b"first half second half")
    committed = await bus.call(api.COMMIT, commit, namespace=NS, node=NODE)
    assert committed.digest == digests.digest_of(b"first half second half")


@pytest.mark.load
async def test_an_endpoint_flooded_past_its_bound_refuses_and_recovers(
    content: ServiceProcess, bus: Bus
) -> None:
    info = api.DigestRequest(digest=digests.digest_of(b"nothing"))
    calls = [bus.call(api.INFO, info, namespace=NS, node=NODE) for _ in range(3000)]
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    kinds = {type(o).__name__ for o in outcomes}
    assert kinds <= {"NotFound", "ResourceExhausted"}
    with pytest.raises(errdefs.NotFound):
        await bus.call(api.INFO, info, namespace=NS, node=NODE)
