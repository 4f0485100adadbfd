from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from flotilla.testkit import (
    CommandError,
    Containerd,
    ImageSet,
    LocalRegistry,
    export_oci_tar,
    private_containerd,
    push_image,
)
from flotilla.testkit._mounts import mounts_under
from flotilla.testkit._proc import processes

from .conftest import requires_root

pytestmark = [pytest.mark.root, requires_root, pytest.mark.programs("containerd", "ctr", "runc")]


async def test_version_and_isolated_config(containerd: Containerd) -> None:
    out = await containerd.ctr("version")
    assert "Server:" in out
    assert (
        'content_sharing_policy = "isolated"' in (containerd.directory / "config.toml").read_text()
    )
    assert containerd.address.is_socket()


async def test_pulls_busybox_from_the_local_registry(
    containerd: Containerd, registry: LocalRegistry, images: ImageSet
) -> None:
    ref = await push_image(images.busybox, registry.host)
    await containerd.ctr("images", "pull", "--plain-http", ref, namespace="bench")
    listed = await containerd.ctr("images", "ls", namespace="bench")
    assert ref in listed
    assert images.busybox.digest in listed


async def test_large_image_unpacks_with_whiteout_opaque_and_links(
    containerd: Containerd, images: ImageSet, tmp_path: Path
) -> None:
    tarball = await export_oci_tar(images.large, tmp_path / "l.tar", image_name="flotilla/large:t")
    await containerd.ctr("images", "import", str(tarball), namespace="t")
    script = "ls /data; echo --; ls /data/opaque; echo --; stat -c %h /data/big/random-1.bin; hi"
    out = await containerd.ctr(
        "run", "--rm", "flotilla/large:t", "check", "sh", "-c", script, namespace="t"
    )
    top, opaque, rest = out.split("--\n")
    links, hello = rest.splitlines()
    assert "big" in top.split()
    assert "doomed.txt" not in top.split()
    assert opaque.split() == ["fresh.txt"]
    assert links == "2"
    assert hello == "hello from flotilla"


async def test_ctr_failure_raises_with_stderr(containerd: Containerd) -> None:
    with pytest.raises(CommandError, match="not found") as caught:
        await containerd.ctr("content", "get", "sha256:" + "0" * 64, namespace="x")
    assert caught.value.returncode == 1


async def test_cleans_up_when_cancelled() -> None:
    started: asyncio.Future[Containerd] = asyncio.get_running_loop().create_future()

    async def hold() -> None:
        async with private_containerd() as ctd:
            started.set_result(ctd)
            await asyncio.sleep(3600)

    task = asyncio.create_task(hold())
    ctd = await started
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ctd.process.returncode is not None
    assert not ctd.directory.exists()
    assert not mounts_under(ctd.directory)


async def test_exit_removes_running_containers_and_shims(images: ImageSet, tmp_path: Path) -> None:
    tarball = await export_oci_tar(images.busybox, tmp_path / "b.tar", image_name="flotilla/bb:t")
    async with private_containerd() as ctd:
        await ctd.ctr("images", "import", str(tarball), namespace="t")
        await ctd.ctr("run", "-d", "flotilla/bb:t", "sleeper", "sleep", "600", namespace="t")
        _, row = (await ctd.ctr("tasks", "ls", namespace="t")).splitlines()
        pid = int(row.split()[1])
        assert _alive(pid)
    assert not _alive(pid)
    assert not [argv for _, argv in processes() if str(ctd.address) in argv]


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()
