"""An image manifest's layers: downloaded in parallel and unpacked as their bytes arrive.

Every layer's download starts at once behind a limit (``downloads``); the unpack
(``flotilla.snapshots.rootfs.apply_layers``, snapshots named by chain ID) runs beside them:
each layer's apply names the ingest its bytes arrive in, and the node's diff service unpacks
from that file as it grows, so a layer is extracted while it downloads, not after. A failure
anywhere cancels the rest; the temporary snapshots are removed by ``apply_layers``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from flotilla.common.mounts import Mount
from flotilla.common.tasks import first_error
from flotilla.content.store import Store
from flotilla.images import oci
from flotilla.images.labels import UNCOMPRESSED
from flotilla.images.pull.blobs import BlobSource, add_labels, fetch_blob
from flotilla.images.pull.progress import State, Tracker
from flotilla.snapshots.diff.differ import Applier, Descriptor
from flotilla.snapshots.rootfs import BeforePrepare, Layer, apply_layers
from flotilla.snapshots.snapshotter import Snapshotter

__all__ = ["LayerSet", "TrackingApplier", "fetch_and_unpack"]


@dataclass(frozen=True)
class LayerSet:
    """One manifest's layers, their diffIDs, and what each layer blob is labelled with."""

    layers: Sequence[oci.Descriptor]
    diff_ids: Sequence[str]
    labels: Mapping[str, str]

    def blob_labels(self, index: int) -> dict[str, str]:
        """Layer ``index``'s labels: its uncompressed digest and the common ones."""
        return {UNCOMPRESSED: self.diff_ids[index], **self.labels}


class TrackingApplier:
    """An :class:`Applier` that reports each layer as extracting, then done."""

    def __init__(self, inner: Applier, tracker: Tracker) -> None:
        self._inner = inner
        self._tracker = tracker

    async def apply(
        self,
        namespace: str,
        layer: Descriptor,
        mounts: Sequence[Mount],
        *,
        diff_id: str = "",
        ref: str = "",
    ) -> Descriptor:
        """Apply through the inner applier (see :meth:`.differ.Applier.apply`)."""
        report = self._tracker.report
        report(layer.digest, layer.media_type, State.EXTRACTING, 0, layer.size)
        done = await self._inner.apply(namespace, layer, mounts, diff_id=diff_id, ref=ref)
        report(layer.digest, layer.media_type, State.DONE, layer.size, layer.size)
        return done


async def _download_all(
    store: Store,
    namespace: str,
    source: BlobSource,
    layer_set: LayerSet,
    tracker: Tracker,
    downloads: int,
) -> None:
    gate = asyncio.Semaphore(max(1, downloads))

    async def one(index: int, layer: oci.Descriptor) -> None:
        labels = layer_set.blob_labels(index)
        tracker.report(layer.digest, layer.media_type, State.WAITING, 0, layer.size)
        async with gate:
            fetched = await fetch_blob(store, namespace, source, layer, tracker, labels)
        if not fetched:
            await add_labels(store, namespace, layer.digest, labels)

    with first_error():
        async with asyncio.TaskGroup() as group:
            for index, layer in enumerate(layer_set.layers):
                group.create_task(one(index, layer))


async def fetch_and_unpack(
    store: Store,
    namespace: str,
    source: BlobSource,
    layer_set: LayerSet,
    tracker: Tracker,
    *,
    downloads: int,
    unpack: tuple[Snapshotter, Applier] | None,
    before_prepare: BeforePrepare | None = None,
) -> str:
    """Download every layer and, with ``unpack``, apply them; the top chain ID (or "")."""
    fetching = _download_all(store, namespace, source, layer_set, tracker, downloads)
    if unpack is None:
        await fetching
        return ""
    snapshotter, applier = unpack
    layers = [
        Layer(
            blob=Descriptor(media_type=layer.media_type, digest=layer.digest, size=layer.size),
            diff_id=diff_id,
            ref=oci.ref_key(layer),
        )
        for layer, diff_id in zip(layer_set.layers, layer_set.diff_ids, strict=True)
    ]
    tracking = TrackingApplier(applier, tracker)
    with first_error():
        async with asyncio.TaskGroup() as group:
            group.create_task(fetching)
            unpacking = group.create_task(
                apply_layers(
                    snapshotter,
                    tracking,
                    namespace,
                    layers,
                    workers=max(1, downloads),
                    before_prepare=before_prepare,
                )
            )
    return unpacking.result()
