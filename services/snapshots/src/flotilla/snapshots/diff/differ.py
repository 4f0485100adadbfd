"""The diff ports, as containerd's ``core/diff``: an ``Applier`` and a ``Comparer``.

Layers are read from, and written to, the node's content store; a layer is named by an OCI
:class:`Descriptor`. Media types are OCI's and Docker's (gzip, zstd and uncompressed tars).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

from flotilla.common.mounts import Mount

__all__ = [
    "DOCKER_LAYER_GZIP",
    "DOCKER_LAYER_TAR",
    "LAYER_GZIP",
    "LAYER_TAR",
    "LAYER_ZSTD",
    "UNCOMPRESSED_LABEL",
    "Applier",
    "BlobPath",
    "Comparer",
    "Descriptor",
    "IngestPath",
]

LAYER_TAR: Final = "application/vnd.oci.image.layer.v1.tar"
LAYER_GZIP: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_ZSTD: Final = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_LAYER_TAR: Final = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP: Final = "application/vnd.docker.image.rootfs.diff.tar.gzip"
UNCOMPRESSED_LABEL: Final = "containerd.io/uncompressed"
"""The label a computed layer's blob carries: the digest of its uncompressed tar (diffID)."""

BlobPath = Callable[[str, str], Awaitable[Path]]
"""``(namespace, digest) -> path``: where a blob the namespace sees lies on this node's disk
(content's ``blob_path`` locally, ``ContentProxy.local_path`` from another process)."""

IngestPath = Callable[[str, str], Awaitable[tuple[Path, str]]]
"""``(namespace, ref) -> (path, file_id)``: where an ingest's data file lies on this node, and
its ``<device>:<inode>`` (``ContentProxy.ingest_path``); NotFound while there is no such ingest."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Descriptor:
    """An OCI content descriptor.

    Attributes:
        media_type: what the bytes are (e.g. :data:`LAYER_GZIP`).
        digest: ``sha256:<hex>`` of the bytes.
        size: their length.
        annotations: free-form metadata.
    """

    media_type: str
    digest: str
    size: int = 0
    annotations: Mapping[str, str] = field(default_factory=dict)


class Applier(Protocol):
    """containerd's ``diff.Applier``: unpack a layer onto mounts."""

    async def apply(
        self,
        namespace: str,
        layer: Descriptor,
        mounts: Sequence[Mount],
        *,
        diff_id: str = "",
        ref: str = "",
    ) -> Descriptor:
        """Unpack the blob ``layer`` (from the namespace's content) onto ``mounts``.

        Args:
            namespace: whose content holds the layer.
            layer: the layer blob (tar, gzip or zstd; OCI or Docker media type).
            mounts: an active snapshot's mounts, as a snapshotter answered them.
            diff_id: when given, the digest the uncompressed tar must have.
            ref: the content ingest the layer's bytes are still arriving in, if they are.
                Unless the blob is committed already, the ingest's file is read as it grows
                (waiting a while for the ingest to appear) up to ``layer.size`` bytes; the
                ingest's commit, not the applier, verifies those bytes' digest.

        Returns:
            The uncompressed tar's descriptor (:data:`LAYER_TAR`, its digest = the diffID,
            its size).

        Raises:
            NotFound: the namespace has no such blob.
            InvalidArgument: an unknown media type; a malformed, truncated or corrupt
                stream; an entry that would touch anything outside the root (named).
            FailedPrecondition: the uncompressed digest is not ``diff_id``.
            ResourceExhausted: the layer unpacks to more than the configured limit, or the
                disk is full.
            Aborted: (with ``ref``) the ingest was aborted before all the bytes arrived.
            DeadlineExceeded: (with ``ref``) neither the blob nor the ingest appeared, or no
                new bytes arrived, for the configured idle limit.
        """
        ...


class Comparer(Protocol):
    """containerd's ``diff.Comparer``: the changes between two trees, as a layer."""

    async def compare(
        self,
        namespace: str,
        lower: Sequence[Mount],
        upper: Sequence[Mount],
        *,
        media_type: str = LAYER_GZIP,
        ref: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> Descriptor:
        """Write the changes from ``lower`` to ``upper`` into the content store as a layer.

        Args:
            namespace: whose content store receives the layer.
            lower: the parent's mounts (empty: compare against an empty tree).
            upper: the changed tree's mounts.
            media_type: :data:`LAYER_GZIP` (default) or :data:`LAYER_TAR`.
            ref: the content ingest's ref; a unique one when empty.
            labels: labels of the committed blob; :data:`UNCOMPRESSED_LABEL` is added.

        Returns:
            The committed layer's descriptor.
        """
        ...
