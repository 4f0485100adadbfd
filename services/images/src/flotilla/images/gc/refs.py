"""What an object refers to, as containerd's collector reads it.

- Labels: ``containerd.io/gc.ref.content[.<anything>]`` names a blob by digest;
  ``containerd.io/gc.ref.snapshot.<snapshotter>[/<anything>]`` a snapshot by key;
  ``containerd.io/gc.root`` makes the object a root itself.
- Manifests and indexes (OCI and Docker media types): their config, layers and manifests.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Final, NamedTuple

import msgspec

from flotilla.images import oci

__all__ = [
    "CONTENT_REF",
    "MANIFEST_TYPES",
    "ROOT",
    "SNAPSHOT_REF",
    "BlobRef",
    "SnapshotRef",
    "children",
    "is_root",
    "label_refs",
]

ROOT: Final = "containerd.io/gc.root"
CONTENT_REF: Final = "containerd.io/gc.ref.content"
SNAPSHOT_REF: Final = "containerd.io/gc.ref.snapshot."

MANIFEST_TYPES: Final = oci.MANIFEST_TYPES | oci.INDEX_TYPES
"""Blobs whose JSON names other blobs; read and followed by the mark."""

MAX_MANIFEST: Final = oci.MAX_DOCUMENT
"""containerd's limit on a manifest's size; a larger one is not read (its children are not
followed: they stay only if labels or leases keep them)."""


class BlobRef(NamedTuple):
    """A blob in a namespace; ``media_type`` when the reference said it."""

    namespace: str
    digest: str
    media_type: str = ""


class SnapshotRef(NamedTuple):
    """A snapshot by snapshotter and key in a namespace."""

    namespace: str
    snapshotter: str
    key: str


def is_root(labels: Mapping[str, str]) -> bool:
    """Whether the labels make their object a root."""
    return ROOT in labels


def label_refs(namespace: str, labels: Mapping[str, str]) -> Iterator[BlobRef | SnapshotRef]:
    """The blobs and snapshots ``labels`` refer to."""
    for key, value in labels.items():
        if key == CONTENT_REF or key.startswith(CONTENT_REF + "."):
            yield BlobRef(namespace, value)
        elif key.startswith(SNAPSHOT_REF):
            snapshotter = key[len(SNAPSHOT_REF) :].split("/", 1)[0]
            if snapshotter:
                yield SnapshotRef(namespace, snapshotter, value)


class _Child(msgspec.Struct):
    digest: str = ""
    mediaType: str = ""  # noqa: N815 - the JSON's name


class _Listing(msgspec.Struct):
    config: _Child | None = None
    layers: list[_Child] = []
    manifests: list[_Child] = []


_listing: Final = msgspec.json.Decoder(_Listing)


def children(namespace: str, blob: bytes) -> list[BlobRef]:
    """The blobs a manifest or index names (none when ``blob`` is not one)."""
    try:
        listing = _listing.decode(blob)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return []
    found = [listing.config] if listing.config else []
    found += listing.layers + listing.manifests
    return [BlobRef(namespace, child.digest, child.mediaType) for child in found if child.digest]
