"""``ctr images import``'s core: an image tarball's blobs into a content store.

The archive is an OCI image layout (``oci-layout``, ``index.json``, ``blobs/<alg>/<hex>``) or a
``docker save`` tarball (``manifest.json``), plain or gzip-compressed; a tarball with both (as
``docker save`` since Docker 25 and :func:`~flotilla.images.archive.exporter.export_archive`
write) is read as the OCI layout, as containerd does.

It is read twice, in a worker thread: once to see every entry and keep the small JSON
documents (:mod:`~flotilla.images.archive.entries`), so the whole image is checked before
anything is written (:mod:`~flotilla.images.archive.layout`,
:mod:`~flotilla.images.archive.docker`); then once more, in archive order, to stream the
blobs the images need into the store (:mod:`~flotilla.images.archive.ingest`). Unlike
containerd, blobs no image of the archive names are not written.

Nothing of a failed import stays visible: :func:`import_archive` writes blobs only, and aborts
any ingest it leaves uncommitted. The caller holds a lease around it, so the blobs it did
commit are collected unless the caller then creates the image records, which it does only on
success.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final

from flotilla.common.errdefs import InvalidArgument
from flotilla.content.store import Store
from flotilla.images import oci
from flotilla.images.archive.docker import DockerImage, layer_media_type, manifest_of, plan_docker
from flotilla.images.archive.entries import Catalog, scan
from flotilla.images.archive.ingest import Ingest
from flotilla.images.archive.layout import plan_layout
from flotilla.images.platforms import Matcher

__all__ = ["Imported", "import_archive"]

_NO_LABELS: Final[Mapping[str, str]] = MappingProxyType({})


@dataclass(frozen=True)
class Imported:
    """What an import wrote.

    Attributes:
        images: each image name and its target (an index or a manifest), in archive order.
        blobs: every blob the images need, written or already in the namespace.
    """

    images: list[tuple[str, oci.Descriptor]]
    blobs: list[oci.Descriptor]


async def import_archive(
    path: Path,
    store: Store,
    namespace: str,
    *,
    labels: Mapping[str, str] = _NO_LABELS,
    base_name: str = "",
    platforms: Matcher | None = None,
) -> Imported:
    """Write the images of the tarball at ``path`` into ``store``; see the module docstring.

    The caller holds a lease on ``namespace`` around the call and creates the image records
    from :attr:`Imported.images` only when it returns.

    Args:
        path: the tarball.
        store: the content store (the node's, or the service proxy).
        namespace: where the blobs go.
        labels: labels every imported blob gets, besides its gc labels.
        base_name: joined to an OCI entry named by a bare tag (``<base>:<tag>``), as
            ``ctr images import --base-name``; without it such entries get no name.
        platforms: of an index, import the manifests for these platforms (all must be in
            the archive); without it, every manifest that is in the archive.

    Returns:
        The names and targets of the images, and the blobs.

    Raises:
        NotFound: no file at ``path``, or a blob an image needs is not in the archive.
        InvalidArgument: not a tar archive, truncated or corrupt, an entry that leaves the
            archive's root, an unknown format, a bad or oversized document, a blob whose
            bytes are not what its digest says; the message names the entry or the blob.
        PermissionDenied: the tarball cannot be read.
        ResourceExhausted: the archive's JSON documents are too many to keep in memory.
    """
    catalog = await asyncio.to_thread(scan, Path(path))
    try:
        ingest = Ingest(store, namespace, catalog, labels)
        if "oci-layout" in catalog.docs:
            imported = await _import_layout(catalog, ingest, base_name, platforms)
        elif "manifest.json" in catalog.docs:
            imported = await _import_docker(catalog, ingest)
        else:
            raise InvalidArgument(
                f"{path}: unknown format: neither an OCI image layout (oci-layout) nor a "
                "docker save tarball (manifest.json)"
            )
        await ingest.relabel()
        return imported
    finally:
        await asyncio.to_thread(catalog.close)


async def _import_layout(
    catalog: Catalog, ingest: Ingest, base_name: str, platforms: Matcher | None
) -> Imported:
    plan = await asyncio.to_thread(plan_layout, catalog, base_name=base_name, platforms=platforms)
    blobs = []
    for blob in plan.in_archive_order():
        await ingest.blob(blob)
        assert blob.desc is not None  # a layout names every blob by digest
        blobs.append(blob.desc)
    return Imported(plan.images, blobs)


async def _import_docker(catalog: Catalog, ingest: Ingest) -> Imported:
    plan, images = await asyncio.to_thread(plan_docker, catalog)
    blobs = []
    for blob in plan.in_archive_order():
        check = functools.partial(_check_layer, entry=f"{catalog.path}: {blob.entry}")
        written = await ingest.blob(blob, check)
        if blob.desc is None:
            media_type = layer_media_type(written.head, blob.entry)
            blob.desc = oci.Descriptor(
                media_type=media_type, digest=written.digest, size=written.size
            )
        blobs.append(blob.desc)
    named: list[tuple[str, oci.Descriptor]] = []
    for image in images:
        desc = await _write_manifest(ingest, image)
        if desc not in blobs:
            blobs.append(desc)
        named.extend((name, desc) for name in image.names)
    return Imported(named, blobs)


def _check_layer(head: bytes, *, entry: str) -> None:
    layer_media_type(head, entry)


async def _write_manifest(ingest: Ingest, image: DockerImage) -> oci.Descriptor:
    data, desc, labels = manifest_of(image)
    await ingest.data(data, desc, labels, "manifest.json")
    return desc
