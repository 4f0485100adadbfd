"""``ingest_path``: where an ingest's growing file lies, for a reader on the service's node."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flotilla.common import digests, errdefs
from flotilla.common.bus import Bus
from flotilla.content.proxy import ContentProxy
from flotilla.testkit.services import node_services

NODE = "test-node"  # the bus fixture's own node: the test is a caller on the service's node
NS = "ingests"


@pytest.fixture
async def content(tmp_path: Path, nats_url: str, bus: Bus) -> AsyncIterator[ContentProxy]:
    async with node_services(bus, nats_url, tmp_path / "root", ("content",), node=NODE):
        yield ContentProxy(bus, node=NODE)


def _file_id(path: Path) -> str:
    found = os.stat(path)
    return f"{found.st_dev}:{found.st_ino}"


async def test_the_ingest_file_grows_under_its_path_and_is_namespaced(
    content: ContentProxy,
) -> None:
    data = b"layer bytes " * 1000
    writer = await content.writer(NS, "layer-1", len(data))
    await writer.write(data[:5000])
    path, file_id = await content.ingest_path(NS, "layer-1")
    assert await asyncio.to_thread(_file_id, path) == file_id
    assert await asyncio.to_thread(path.read_bytes) == data[:5000]
    await writer.write(data[5000:])
    assert await asyncio.to_thread(path.read_bytes) == data  # the same file, grown

    with pytest.raises(errdefs.NotFound, match="layer-1"):
        await content.ingest_path("elsewhere", "layer-1")  # a namespace sees only its own
    with pytest.raises(errdefs.NotFound):
        await content.ingest_path(NS, "layer-2")

    await writer.commit(len(data), digests.digest_of(data))
    with pytest.raises(errdefs.NotFound):  # committed: a blob now, no ingest
        await content.ingest_path(NS, "layer-1")


async def test_an_aborted_ingest_has_no_path(content: ContentProxy) -> None:
    writer = await content.writer(NS, "gone")
    await writer.write(b"some")
    await writer.close()
    path, _ = await content.ingest_path(NS, "gone")
    await content.abort(NS, "gone")
    assert not await asyncio.to_thread(path.exists)
    with pytest.raises(errdefs.NotFound):
        await content.ingest_path(NS, "gone")
