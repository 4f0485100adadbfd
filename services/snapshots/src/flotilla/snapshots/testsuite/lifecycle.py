"""Conformance cases for the snapshot lifecycle: kinds, parents, commit, remove and their errors."""

from __future__ import annotations

import pytest

from flotilla.common import errdefs
from flotilla.snapshots.snapshotter import Kind, Snapshotter
from flotilla.snapshots.testsuite.support import Restart, commit_layer, mounted, read_tree

__all__ = ["LifecycleCases"]


class LifecycleCases:
    """Prepare, View, Commit, Remove and Stat, as containerd's suite checks them."""

    async def test_kinds_and_parents(self, snapshotter: Snapshotter, namespace: str) -> None:
        """Active, committed and view snapshots stat with their kind and parent."""
        await snapshotter.prepare(namespace, "base-active", labels={"a": "1"})
        active = await snapshotter.stat(namespace, "base-active")
        assert (active.kind, active.parent, dict(active.labels)) == (Kind.ACTIVE, "", {"a": "1"})
        await snapshotter.commit(namespace, "base", "base-active")
        with pytest.raises(errdefs.NotFound):
            await snapshotter.stat(namespace, "base-active")
        committed = await snapshotter.stat(namespace, "base")
        assert (committed.kind, committed.parent) == (Kind.COMMITTED, "")
        assert committed.created_at <= committed.updated_at
        await snapshotter.view(namespace, "look", "base")
        await snapshotter.prepare(namespace, "work", "base")
        assert (await snapshotter.stat(namespace, "look")).kind is Kind.VIEW
        assert (await snapshotter.stat(namespace, "look")).parent == "base"
        assert (await snapshotter.stat(namespace, "work")).parent == "base"

    async def test_commit_labels(self, snapshotter: Snapshotter, namespace: str) -> None:
        """Commit keeps the active labels, or takes the ones it is given."""
        await snapshotter.prepare(namespace, "x-active", labels={"kept": "yes"})
        await snapshotter.commit(namespace, "x", "x-active")
        assert dict((await snapshotter.stat(namespace, "x")).labels) == {"kept": "yes"}
        await snapshotter.prepare(namespace, "y-active", "x", labels={"dropped": "yes"})
        await snapshotter.commit(namespace, "y", "y-active", {"containerd.io/gc.root": "1"})
        assert dict((await snapshotter.stat(namespace, "y")).labels) == {
            "containerd.io/gc.root": "1"
        }

    async def test_taken_key(self, snapshotter: Snapshotter, namespace: str) -> None:
        """A key or name already taken is AlreadyExists, whatever its kind."""
        await commit_layer(snapshotter, namespace, "base", "", {})
        await snapshotter.prepare(namespace, "taken", "base")
        for make in (snapshotter.prepare, snapshotter.view):
            for key in ("taken", "base"):
                with pytest.raises(errdefs.AlreadyExists):
                    await make(namespace, key, "base")
        await snapshotter.prepare(namespace, "other")
        with pytest.raises(errdefs.AlreadyExists):
            await snapshotter.commit(namespace, "base", "other")
        with pytest.raises(errdefs.AlreadyExists):
            await snapshotter.commit(namespace, "taken", "other")
        assert (await snapshotter.stat(namespace, "other")).kind is Kind.ACTIVE

    async def test_missing_parent(self, snapshotter: Snapshotter, namespace: str) -> None:
        """A parent that does not exist is NotFound; one not committed is InvalidArgument."""
        with pytest.raises(errdefs.NotFound):
            await snapshotter.prepare(namespace, "orphan", "nowhere")
        with pytest.raises(errdefs.NotFound):
            await snapshotter.view(namespace, "orphan", "nowhere")
        await snapshotter.prepare(namespace, "active")
        with pytest.raises(errdefs.InvalidArgument):
            await snapshotter.prepare(namespace, "child", "active")
        with pytest.raises(errdefs.NotFound):
            await snapshotter.stat(namespace, "orphan")
        with pytest.raises(errdefs.NotFound):
            await snapshotter.stat(namespace, "child")

    async def test_commit_rules(self, snapshotter: Snapshotter, namespace: str) -> None:
        """Only active snapshots commit; a missing key is NotFound."""
        await commit_layer(snapshotter, namespace, "base", "", {})
        await snapshotter.view(namespace, "look", "base")
        with pytest.raises(errdefs.FailedPrecondition):
            await snapshotter.commit(namespace, "from-view", "look")
        with pytest.raises(errdefs.FailedPrecondition):
            await snapshotter.commit(namespace, "again", "base")
        with pytest.raises(errdefs.NotFound):
            await snapshotter.commit(namespace, "never", "missing")

    async def test_mounts(self, snapshotter: Snapshotter, namespace: str) -> None:
        """Mounts answers what prepare did; a committed snapshot does not mount."""
        prepared = await snapshotter.prepare(namespace, "a")
        assert await snapshotter.mounts(namespace, "a") == prepared
        await snapshotter.commit(namespace, "a-c", "a")
        with pytest.raises(errdefs.FailedPrecondition):
            await snapshotter.mounts(namespace, "a-c")
        with pytest.raises(errdefs.NotFound):
            await snapshotter.mounts(namespace, "a")
        viewed = await snapshotter.view(namespace, "v", "a-c")
        assert await snapshotter.mounts(namespace, "v") == viewed

    async def test_remove_rules(self, snapshotter: Snapshotter, namespace: str) -> None:
        """A parent cannot be removed while it has children; then it can, and is gone."""
        await commit_layer(snapshotter, namespace, "base", "", {"f": b"1"})
        await commit_layer(snapshotter, namespace, "mid", "base", {"g": b"2"})
        await snapshotter.view(namespace, "look", "mid")
        for key in ("base", "mid"):
            with pytest.raises(errdefs.FailedPrecondition):
                await snapshotter.remove(namespace, key)
        for key in ("look", "mid", "base"):
            await snapshotter.remove(namespace, key)
            with pytest.raises(errdefs.NotFound):
                await snapshotter.stat(namespace, key)
        with pytest.raises(errdefs.NotFound):
            await snapshotter.remove(namespace, "base")
        assert [info async for info in snapshotter.walk(namespace)] == []

    async def test_remove_intermediate_after_children(
        self, snapshotter: Snapshotter, namespace: str
    ) -> None:
        """Containerd's RemoveIntermediateSnapshot: remove top-down, each mount still right."""
        await commit_layer(snapshotter, namespace, "l1", "", {"one": b"1"})
        await commit_layer(snapshotter, namespace, "l2", "l1", {"two": b"2"})
        await commit_layer(snapshotter, namespace, "l3", "l2", {"three": b"3"})
        async with mounted(await snapshotter.view(namespace, "v3", "l3")) as root:
            assert set(read_tree(root)) == {"one", "two", "three"}
        await snapshotter.remove(namespace, "v3")
        await snapshotter.remove(namespace, "l3")
        async with mounted(await snapshotter.view(namespace, "v2", "l2")) as root:
            assert set(read_tree(root)) == {"one", "two"}

    async def test_rebase(self, snapshotter: Snapshotter, namespace: str) -> None:
        """Where layers are independent, a layer made without parent commits onto one."""
        await snapshotter.prepare(namespace, "lower-active")
        upper = await snapshotter.prepare(namespace, "upper-active")
        if not snapshotter.can_rebase:
            with pytest.raises(errdefs.FailedPrecondition):
                await snapshotter.commit(namespace, "upper", "upper-active", parent="")
            return
        async with mounted(await snapshotter.mounts(namespace, "lower-active")) as root:
            (root / "low").write_bytes(b"low")
        async with mounted(upper) as root:
            (root / "up").write_bytes(b"up")
        await snapshotter.commit(namespace, "lower", "lower-active")
        with pytest.raises(errdefs.NotFound):
            await snapshotter.commit(namespace, "upper", "upper-active", parent="missing")
        await snapshotter.commit(namespace, "upper", "upper-active", parent="lower")
        assert (await snapshotter.stat(namespace, "upper")).parent == "lower"
        async with mounted(await snapshotter.view(namespace, "v", "upper")) as root:
            assert read_tree(root) == {"low": b"low", "up": b"up"}
        with pytest.raises(errdefs.FailedPrecondition):
            await snapshotter.remove(namespace, "lower")

    async def test_restart_keeps_everything(
        self, snapshotter: Snapshotter, namespace: str, restart: Restart
    ) -> None:
        """Records and trees survive a restart."""
        await commit_layer(snapshotter, namespace, "base", "", {"f": b"kept"}, {"l": "1"})
        await snapshotter.prepare(namespace, "work", "base")
        before = [info async for info in snapshotter.walk(namespace)]
        snapshotter = await restart()
        assert [info async for info in snapshotter.walk(namespace)] == before
        async with mounted(await snapshotter.mounts(namespace, "work")) as root:
            assert read_tree(root) == {"f": b"kept"}
