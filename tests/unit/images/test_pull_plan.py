"""Which manifests a pull takes from an index, and the labels that tie an image together."""

from __future__ import annotations

import pytest

from flotilla.common import errdefs
from flotilla.images import labels, oci
from flotilla.images.platforms import Platform, only
from flotilla.images.pull import plan
from flotilla.images.pull.progress import BlobProgress, State, Tracker

ROOT = oci.Descriptor(media_type=oci.OCI_INDEX, digest="sha256:" + "0" * 64, size=10)


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def entry(
    n: int, arch: str, variant: str = "", media_type: str = oci.OCI_MANIFEST
) -> oci.Descriptor:
    platform = oci.Platform(architecture=arch, os="linux", variant=variant)
    return oci.Descriptor(media_type=media_type, digest=digest(n), size=100, platform=platform)


INDEX = oci.Index(
    schema_version=2,
    manifests=[
        entry(1, "arm", "v6"),
        entry(2, "arm", "v7"),
        entry(3, "amd64"),
        entry(4, "arm64"),
        oci.Descriptor(media_type="application/vnd.example+json", digest=digest(5), size=1),
    ],
)


def test_the_best_manifest_for_a_platform() -> None:
    chosen = plan.select_manifests(INDEX, ROOT, [only(Platform("linux", "arm", "v7"))])
    assert [d.digest for d in chosen] == [digest(2)]


def test_an_older_variant_when_the_exact_one_is_missing() -> None:
    index = oci.Index(schema_version=2, manifests=[entry(1, "arm", "v6"), entry(3, "amd64")])
    chosen = plan.select_manifests(index, ROOT, [only(Platform("linux", "arm64"))])
    assert [d.digest for d in chosen] == [digest(1)]


def test_several_platforms_and_all() -> None:
    wanted = [only(Platform("linux", "amd64")), only(Platform("linux", "arm64"))]
    assert [d.digest for d in plan.select_manifests(INDEX, ROOT, wanted)] == [digest(3), digest(4)]
    every = plan.select_manifests(INDEX, ROOT, None)
    assert [d.digest for d in every] == [digest(n) for n in (1, 2, 3, 4)]


def test_no_manifest_for_the_platform_names_it() -> None:
    with pytest.raises(errdefs.NotFound, match="linux/s390x"):
        plan.select_manifests(INDEX, ROOT, [only(Platform("linux", "s390x"))])


def test_labels_as_containerd_sets_them() -> None:
    manifest = oci.Manifest(
        schema_version=2,
        config=oci.Descriptor(media_type=oci.OCI_CONFIG, digest=digest(9), size=5),
        layers=[entry(7, "amd64", media_type=oci.OCI_LAYER_GZIP), entry(8, "amd64")],
    )
    assert labels.manifest_labels(manifest.config, manifest.layers) == {
        "containerd.io/gc.ref.content.config": digest(9),
        "containerd.io/gc.ref.content.l.0": digest(7),
        "containerd.io/gc.ref.content.l.1": digest(8),
    }
    assert labels.index_labels([entry(3, "amd64")]) == {
        "containerd.io/gc.ref.content.m.0": digest(3)
    }
    assert labels.config_labels("overlayfs", digest(1)) == {
        "containerd.io/gc.ref.snapshot.overlayfs": digest(1)
    }
    assert labels.source_labels("127.0.0.1:5000", "library/busybox") == {
        "containerd.io/distribution.source.127.0.0.1:5000": "library/busybox"
    }


def test_progress_reports_every_state_and_throttles_bytes() -> None:
    seen: list[BlobProgress] = []
    tracker = Tracker(seen.append, interval=3600)
    tracker.report(digest(1), oci.OCI_LAYER_GZIP, State.WAITING, 0, 10)
    tracker.report(digest(1), oci.OCI_LAYER_GZIP, State.DOWNLOADING, 1, 10)
    tracker.report(digest(1), oci.OCI_LAYER_GZIP, State.DOWNLOADING, 5, 10)
    tracker.report(digest(1), oci.OCI_LAYER_GZIP, State.DONE, 10, 10)
    assert [(p.state, p.offset) for p in seen] == [
        (State.WAITING, 0),
        (State.DOWNLOADING, 1),
        (State.DONE, 10),
    ]
