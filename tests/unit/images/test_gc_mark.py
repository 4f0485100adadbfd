"""The collector's pure core: references, the mark and the sweep's plan, on made-up inventories."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from flotilla.images.gc.inventory import Blob, Inventory, LeaseHolding, Records, Snapshot
from flotilla.images.gc.mark import mark
from flotilla.images.gc.refs import BlobRef, SnapshotRef, children, label_refs
from flotilla.images.gc.sweep import plan
from flotilla.metadata import Descriptor, Image, Lease, Resource

NS = "ns"
OLD = datetime(2020, 1, 1, tzinfo=UTC)
NOW = datetime.now(UTC)
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def blob(digest: str, **labels: str) -> Blob:
    return Blob(NS, digest, 1, labels, OLD, OLD)


def snap(key: str, parent: str = "", **labels: str) -> Snapshot:
    return Snapshot(NS, "overlayfs", key, parent, labels, OLD, OLD)


def test_label_refs() -> None:
    labels = {
        "containerd.io/gc.ref.content": "sha256:a",
        "containerd.io/gc.ref.content.l.0": "sha256:b",
        "containerd.io/gc.ref.snapshot.overlayfs": "chain",
        "containerd.io/gc.ref.snapshot.native/1": "other",
        "containerd.io/gc.ref.snapshot.": "no snapshotter",
        "unrelated": "x",
    }
    assert sorted(label_refs(NS, labels), key=repr) == sorted(
        [
            BlobRef(NS, "sha256:a"),
            BlobRef(NS, "sha256:b"),
            SnapshotRef(NS, "overlayfs", "chain"),
            SnapshotRef(NS, "native", "other"),
        ],
        key=repr,
    )


def test_children_of_manifests_and_indexes_and_of_garbage() -> None:
    manifest = {
        "config": {"mediaType": "c", "digest": "sha256:c"},
        "layers": [{"mediaType": "l", "digest": "sha256:l"}],
    }
    assert children(NS, json.dumps(manifest).encode()) == [
        BlobRef(NS, "sha256:c", "c"),
        BlobRef(NS, "sha256:l", "l"),
    ]
    index = {"manifests": [{"mediaType": MANIFEST, "digest": "sha256:m"}]}
    assert children(NS, json.dumps(index).encode()) == [BlobRef(NS, "sha256:m", MANIFEST)]
    assert children(NS, b"\x00 not json") == []
    assert children(NS, b'{"layers": 7}') == []


async def test_mark_follows_manifests_labels_parents_and_leases() -> None:
    manifest = json.dumps(
        {"config": {"mediaType": "c", "digest": "sha256:config"}, "layers": []}
    ).encode()
    inventory = Inventory(
        blobs={
            "n1": [
                blob("sha256:manifest"),
                blob("sha256:config", **{"containerd.io/gc.ref.snapshot.overlayfs": "top"}),
                blob("sha256:orphan"),
            ],
            "n2": [blob("sha256:flat", **{"containerd.io/gc.ref.content.x": "sha256:skipped"})],
        },
        snapshots={"n1": [snap("base"), snap("top", "base"), snap("lonely")]},
    )
    records = Records(
        images=[
            (NS, Image(name="i", target=Descriptor(media_type=MANIFEST, digest="sha256:manifest")))
        ],
        leases=[
            LeaseHolding(
                NS,
                Lease(id="flat", labels={"containerd.io/gc.flat": "1"}),
                (Resource(id="sha256:flat", type="content"),),
            ),
            LeaseHolding(
                NS,
                Lease(id="gone", labels={"containerd.io/gc.expire": "2000-01-01T00:00:00Z"}),
                (Resource(id="sha256:orphan", type="content"),),
            ),
        ],
    )

    async def read(ref: BlobRef) -> bytes | None:
        return manifest if ref.digest == "sha256:manifest" else None

    marked = await mark(records, inventory, read, NOW)

    assert marked.blobs == {(NS, "sha256:manifest"), (NS, "sha256:config"), (NS, "sha256:flat")}
    assert marked.snapshots == {
        SnapshotRef(NS, "overlayfs", "top"),
        SnapshotRef(NS, "overlayfs", "base"),
    }
    assert marked.expired_leases == [(NS, "gone")]

    plans = plan(inventory, marked, NOW)
    assert [b.digest for b in plans["n1"].blobs] == ["sha256:orphan"]
    assert [s.key for s in plans["n1"].snapshots] == ["lonely"]
    assert plans["n2"].blobs == []


def test_plan_removes_children_first_and_spares_what_is_new() -> None:
    fresh = Snapshot(NS, "overlayfs", "fresh", "", {}, NOW + timedelta(seconds=1), NOW)
    inventory = Inventory(
        blobs={"n": [Blob(NS, "sha256:new", 1, {}, OLD, NOW + timedelta(seconds=1))]},
        snapshots={"n": [snap("a"), snap("c", "b"), snap("b", "a"), fresh]},
    )
    from flotilla.images.gc.mark import Marked

    plans = plan(inventory, Marked(), NOW)
    assert [s.key for s in plans["n"].snapshots] == ["c", "b", "a"]
    assert plans["n"].blobs == []
