"""An image's layers applied into committed snapshots named by chain ID (containerd's ``rootfs``).

The snapshot of layers ``1..n`` is named by the chain ID of their diffIDs (OCI's
``ChainID(L1..Ln) = sha256(ChainID(L1..Ln-1) + " " + DiffID(Ln))``), so the same layers share
one snapshot whatever image they came in. Each missing layer is prepared under a temporary key
(``extract-<random> <chain id>``), applied, and committed under its chain ID; a commit that
finds the name taken (another unpack won the race) drops its own copy.

Where the snapshotter :attr:`~flotilla.snapshots.snapshotter.Snapshotter.can_rebase`
(overlayfs), every missing layer is prepared without parent and applied at the same time
(``workers`` at once), each committed onto its parent as soon as the layers below it are;
otherwise one after another.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from flotilla.common import errdefs
from flotilla.common.mounts import Mount
from flotilla.snapshots.diff.differ import Applier, Descriptor
from flotilla.snapshots.snapshotter import Kind, Snapshotter

__all__ = ["BeforePrepare", "Layer", "apply_layers", "chain_ids"]

DEFAULT_WORKERS = 4


@dataclass(frozen=True, slots=True)
class Layer:
    """A layer blob and the digest of its uncompressed tar (its diffID, from the config).

    ``ref``: the content ingest its bytes are still arriving in, if they are; the applier then
    reads the ingest as it grows (see :meth:`~flotilla.snapshots.diff.differ.Applier.apply`).
    """

    blob: Descriptor
    diff_id: str
    ref: str = ""


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """The chain ID of each prefix of ``diff_ids``."""
    chains: list[str] = []
    for diff_id in diff_ids:
        if not chains:
            chains.append(diff_id)
        else:
            joined = f"{chains[-1]} {diff_id}".encode()
            chains.append(f"sha256:{hashlib.sha256(joined).hexdigest()}")
    return chains


async def _committed(snapshotter: Snapshotter, namespace: str, name: str) -> bool:
    try:
        return (await snapshotter.stat(namespace, name)).kind is Kind.COMMITTED
    except errdefs.NotFound:
        return False


BeforePrepare = Callable[[str], Awaitable[None]]
"""Told each temporary snapshot's key before it is prepared (a lease holds it, say)."""


@dataclass(frozen=True)
class _Unpack:
    """Where one image's layers go."""

    snapshotter: Snapshotter
    applier: Applier
    namespace: str
    labels: Mapping[str, str] | None
    before_prepare: BeforePrepare | None


async def apply_layers(
    snapshotter: Snapshotter,
    applier: Applier,
    namespace: str,
    layers: Sequence[Layer],
    *,
    labels: Mapping[str, str] | None = None,
    workers: int = DEFAULT_WORKERS,
    before_prepare: BeforePrepare | None = None,
) -> str:
    """Make sure the snapshot of ``layers`` exists; its chain ID.

    Args:
        snapshotter: where the snapshots go.
        applier: unpacks each layer (from the namespace's content) onto a snapshot's mounts.
        namespace: whose snapshots and content.
        layers: bottom first.
        labels: labels of each committed snapshot.
        workers: layers applied at once where the snapshotter can rebase.
        before_prepare: called with each temporary snapshot's key before it is prepared.

    Raises:
        InvalidArgument: no layers, or an applier's error (the layer's temporary snapshot
            is removed first).
    """
    if not layers:
        raise errdefs.InvalidArgument("an image needs at least one layer")
    unpack = _Unpack(snapshotter, applier, namespace, labels, before_prepare)
    chains = chain_ids([layer.diff_id for layer in layers])
    committed = await asyncio.gather(*(_committed(snapshotter, namespace, c) for c in chains))
    first_missing = len(layers)
    for index in reversed(range(len(layers))):
        if committed[index]:
            break
        first_missing = index
    missing = range(first_missing, len(layers))
    if snapshotter.can_rebase and len(missing) > 1:
        await _apply_parallel(unpack, layers, chains, missing, workers)
    else:
        for index in missing:
            parent = chains[index - 1] if index else ""
            key = await _apply_one(unpack, layers[index], chains[index], parent)
            await _commit(unpack, chains[index], key, None)
    return chains[-1]


def _stacked(mounts: list[Mount]) -> list[Mount]:
    """A parentless layer's bind, described as the upper directory of an overlay to be.

    Applied as a bind, the layer's whiteouts would delete from an empty tree and vanish; as
    an upper directory they stay overlay whiteouts (0/0 devices, opaque directories) and hide
    the lower layers' files once the layer is committed onto its parent. The description is
    for the applier only: an overlay without lower directories does not mount.
    """
    if len(mounts) != 1 or mounts[0].type != "bind":
        return mounts
    kept = tuple(option for option in mounts[0].options if option not in ("bind", "rbind"))
    upper = f"upperdir={mounts[0].source}"
    return [Mount(type="overlay", source="overlay", options=(*kept, upper))]


async def _apply_one(
    unpack: _Unpack, layer: Layer, chain: str, parent: str, *, stacked: bool = False
) -> str:
    """Prepare a temporary snapshot on ``parent`` and apply ``layer``; its key.

    ``stacked``: the layer is prepared without its parent and committed onto it later.
    """
    key = f"extract-{secrets.token_hex(6)} {chain}"
    if unpack.before_prepare is not None:
        await unpack.before_prepare(key)
    snapshotter, namespace = unpack.snapshotter, unpack.namespace
    mounts = await snapshotter.prepare(namespace, key, parent)
    if stacked:
        mounts = _stacked(mounts)
    try:
        await unpack.applier.apply(
            namespace, layer.blob, mounts, diff_id=layer.diff_id, ref=layer.ref
        )
    except BaseException:
        with contextlib.suppress(errdefs.ErrdefsError):
            await asyncio.shield(snapshotter.remove(namespace, key))
        raise
    return key


async def _commit(unpack: _Unpack, chain: str, key: str, parent: str | None) -> None:
    snapshotter, namespace = unpack.snapshotter, unpack.namespace
    try:
        await snapshotter.commit(namespace, chain, key, unpack.labels, parent)
    except errdefs.AlreadyExists:
        await snapshotter.remove(namespace, key)  # another unpack committed it first


async def _apply_parallel(
    unpack: _Unpack,
    layers: Sequence[Layer],
    chains: Sequence[str],
    missing: range,
    workers: int,
) -> None:
    gate = asyncio.Semaphore(max(1, workers))
    snapshotter, namespace = unpack.snapshotter, unpack.namespace

    async def apply(index: int) -> str:
        async with gate:
            stacked = index > 0  # the bottom layer has nothing below it to hide
            return await _apply_one(unpack, layers[index], chains[index], "", stacked=stacked)

    tasks = [asyncio.ensure_future(apply(index)) for index in missing]
    # Each layer is committed onto its parent as soon as it and every layer below it are
    # applied, while the layers above are still being applied.
    for position, index in enumerate(missing):
        try:
            key = await tasks[position]
        except BaseException:
            await _discard(snapshotter, namespace, tasks[position:])
            raise
        parent = chains[index - 1] if index else None
        try:
            await _commit(unpack, chains[index], key, parent)
        except BaseException:
            with contextlib.suppress(errdefs.ErrdefsError):
                await snapshotter.remove(namespace, key)
            await _discard(snapshotter, namespace, tasks[position + 1 :])
            raise


async def _discard(
    snapshotter: Snapshotter, namespace: str, tasks: Sequence[asyncio.Future[str]]
) -> None:
    """Cancel the other layers' applies and remove the snapshots of those that finished."""
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, str):
            with contextlib.suppress(errdefs.ErrdefsError):
                await snapshotter.remove(namespace, result)
