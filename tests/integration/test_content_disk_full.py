"""A full disk under the content store: one clear error, nothing lost, nothing left behind.

The content root lies on a real 8 MiB tmpfs, with a ballast file beside it to free space by
deleting. Blobs larger than what is free go through the service over NATS, straight into the
ingest's file on the same node, and through the ``flotilla content ingest`` CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from flotilla.common import digests, errdefs
from flotilla.common.bus import Bus, connect
from flotilla.common.config import Config, NatsConfig
from flotilla.content.__main__ import build
from flotilla.content.proxy import ContentProxy
from flotilla.testkit.services import ServiceProcess, run_cli

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs: needs root")

NODE = "full-node"
NS = "full"
MIB = 1 << 20
DISK = 8 * MIB
BALLAST = 3 * MIB
FULL = re.escape("no space left on device (")


class Disk:
    """A small tmpfs: the service's root in ``root``, and a ballast file to delete for room.

    Its writes run in a thread: the service shares the test's event loop.
    """

    def __init__(self, mountpoint: Path) -> None:
        self.mountpoint = mountpoint
        self.root = mountpoint / "root"
        self.ballast = mountpoint / "ballast"

    def free(self) -> int:
        stat = os.statvfs(self.mountpoint)
        return stat.f_bavail * stat.f_frsize

    async def add_ballast(self) -> None:
        await asyncio.to_thread(self.ballast.write_bytes, bytes(BALLAST))

    async def drop_ballast(self) -> None:
        await asyncio.to_thread(self.ballast.unlink)

    async def fill(self) -> None:
        """Take up every byte left with the ballast file."""
        await asyncio.to_thread(self._fill)

    def _fill(self) -> None:
        fd = os.open(self.ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            with pytest.raises(OSError, match="No space left on device"):
                while True:
                    os.write(fd, bytes(64 << 10))
        finally:
            os.close(fd)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", f"size={DISK},mode=0755", "tmpfs", str(mountpoint)]
    subprocess.run(mount, check=True)
    try:
        yield Disk(mountpoint)
    finally:
        subprocess.run(["umount", "--lazy", str(mountpoint)], check=True)


@pytest.fixture
async def service(disk: Disk, nats_url: str) -> AsyncIterator[None]:
    """The content service, built in this process with its composition root, on ``disk``."""
    config = Config(root=str(disk.root), node_id=NODE, nats=NatsConfig())
    async with AsyncExitStack() as stack:
        bus = await connect([nats_url], node=NODE, name="content", connect_timeout=5)
        stack.push_async_callback(bus.close)
        host = await build(config, bus, stack)
        await host.start()
        stack.push_async_callback(host.stop)
        yield


@pytest.fixture
async def neighbour(nats_url: str) -> AsyncIterator[Bus]:
    """A connection on the service's node."""
    local = await connect([nats_url], node=NODE, name="neighbour", connect_timeout=5)
    yield local
    await local.close()


@pytest.fixture(params=["over NATS", "same node"])
def caller(request: pytest.FixtureRequest, service: None, bus: Bus) -> ContentProxy:
    if request.param == "over NATS":
        return ContentProxy(bus, node=NODE, same_node_files=False)
    return ContentProxy(request.getfixturevalue("neighbour"))


async def blob(size: int) -> tuple[bytes, str]:
    """Random bytes and their digest, made in a thread that lets the event loop run.

    Not ``random.randbytes``: it holds the GIL, so the loop would wait all the same.
    """

    def make() -> tuple[bytes, str]:
        data = os.urandom(size)
        return data, digests.digest_of(data)

    return await asyncio.to_thread(make)


async def chunks_of(data: bytes, size: int = MIB) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def ingest(store: ContentProxy, ref: str, data: bytes, digest: str) -> str:
    """Ingest (or resume) ``ref`` as the CLI does; the digest committed."""
    async with await store.writer(NS, ref, len(data), digest) as writer:
        await writer.copy_from(chunks_of(data[writer.offset :]))
        return await writer.commit(len(data), digest)


async def test_too_big_is_resource_exhausted_and_abort_frees_the_space(
    disk: Disk, caller: ContentProxy
) -> None:
    big, big_digest = await blob(12 * MIB)
    with pytest.raises(errdefs.ResourceExhausted, match=FULL + re.escape(str(disk.root))):
        await ingest(caller, "big", big, big_digest)
    stored = (await caller.status(NS, "big")).offset
    assert 0 < stored < DISK
    more, more_digest = await blob(disk.free() + MIB)
    with pytest.raises(errdefs.ResourceExhausted, match=FULL):
        await ingest(caller, "more", more, more_digest)
    with contextlib.suppress(errdefs.NotFound):  # refused at the start: nothing to abort
        await caller.abort(NS, "more")
    await disk.fill()
    small, small_digest = await blob(64 << 10)
    with pytest.raises(errdefs.ResourceExhausted, match=FULL):  # no room for its metadata
        await ingest(caller, "small", small, small_digest)
    assert [status.ref for status in await caller.list_statuses(NS)] == ["big"]

    await disk.drop_ballast()
    await caller.abort(NS, "big")
    assert disk.free() >= DISK - MIB
    assert await ingest(caller, "small", small, small_digest) == small_digest


async def test_a_full_disk_ingest_resumes_once_there_is_room(
    disk: Disk, caller: ContentProxy
) -> None:
    await disk.add_ballast()
    data, digest = await blob(6 * MIB)
    with pytest.raises(errdefs.ResourceExhausted, match=FULL):
        await ingest(caller, "resumed", data, digest)
    stored = (await caller.status(NS, "resumed")).offset
    assert 0 < stored < len(data)

    await disk.drop_ballast()
    assert await ingest(caller, "resumed", data, digest) == digest
    async with await caller.reader_at(NS, digest) as reader:
        assert b"".join([chunk async for chunk in reader.chunks()]) == data


@pytest.mark.parametrize(
    "caller",
    ["over NATS", "same node"],
    indirect=True,
)
async def test_the_same_writer_goes_on_once_there_is_room(disk: Disk, caller: ContentProxy) -> None:
    """The writer takes the service's offset after the failure and writes on from there."""
    await disk.add_ballast()
    data, digest = await blob(6 * MIB)
    async with await caller.writer(NS, "same", len(data), digest) as writer:
        with pytest.raises(errdefs.ResourceExhausted, match=FULL):
            await writer.copy_from(chunks_of(data))
        assert writer.offset == (await writer.status()).offset
        await disk.drop_ballast()
        await writer.copy_from(chunks_of(data[writer.offset :]))
        assert await writer.commit(len(data), digest) == digest


# --- the CLI, against the service as a real process -------------------------------------------


@pytest.fixture
async def cli_env(disk: Disk, nats_url: str, bus: Bus) -> AsyncIterator[dict[str, str]]:
    env = {
        "FLOTILLA_ROOT": str(disk.root),
        "FLOTILLA_NATS__URLS": nats_url,
        "FLOTILLA_NODE_ID": NODE,
        "FLOTILLA_LOG_LEVEL": "warning",
    }
    service = ServiceProcess("content", env)
    await service.start(bus)
    yield {**os.environ, **env}
    await service.stop()


async def flotilla(env: dict[str, str], *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    code, out, err = await run_cli(env, "content", "-n", NS, *args, stdin=stdin)
    return code, out.decode(), err


def assert_disk_full(code: int, err: str) -> None:
    assert code == 1
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert re.match(f"flotilla: ResourceExhausted: {FULL}", lines[0]), err


async def test_cli_says_the_disk_is_full_in_one_line(
    disk: Disk, cli_env: dict[str, str], bus: Bus
) -> None:
    big, big_digest = await blob(12 * MIB)
    code, _, err = await flotilla(cli_env, "ingest", "big", "--expected-digest", big_digest,
                                  stdin=big)  # fmt: skip
    assert_disk_full(code, err)
    await disk.fill()
    small, small_digest = await blob(64 << 10)
    code, _, err = await flotilla(cli_env, "ingest", "small", stdin=small)
    assert_disk_full(code, err)

    await disk.drop_ballast()
    await ContentProxy(bus, node=NODE).abort(NS, "big")
    code, out, err = await flotilla(cli_env, "ingest", "small", stdin=small)
    assert (code, out.strip()) == (0, small_digest), err


async def test_cli_resumes_once_there_is_room(disk: Disk, cli_env: dict[str, str]) -> None:
    await disk.add_ballast()
    data, digest = await blob(6 * MIB)
    args = ("ingest", "resumed", "--expected-size", str(len(data)), "--expected-digest", digest)
    code, _, err = await flotilla(cli_env, *args, stdin=data)
    assert_disk_full(code, err)
    await disk.drop_ballast()
    code, out, err = await flotilla(cli_env, *args, stdin=data)
    assert (code, out.strip()) == (0, digest), err
