"""containerd's push (``ctr images push``): an image from a node's content store to a registry.

The image is walked from the content store (:mod:`.walk`), then sent children first: configs
and layers ``uploads`` at a time (each skipped, mounted or uploaded: :mod:`.upload`), then the
manifests, then the indexes innermost first, then the tag. Nothing is written to the node or
the cluster records.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from flotilla.common.tasks import first_error
from flotilla.content.store import Store
from flotilla.images import oci
from flotilla.images.platforms import Matcher
from flotilla.images.pull.progress import State, Tracker
from flotilla.images.push.upload import Target, push_blob, push_document, push_root
from flotilla.images.push.walk import PushPlan, plan_push

__all__ = ["PushOptions", "Pusher"]

_T = TypeVar("_T")


@dataclass(frozen=True)
class PushOptions:
    """How to push.

    Attributes:
        matchers: one per platform to push; ``None`` pushes the whole image (every manifest of
            an index, each of which must be in the content store, as in containerd). With one
            platform, an index's manifest for it is pushed alone and tagged
            (``ctr push --platform``); with several, the index is pushed with only their
            manifests (the registry may refuse an index whose other manifests it lacks).
        chunk_size: 0 for one ``PUT`` per blob; else ``PATCH`` es of this many bytes.
        uploads: blobs (and manifests) sent at once.
    """

    matchers: Sequence[Matcher] | None = None
    chunk_size: int = 0
    uploads: int = 3


class Pusher:
    """Pushes images from one node's content store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def push(
        self,
        namespace: str,
        target: oci.Descriptor,
        remote: Target,
        tag: str,
        options: PushOptions,
        tracker: Tracker | None = None,
        *,
        image: str = "",
    ) -> oci.Descriptor:
        """Push the image ``target`` of ``namespace`` to ``remote`` as ``tag``.

        Args:
            namespace: where the image's blobs are.
            target: the image's root (its record's target).
            remote: the repository to push to (:meth:`.Registries.repository`).
            tag: the tag to put; "" pushes the root by digest only.
            options: platforms, chunking and concurrency.
            tracker: takes each blob's progress.
            image: the image's name, for messages (default: ``target``'s digest).

        Returns:
            The root that was tagged: ``target``, or its manifest for a single platform.

        Raises:
            NotFound: a blob of the image is in neither the content store nor the registry
                (naming it and the image), or an index has no manifest for a platform.
            InvalidArgument: a malformed manifest or index, or the registry refused one.
            Unauthenticated, PermissionDenied, Unavailable: as the registry answered.
        """
        tracker = tracker or Tracker()
        name = image or target.digest
        plan = await plan_push(
            self._store,
            namespace,
            target,
            options.matchers,
            domain=remote.domain,
            path=remote.path,
            image=name,
        )
        await self._send(namespace, remote, tag, options, tracker, plan, name)
        return plan.root

    async def _send(
        self,
        namespace: str,
        remote: Target,
        tag: str,
        options: PushOptions,
        tracker: Tracker,
        plan: PushPlan,
        image: str,
    ) -> None:
        for blob in plan.blobs.values():
            tracker.report(blob.desc.digest, blob.desc.media_type, State.WAITING, 0, blob.desc.size)
        limit = max(1, options.uploads)
        store, size = self._store, options.chunk_size
        await _each(
            limit,
            plan.blobs.values(),
            lambda blob: push_blob(
                store, namespace, remote, blob, tracker, image=image, chunk_size=size
            ),
        )
        documents = [*plan.manifests.values(), *plan.indexes]
        root = next(doc for doc in documents if doc.desc.digest == plan.root.digest)
        manifests = [doc for doc in plan.manifests.values() if doc is not root]
        await _each(limit, manifests, lambda doc: push_document(remote, doc, tracker))
        for index in plan.indexes:  # innermost first: one after the other
            if index is not root:
                await push_document(remote, index, tracker)
        await push_root(remote, root, tag, tracker)


async def _each(limit: int, items: Iterable[_T], send: Callable[[_T], Awaitable[None]]) -> None:
    """``send`` every item, ``limit`` at a time; the first error stops the others."""
    gate = asyncio.Semaphore(limit)

    async def one(item: _T) -> None:
        async with gate:
            await send(item)

    with first_error():
        async with asyncio.TaskGroup() as group:
            for item in items:
                group.create_task(one(item))
