"""Conformance cases for the trees a chain of snapshots shows through its mounts."""

from __future__ import annotations

import asyncio
import os

import pytest

from flotilla.snapshots.snapshotter import Snapshotter
from flotilla.snapshots.testsuite.support import commit_layer, mounted, read_tree

__all__ = ["TreeCases"]

LAYERS_DEEP = 128


class TreeCases:
    """What the mounts show: layers stacked, deletions, moves, metadata, views read-only."""

    async def test_layers_stack(self, snapshotter: Snapshotter, namespace: str) -> None:
        """A child sees its parents' files, overridden by its own; changes stay in the child."""
        await commit_layer(snapshotter, namespace, "l1", "", {"a": b"1", "d/b": b"1"})
        await commit_layer(snapshotter, namespace, "l2", "l1", {"a": b"2", "d/c": b"2"})
        async with mounted(await snapshotter.prepare(namespace, "work", "l2")) as root:
            assert read_tree(root) == {"a": b"2", "d": "dir", "d/b": b"1", "d/c": b"2"}
            (root / "new").write_bytes(b"3")
        async with mounted(await snapshotter.view(namespace, "v1", "l1")) as root:
            assert read_tree(root) == {"a": b"1", "d": "dir", "d/b": b"1"}
        async with mounted(await snapshotter.view(namespace, "v2", "l2")) as root:
            assert "new" not in read_tree(root)

    async def test_deletions_in_child(self, snapshotter: Snapshotter, namespace: str) -> None:
        """Files and directories removed in a child are gone from its tree, not the parent's."""
        base = {"keep": b"k", "gone": b"g", "dir/x": b"x", "dir/sub/y": b"y"}
        await commit_layer(snapshotter, namespace, "base", "", base)
        await commit_layer(snapshotter, namespace, "cut", "base", {"gone": None, "dir": None})
        async with mounted(await snapshotter.view(namespace, "v", "cut")) as root:
            assert read_tree(root) == {"keep": b"k"}
        async with mounted(await snapshotter.view(namespace, "vb", "base")) as root:
            assert set(read_tree(root)) == {"keep", "gone", "dir", "dir/x", "dir/sub", "dir/sub/y"}

    async def test_recreated_directory(self, snapshotter: Snapshotter, namespace: str) -> None:
        """A directory removed and made again in a child hides the parent's contents."""
        await commit_layer(snapshotter, namespace, "base", "", {"dir/old": b"o"})
        await commit_layer(snapshotter, namespace, "mid", "base", {"dir": None})
        await commit_layer(snapshotter, namespace, "top", "mid", {"dir/new": b"n"})
        async with mounted(await snapshotter.view(namespace, "v", "top")) as root:
            assert read_tree(root) == {"dir": "dir", "dir/new": b"n"}

    async def test_move_from_lower(self, snapshotter: Snapshotter, namespace: str) -> None:
        """Containerd's MoveFileFromLowerLayer: a rename in the child."""
        await commit_layer(snapshotter, namespace, "base", "", {"a/f": b"f", "b/g": b"g"})
        mounts = await snapshotter.prepare(namespace, "work", "base")
        async with mounted(mounts) as root:
            os.rename(root / "a" / "f", root / "b" / "f")
        await snapshotter.commit(namespace, "moved", "work")
        async with mounted(await snapshotter.view(namespace, "v", "moved")) as root:
            assert read_tree(root) == {"a": "dir", "b": "dir", "b/f": b"f", "b/g": b"g"}

    async def test_metadata_survives_commit(self, snapshotter: Snapshotter, namespace: str) -> None:
        """Modes, owners and symlinks made in a layer are what its children see."""
        mounts = await snapshotter.prepare(namespace, "meta")
        async with mounted(mounts) as root:
            (root / "secret").mkdir(mode=0o700)
            os.chmod(root / "secret", 0o700)
            (root / "owned").write_bytes(b"o")
            os.chown(root / "owned", 1234, 5678)
            os.symlink("owned", root / "link")
        await snapshotter.commit(namespace, "meta-c", "meta")
        async with mounted(await snapshotter.prepare(namespace, "child", "meta-c")) as root:
            assert (root / "secret").stat().st_mode & 0o777 == 0o700
            assert ((root / "owned").stat().st_uid, (root / "owned").stat().st_gid) == (1234, 5678)
            assert os.readlink(root / "link") == "owned"
            os.chown(root / "owned", 42, 43)
        await snapshotter.commit(namespace, "child-c", "child")
        async with mounted(await snapshotter.view(namespace, "v", "child-c")) as root:
            assert (root / "owned").stat().st_uid == 42
        async with mounted(await snapshotter.view(namespace, "vm", "meta-c")) as root:
            assert (root / "owned").stat().st_uid == 1234

    async def test_view_is_read_only(self, snapshotter: Snapshotter, namespace: str) -> None:
        """Nothing can be written through a view, of one layer or of many."""
        await commit_layer(snapshotter, namespace, "l1", "", {"f": b"1"})
        await commit_layer(snapshotter, namespace, "l2", "l1", {"g": b"2"})
        for parent in ("l1", "l2"):
            async with mounted(await snapshotter.view(namespace, f"v-{parent}", parent)) as root:
                with pytest.raises(OSError, match="Read-only"):
                    (root / "new").write_bytes(b"no")

    async def test_empty_view_and_prepare(self, snapshotter: Snapshotter, namespace: str) -> None:
        """Without a parent, a view and a prepared snapshot mount empty trees."""
        async with mounted(await snapshotter.view(namespace, "v", "")) as root:
            assert read_tree(root) == {}
        async with mounted(await snapshotter.prepare(namespace, "p", "")) as root:
            assert read_tree(root) == {}

    @pytest.mark.slow
    async def test_128_layers(self, snapshotter: Snapshotter, namespace: str) -> None:
        """A chain of 128 layers mounts and shows every layer's file."""
        parent = ""
        for index in range(LAYERS_DEEP):
            name = f"layer-{index:03d}"
            await commit_layer(snapshotter, namespace, name, parent, {f"f{index:03d}": b"x"})
            parent = name
        async with mounted(await snapshotter.view(namespace, "deep-view", parent)) as root:
            assert len(await asyncio.to_thread(read_tree, root)) == LAYERS_DEEP
        async with mounted(await snapshotter.prepare(namespace, "deep", parent)) as root:
            (root / "top").write_bytes(b"t")
            assert len(await asyncio.to_thread(read_tree, root)) == LAYERS_DEEP + 1
