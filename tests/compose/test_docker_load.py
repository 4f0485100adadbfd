"""An exported image is what ``docker load`` reads, and Docker runs it.

The testkit's busybox image goes through Flotilla's import into a content store and out again
through its export; Docker's own daemon loads the tarball and runs a command from it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from flotilla.content.local import LocalStore
from flotilla.images.archive import export_archive, import_archive
from flotilla.testkit import build_busybox, export_oci_tar
from flotilla.testkit.events import RecordingPublisher

from .stack import run

pytestmark = [pytest.mark.slow, pytest.mark.root]

NAME = "docker.io/flotilla/load-check:1"


async def test_docker_loads_and_runs_an_export(docker_daemon: None, tmp_path: Path) -> None:
    image = await asyncio.to_thread(build_busybox, tmp_path / "cache")
    source = await export_oci_tar(image, tmp_path / "in.tar", image_name=NAME)
    out = tmp_path / "out.tar"
    async with await LocalStore.open(tmp_path / "content", RecordingPublisher()) as store:
        imported = await import_archive(source, store, "load")
        await export_archive(out, store, "load", imported.images)

    try:
        loaded = await asyncio.to_thread(run, ["docker", "load", "-i", str(out)], timeout=120)
        assert "flotilla/load-check:1" in loaded.stdout.decode()
        ran = await asyncio.to_thread(
            run,
            ["docker", "run", "--rm", "--network", "none", NAME, "/bin/busybox", "echo", "hi"],
            timeout=120,
        )
        assert ran.stdout.decode().strip() == "hi"
    finally:
        await asyncio.to_thread(run, ["docker", "rmi", "-f", NAME], timeout=60, check=False)
