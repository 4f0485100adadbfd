"""Import and export through the content service on real NATS (``ContentProxy``).

The caller is on another node than the service, so every byte rides the bus: the same core,
the same Protocol. A refused blob leaves no ingest in the service either.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.archive.kit import blob_name, digest, layout_entries, named, replaced, tiny_image
from tests.archive.kit import write_tar as write_entries

from flotilla.common.bus import Bus
from flotilla.common.errdefs import InvalidArgument
from flotilla.content.proxy import ContentProxy
from flotilla.images.archive import export_archive, import_archive
from flotilla.testkit import export_oci_tar
from flotilla.testkit.publish import ImageSet
from flotilla.testkit.services import ServiceProcess

NODE = "archive-node"
NS = "proxied"


@pytest.fixture
async def proxy(tmp_path: Path, nats_url: str, bus: Bus) -> AsyncIterator[ContentProxy]:
    env = {
        "FLOTILLA_ROOT": str(tmp_path / "root"),
        "FLOTILLA_STATE": str(tmp_path / "state"),
        "FLOTILLA_NATS__URLS": nats_url,
        "FLOTILLA_NODE_ID": NODE,
        "FLOTILLA_LOG_LEVEL": "warning",
    }
    service = ServiceProcess("content", env)
    await service.start(bus)
    yield ContentProxy(bus, node=NODE, idle_timeout=3)
    await service.kill()


async def test_a_round_trip_through_the_service(
    images: ImageSet, proxy: ContentProxy, tmp_path: Path
) -> None:
    image = images.multiarch
    source = await export_oci_tar(image, tmp_path / "in.tar", image_name="example.com/m:1")

    first = await import_archive(source, proxy, NS)
    out = tmp_path / "out.tar"
    await export_archive(out, proxy, NS, first.images)
    second = await import_archive(out, proxy, "again")

    assert [(n, d.digest) for n, d in second.images] == [("example.com/m:1", image.digest)]
    ours = {info.digest: dict(info.labels) async for info in proxy.walk(NS)}
    again = {info.digest: dict(info.labels) async for info in proxy.walk("again")}
    assert ours == again
    assert len(ours) == len(first.blobs)


async def test_a_refused_blob_leaves_no_ingest_in_the_service(
    proxy: ContentProxy, tmp_path: Path
) -> None:
    image = tiny_image()
    entries = layout_entries((image, named(image.target, "t:1")))
    layer = image.blobs[image.layers[0]]
    bad = replaced(entries, blob_name(image.layers[0]), layer[:-1] + bytes([layer[-1] ^ 1]))
    tar = write_entries(tmp_path / "bad.tar", bad)

    with pytest.raises(InvalidArgument, match=f"blob {image.layers[0]} .*: the store refused"):
        await import_archive(tar, proxy, NS)

    assert await proxy.list_statuses(NS) == []
    async for info in proxy.walk(NS):
        async with await proxy.reader_at(NS, info.digest) as reader:
            assert digest(await reader.read_at(0, reader.size)) == info.digest
