"""Image tarballs into and out of a node: ``ctr images import`` and ``export`` with the records.

An import writes the tarball's blobs (:func:`~flotilla.images.archive.import_archive`) under
a lease that holds each blob before it is committed, then makes each image as a pull would, from
the node's content store instead of a registry: the platform's manifests are read, the layers
unpacked into snapshots, containerd's labels set and the record created or updated. A tarball
refused half-way leaves no record, and its blobs only to the collector.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path

from flotilla.common import errdefs
from flotilla.content.store import Store
from flotilla.images import oci, reference
from flotilla.images.archive import export_archive, import_archive
from flotilla.images.lease import temporary_lease
from flotilla.images.leased import LeasedStore
from flotilla.images.platforms import Matcher
from flotilla.images.pull.puller import Pulled, Puller, PullOptions
from flotilla.metadata import Metadata

__all__ = ["Transfers", "StoredImage", "combined"]


def combined(matchers: Sequence[Matcher] | None) -> Matcher | None:
    """One matcher for every platform of ``matchers`` (``None``: every platform)."""
    if matchers is None:
        return None
    platforms = [platform for matcher in matchers for platform in matcher.platforms]
    return Matcher(tuple(dict.fromkeys(platforms)))


class StoredImage:
    """An image already in a node's content store, read as a pull reads a registry."""

    def __init__(self, store: Store, namespace: str, target: oci.Descriptor) -> None:
        self._store = store
        self._namespace = namespace
        self._target = target

    async def resolve(self, reference: str) -> oci.Descriptor:
        """The imported target, whatever the reference."""
        return self._target

    async def fetch_document(self, desc: oci.Descriptor) -> bytes:
        """Never needed: the puller reads documents from the store first."""
        raise errdefs.NotFound(f"{desc.media_type} {desc.digest} is not in the archive")

    @contextlib.asynccontextmanager
    async def fetch(
        self, desc: oci.Descriptor, offset: int = 0
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """Never needed: the import wrote every blob."""
        raise errdefs.NotFound(f"{desc.media_type} {desc.digest} is not in the archive")
        yield  # pragma: no cover - a generator, for the context manager


class Transfers:
    """Imports and exports image tarballs on one node's content store."""

    def __init__(self, metadata: Metadata, store: Store, puller: Puller) -> None:
        self._metadata = metadata
        self._store = store
        self._puller = puller

    async def import_archive(
        self, namespace: str, path: Path, options: PullOptions, *, base_name: str = ""
    ) -> list[Pulled]:
        """Import the tarball at ``path``; each image as recorded, in archive order.

        ``options.matchers``: the platforms to unpack (and, when given, the ones an index
        must hold); every platform present when ``None``.

        Raises:
            InvalidArgument: a malformed tarball, an entry escaping it, a blob not matching
                its digest or a layer its diffID.
            NotFound: a blob the tarball's manifests name is not in it.
        """
        options = replace(options, from_registry=False)
        async with temporary_lease(self._metadata, namespace, "import") as holder:
            store = LeasedStore(self._store, holder.blob)
            imported = await import_archive(
                path, store, namespace, base_name=base_name, platforms=combined(options.matchers)
            )
            return [
                await self._puller.pull(
                    namespace,
                    reference.parse(name),
                    StoredImage(self._store, namespace, target),
                    options,
                )
                for name, target in imported.images
            ]

    async def export_archive(
        self,
        namespace: str,
        path: Path,
        names: Sequence[str],
        *,
        matchers: Sequence[Matcher] | None = None,
        docker_manifest: bool = True,
    ) -> int:
        """Write the named images to a tarball at ``path``; its size.

        Raises:
            NotFound: an image, or a blob one of them needs.
        """
        if not names:
            raise errdefs.InvalidArgument("export: name at least one image")
        images = []
        for name in names:
            record = await self._metadata.images.get(namespace, name)
            images.append((name, oci.descriptor_of(record.target)))
        await export_archive(
            path,
            self._store,
            namespace,
            images,
            platforms=combined(matchers),
            docker_manifest=docker_manifest,
        )
        return (await asyncio.to_thread(path.stat)).st_size
