"""Conformance cases for records: labels, walk filters, usage, namespaces and events."""

from __future__ import annotations

import asyncio

import pytest

from flotilla.common import errdefs
from flotilla.snapshots import events as events_module
from flotilla.snapshots.snapshotter import Info, Kind, Snapshotter
from flotilla.snapshots.testsuite.support import commit_layer, mounted
from flotilla.testkit.suite import EventLog, expect_event

__all__ = ["RecordCases"]

MIB = 1 << 20
_BATCH = 16  # prepares at once: enough to overlap, never a flood of one event loop


async def _names(snapshotter: Snapshotter, namespace: str, *filters: str) -> list[str]:
    return sorted([info.name async for info in snapshotter.walk(namespace, filters)])


class RecordCases:
    """Update, Walk, Usage, namespace isolation and the events."""

    async def test_update_labels(self, snapshotter: Snapshotter, namespace: str) -> None:
        """Labels are replaced, or set and removed one by one along field paths."""
        await snapshotter.prepare(namespace, "s", labels={"a": "1", "b": "2"})
        created = await snapshotter.stat(namespace, "s")
        updated = await snapshotter.update(
            namespace, Info(name="s", kind=Kind.ACTIVE, labels={"c": "3"})
        )
        assert dict(updated.labels) == {"c": "3"}
        assert updated.updated_at >= created.updated_at
        assert updated.created_at == created.created_at
        request = Info(name="s", kind=Kind.ACTIVE, labels={"d": "4", "x": "ignored"})
        updated = await snapshotter.update(namespace, request, ["labels.d", "labels.c"])
        assert dict(updated.labels) == {"d": "4"}
        assert await snapshotter.stat(namespace, "s") == updated
        with pytest.raises(errdefs.InvalidArgument):
            await snapshotter.update(namespace, request, ["name"])
        with pytest.raises(errdefs.NotFound):
            await snapshotter.update(namespace, Info(name="missing", kind=Kind.ACTIVE))

    async def test_walk_filters(self, snapshotter: Snapshotter, namespace: str) -> None:
        """Walk applies containerd's filters: kind, name, parent, labels; alternatives ORed."""
        await commit_layer(snapshotter, namespace, "base", "", {}, {"containerd.io/gc.root": "x"})
        await snapshotter.prepare(namespace, "work", "base", {"app": "web"})
        await snapshotter.view(namespace, "look", "base", {"app": "db"})
        assert await _names(snapshotter, namespace) == ["base", "look", "work"]
        assert await _names(snapshotter, namespace, "kind==committed") == ["base"]
        assert await _names(snapshotter, namespace, "kind==active") == ["work"]
        assert await _names(snapshotter, namespace, "kind==view") == ["look"]
        assert await _names(snapshotter, namespace, "parent==base") == ["look", "work"]
        assert await _names(snapshotter, namespace, "name~=^wo") == ["work"]
        assert await _names(snapshotter, namespace, 'labels."containerd.io/gc.root"') == ["base"]
        assert await _names(snapshotter, namespace, "labels.app==web", "kind==view") == [
            "look",
            "work",
        ]
        assert await _names(snapshotter, namespace, "labels.app==web,kind==view") == []

    async def test_walk_pages(self, snapshotter: Snapshotter, namespace: str) -> None:
        """Walk yields every snapshot once, past any page size."""
        keys = [f"k{i:04d}" for i in range(300)]
        for start in range(0, len(keys), _BATCH):
            batch = keys[start : start + _BATCH]
            await asyncio.gather(*(snapshotter.prepare(namespace, key) for key in batch))
        assert await _names(snapshotter, namespace) == keys

    async def test_usage(self, snapshotter: Snapshotter, namespace: str) -> None:
        """Usage counts a layer's own blocks and inodes, and is kept at commit."""
        mounts = await snapshotter.prepare(namespace, "big")
        async with mounted(mounts) as root:
            (root / "one").write_bytes(b"\1" * MIB)
            (root / "dir").mkdir()
            (root / "dir" / "two").write_bytes(b"\2" * MIB)
        active = await snapshotter.usage(namespace, "big")
        assert active.size >= 2 * MIB
        assert active.inodes >= 3
        await snapshotter.commit(namespace, "big-c", "big")
        assert await snapshotter.usage(namespace, "big-c") == active
        await snapshotter.prepare(namespace, "small", "big-c")
        assert (
            await snapshotter.usage(namespace, "small")
        ).size < MIB or not snapshotter.can_rebase
        with pytest.raises(errdefs.NotFound):
            await snapshotter.usage(namespace, "missing")

    async def test_namespaces_isolated(
        self, snapshotter: Snapshotter, namespace: str, other_namespace: str
    ) -> None:
        """A key lives in one namespace: invisible, and free to take, in another."""
        await commit_layer(snapshotter, namespace, "base", "", {"mine": b"1"})
        with pytest.raises(errdefs.NotFound):
            await snapshotter.stat(other_namespace, "base")
        with pytest.raises(errdefs.NotFound):
            await snapshotter.prepare(other_namespace, "child", "base")
        with pytest.raises(errdefs.NotFound):
            await snapshotter.remove(other_namespace, "base")
        await commit_layer(snapshotter, other_namespace, "base", "", {"theirs": b"2"})
        assert await _names(snapshotter, other_namespace) == ["base"]
        async with mounted(await snapshotter.view(namespace, "v", "base")) as root:
            assert (root / "mine").exists()
            assert not (root / "theirs").exists()

    async def test_namespaces(
        self, snapshotter: Snapshotter, namespace: str, other_namespace: str
    ) -> None:
        """The namespaces with a snapshot of any kind, sorted; one goes with its last snapshot."""
        assert await snapshotter.namespaces() == []
        await snapshotter.prepare(namespace, "work")
        assert await snapshotter.namespaces() == [namespace]
        await snapshotter.prepare(other_namespace, "base-active")
        await snapshotter.commit(other_namespace, "base", "base-active")
        await snapshotter.view(other_namespace, "look", "base")
        assert await snapshotter.namespaces() == sorted([namespace, other_namespace])
        await snapshotter.remove(namespace, "work")
        assert await snapshotter.namespaces() == [other_namespace]
        await snapshotter.remove(other_namespace, "look")
        assert await snapshotter.namespaces() == [other_namespace]
        await snapshotter.remove(other_namespace, "base")
        assert await snapshotter.namespaces() == []

    async def test_invalid_names(self, snapshotter: Snapshotter, namespace: str) -> None:
        """An empty key, or a namespace containerd would refuse, is InvalidArgument."""
        with pytest.raises(errdefs.InvalidArgument):
            await snapshotter.prepare(namespace, "")
        with pytest.raises(errdefs.InvalidArgument):
            await snapshotter.prepare("bad/namespace", "k")

    async def test_events(self, snapshotter: Snapshotter, namespace: str, events: EventLog) -> None:
        """Prepare, Commit and Remove publish containerd's events; View publishes none."""
        name = snapshotter.name
        await snapshotter.prepare(namespace, "a")
        await expect_event(
            events,
            namespace,
            "/snapshot/prepare",
            events_module.SnapshotPrepare(key="a", parent="", snapshotter=name),
        )
        await snapshotter.commit(namespace, "a-c", "a")
        await expect_event(
            events,
            namespace,
            "/snapshot/commit",
            events_module.SnapshotCommit(key="a", name="a-c", snapshotter=name),
        )
        await snapshotter.view(namespace, "v", "a-c")
        await snapshotter.remove(namespace, "v")
        await expect_event(
            events,
            namespace,
            "/snapshot/remove",
            events_module.SnapshotRemove(key="v", snapshotter=name),
        )
        topics = [topic for ns, topic, _ in events.seen() if ns == namespace]
        assert topics == ["/snapshot/prepare", "/snapshot/commit", "/snapshot/remove"]
