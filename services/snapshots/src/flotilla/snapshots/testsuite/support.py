"""What the snapshotter conformance suite needs from its host, and the helpers its cases share."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from flotilla.common.mounts import Mount, mount_all, unmount_all
from flotilla.snapshots.snapshotter import Snapshotter
from flotilla.testkit.suite import SuiteFixtures

__all__ = ["Restart", "SuiteFixtures", "commit_layer", "mounted", "read_tree", "write_files"]

Restart = Callable[[], Awaitable[Snapshotter]]
"""Closes the snapshotter under test and returns a new one over the same state."""


@asynccontextmanager
async def mounted(mounts: Sequence[Mount]) -> AsyncIterator[Path]:
    """``mounts`` mounted on a fresh directory for the ``async with`` block."""
    directory = Path(tempfile.mkdtemp(prefix="flotilla-suite-"))
    try:
        await asyncio.to_thread(mount_all, mounts, directory)
        try:
            yield directory
        finally:
            await asyncio.to_thread(unmount_all, mounts, directory)
    finally:
        await asyncio.to_thread(directory.rmdir)


def write_files(root: Path, files: Mapping[str, bytes | None]) -> None:
    """Write (or, for ``None``, remove) each relative path under ``root``."""
    for name, data in files.items():
        path = root / name
        if data is None:
            if path.is_dir() and not path.is_symlink():
                for top, dirs, names in os.walk(path, topdown=False):
                    for entry in names:
                        os.unlink(os.path.join(top, entry))
                    for entry in dirs:
                        os.rmdir(os.path.join(top, entry))
                path.rmdir()
            else:
                path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def read_tree(root: Path) -> dict[str, bytes | str]:
    """Every path under ``root``: file contents, ``"dir"`` for directories, ``"->x"`` links."""
    found: dict[str, bytes | str] = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(top) / name
            relative = str(path.relative_to(root))
            if path.is_symlink():
                found[relative] = f"->{os.readlink(path)}"
            elif path.is_dir():
                found[relative] = "dir"
            else:
                found[relative] = path.read_bytes()
    return found


async def commit_layer(
    snapshotter: Snapshotter,
    namespace: str,
    name: str,
    parent: str,
    files: Mapping[str, bytes | None],
    labels: Mapping[str, str] | None = None,
) -> None:
    """Prepare on ``parent``, write ``files`` through the mounts, commit as ``name``."""
    key = f"{name}-active"
    mounts = await snapshotter.prepare(namespace, key, parent)
    async with mounted(mounts) as root:
        await asyncio.to_thread(write_files, root, files)
    await snapshotter.commit(namespace, name, key, labels)
