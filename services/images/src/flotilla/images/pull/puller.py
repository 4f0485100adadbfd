"""containerd's pull: resolve a reference, fetch what the platforms need, unpack, record.

The root descriptor is resolved on the registry; indexes and manifests are read (from the
node's content store when it has them, else from the registry, verified and at most 4 MiB),
the platforms' manifests chosen, every blob written into the node's content store with
containerd's labels, the layers unpacked as they arrive, and the image record created (or its
target updated) in the namespace. A lease holds every blob and snapshot of the pull from the
collector until the record exists; it is removed afterwards, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from flotilla.common import errdefs
from flotilla.common.tasks import first_error
from flotilla.content.helpers import read_blob
from flotilla.content.store import Store
from flotilla.images import oci
from flotilla.images.labels import config_labels, index_labels, manifest_labels, source_labels
from flotilla.images.lease import Holder, temporary_lease
from flotilla.images.platforms import Matcher, default, only
from flotilla.images.pull import plan
from flotilla.images.pull.blobs import BlobSource, store_document
from flotilla.images.pull.progress import State, Tracker
from flotilla.images.pull.unpack import LayerSet, fetch_and_unpack
from flotilla.images.reference import Reference
from flotilla.metadata import Metadata
from flotilla.metadata.records import Descriptor as RecordDescriptor
from flotilla.metadata.records import Image
from flotilla.snapshots.diff.differ import Applier
from flotilla.snapshots.rootfs import chain_ids
from flotilla.snapshots.snapshotter import Snapshotter

__all__ = ["UNPACKED_LABEL", "PullOptions", "Pulled", "Puller", "Remote", "Unpacker"]

UNPACKED_LABEL: Final = "flotilla.io/unpacked."
"""``flotilla.io/unpacked.<node>`` = snapshotter: the nodes that hold the image unpacked."""


class Remote(BlobSource, Protocol):
    """One repository on a registry."""

    async def resolve(self, reference: str) -> oci.Descriptor:
        """The descriptor a tag or digest names."""
        ...

    async def fetch_document(self, desc: oci.Descriptor) -> bytes:
        """A manifest, index or config, verified, at most :data:`oci.MAX_DOCUMENT` bytes."""
        ...


@dataclass(frozen=True)
class Unpacker:
    """Where a pull unpacks: the node's snapshotter (by name) and its diff service."""

    snapshotter: Snapshotter
    name: str
    applier: Applier
    node: str


@dataclass(frozen=True)
class PullOptions:
    """How to pull.

    Attributes:
        matchers: one per wanted platform; ``None`` pulls every platform of an index.
        unpack: where to unpack, or ``None`` to fetch only.
        downloads: layers downloaded at once.
        labels: the image record's labels.
        from_registry: label blobs with the registry they came from (not for imports).
    """

    matchers: Sequence[Matcher] | None
    unpack: Unpacker | None = None
    downloads: int = 3
    labels: Mapping[str, str] = field(default_factory=dict)
    from_registry: bool = True


@dataclass(frozen=True)
class Pulled:
    """A pulled image and what the pull did."""

    image: Image
    chain_ids: tuple[str, ...] = ()
    created: bool = True


@dataclass
class _Pull:
    namespace: str
    reference: Reference
    remote: Remote
    options: PullOptions
    tracker: Tracker
    holder: Holder
    chains: list[str] = field(default_factory=list)

    @property
    def source(self) -> dict[str, str]:
        if not self.options.from_registry:
            return {}
        return source_labels(self.reference.domain, self.reference.path)


_NATIVE: Final = only(default())


def _unpacked(pull: _Pull, child: oci.Descriptor, unpack: Unpacker | None) -> Unpacker | None:
    """Where an index's manifest is unpacked (``None``: it is only fetched).

    A manifest chosen for a wanted platform is unpacked; pulling every platform, only those
    this node runs are, as containerd unpacks only its own platform's.
    """
    if unpack is None or pull.options.matchers is not None or child.platform is None:
        return unpack
    return unpack if _NATIVE.match(child.platform.spec()) else None


def _resolved(reference: Reference, root: oci.Descriptor) -> oci.Descriptor:
    """``root``, if it is what a reference by digest asked for."""
    if reference.digest and root.digest != reference.digest:
        raise errdefs.FailedPrecondition(
            f"{reference}: the registry answered {root.digest} for {reference.digest}"
        )
    return root


class Puller:
    """Pulls images into one node's content store (and snapshots) and the cluster records."""

    def __init__(self, metadata: Metadata, store: Store) -> None:
        self._metadata = metadata
        self._store = store

    async def pull(
        self,
        namespace: str,
        reference: Reference,
        remote: Remote,
        options: PullOptions,
        tracker: Tracker | None = None,
    ) -> Pulled:
        """Pull ``reference`` from ``remote`` into ``namespace``.

        Raises:
            NotFound: the registry has no such reference, or no manifest for the platform.
            InvalidArgument: a malformed or oversized manifest, index or config.
            FailedPrecondition: a blob whose bytes do not match its digest.
            Unavailable: the registry could not be reached, or kept failing.
        """
        resolving = asyncio.ensure_future(remote.resolve(reference.object))  # beside the lease
        try:
            async with temporary_lease(self._metadata, namespace, "pull") as holder:
                root = _resolved(reference, await resolving)
                pull = _Pull(namespace, reference, remote, options, tracker or Tracker(), holder)
                await self._walk(pull, root, options.unpack)
                return await self._record(pull, root)
        finally:
            resolving.cancel()

    async def _walk(self, pull: _Pull, desc: oci.Descriptor, unpack: Unpacker | None) -> None:
        if oci.is_index(desc.media_type):
            await self._index(pull, desc, unpack)
        elif oci.is_manifest(desc.media_type):
            await self._manifest(pull, desc, unpack)
        else:
            raise errdefs.InvalidArgument(
                f"{pull.reference}: {desc.digest} has media type {desc.media_type!r}, "
                "neither an index nor a manifest"
            )

    async def _document(self, pull: _Pull, desc: oci.Descriptor) -> bytes:
        """A small blob's bytes: from the node's content store if there, else the registry.

        The lease takes the blob while it is read (before anything commits it).
        """
        oci.check_document_size(desc)
        holding = asyncio.ensure_future(pull.holder.blob(desc.digest))
        try:
            data = await self._read_document(pull, desc)
        finally:
            await holding
        return data

    async def _read_document(self, pull: _Pull, desc: oci.Descriptor) -> bytes:
        with contextlib.suppress(errdefs.NotFound):
            return await read_blob(self._store, pull.namespace, desc.digest)
        pull.tracker.report(desc.digest, desc.media_type, State.DOWNLOADING, 0, desc.size)
        return await pull.remote.fetch_document(desc)

    async def _index(self, pull: _Pull, desc: oci.Descriptor, unpack: Unpacker | None) -> None:
        data = await self._document(pull, desc)
        index = oci.decode_index(data, desc)
        children = plan.select_manifests(index, desc, pull.options.matchers)
        with first_error():
            async with asyncio.TaskGroup() as group:
                for child in children:
                    group.create_task(self._walk(pull, child, _unpacked(pull, child, unpack)))
        found = {**index_labels(children), **pull.source}
        await store_document(self._store, pull.namespace, desc, data, found)
        pull.tracker.report(desc.digest, desc.media_type, State.DONE, desc.size, desc.size)

    async def _manifest(self, pull: _Pull, desc: oci.Descriptor, unpack: Unpacker | None) -> None:
        data = await self._document(pull, desc)
        manifest = oci.decode_manifest(data, desc)
        config_data = await self._document(pull, manifest.config)
        config = oci.decode_config(config_data, manifest.config, len(manifest.layers))
        layer_set = LayerSet(manifest.layers, config.rootfs.diff_ids, pull.source)
        store, namespace = self._store, pull.namespace
        own = {**manifest_labels(manifest.config, manifest.layers), **pull.source}
        config_own = dict(pull.source)
        if unpack is not None:  # the snapshot the unpack makes (chain IDs are known)
            top = chain_ids(list(config.rootfs.diff_ids))[-1]
            config_own.update(config_labels(unpack.name, top))
        # The documents are stored while the layers arrive: the lease holds them all.
        with first_error():
            async with asyncio.TaskGroup() as group:
                group.create_task(store_document(store, namespace, desc, data, own))
                group.create_task(
                    store_document(store, namespace, manifest.config, config_data, config_own)
                )
                layers = group.create_task(self._layers(pull, layer_set, unpack))
        if chain := layers.result():
            pull.chains.append(chain)
        for done in (manifest.config, desc):
            pull.tracker.report(done.digest, done.media_type, State.DONE, done.size, done.size)

    async def _layers(self, pull: _Pull, layer_set: LayerSet, unpacker: Unpacker | None) -> str:
        held = [pull.holder.blob(layer.digest) for layer in layer_set.layers]
        unpack, before_prepare = None, None
        if unpacker is not None:
            kind = f"snapshots/{unpacker.name}"
            chains = chain_ids(list(layer_set.diff_ids))
            held += [pull.holder.resource(kind, chain) for chain in chains]
            unpack = (unpacker.snapshotter, unpacker.applier)

            async def before_prepare(key: str) -> None:
                await pull.holder.resource(kind, key)

        await asyncio.gather(*held)
        return await fetch_and_unpack(
            self._store,
            pull.namespace,
            pull.remote,
            layer_set,
            pull.tracker,
            downloads=pull.options.downloads,
            unpack=unpack,
            before_prepare=before_prepare,
        )

    async def _record(self, pull: _Pull, root: oci.Descriptor) -> Pulled:
        name = str(pull.reference)
        labels = dict(pull.options.labels)
        unpacker = pull.options.unpack
        if unpacker is not None and pull.chains:
            labels[UNPACKED_LABEL + unpacker.node] = unpacker.name
        target = RecordDescriptor(media_type=root.media_type, digest=root.digest, size=root.size)
        images = self._metadata.images
        try:
            image = await images.create(
                pull.namespace, Image(name=name, target=target, labels=labels)
            )
            return Pulled(image, tuple(pull.chains), created=True)
        except errdefs.AlreadyExists:
            pass
        current = await images.get(pull.namespace, name)
        merged = Image(name=name, target=target, labels={**current.labels, **labels})
        paths = ["target", *(f"labels.{key}" for key in labels)]
        image = await images.update(pull.namespace, merged, paths)
        return Pulled(image, tuple(pull.chains), created=False)
