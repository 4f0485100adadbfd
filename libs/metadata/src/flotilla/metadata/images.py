"""Images: names for target descriptors (containerd's Images API on ``flotilla_images``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from flotilla.common import digests, errdefs, filters, labels
from flotilla.metadata import events
from flotilla.metadata.records import Descriptor, Image
from flotilla.metadata.store import Catalog

__all__ = ["ImageStore"]


class ImageStore(Catalog[Image]):
    """Image records, by namespace and name (``get`` and ``list`` are :class:`Catalog`'s)."""

    kind = Image
    what = "image"

    @staticmethod
    def adapt(record: Image) -> filters.Adaptor:
        """How filters see ``record``."""
        return _adaptor(record)

    async def create(self, namespace: str, image: Image) -> Image:
        """Store a new image, stamped now.

        Raises:
            InvalidArgument: if the name, target or labels are invalid.
            AlreadyExists: if the name is taken.
        """
        now = datetime.now(UTC)
        stored = _validated(_with(image, created_at=now, updated_at=now))
        await self.records.insert(namespace, stored.name, stored)
        event = events.ImageCreate(name=stored.name, labels=stored.labels)
        await self._publisher.publish(namespace, events.IMAGE_CREATE, event)
        return stored

    async def update(self, namespace: str, image: Image, fieldpaths: Sequence[str] = ()) -> Image:
        """Change the image along ``fieldpaths``.

        The paths are ``labels``, ``labels.<key>``, ``target``, ``annotations`` and
        ``annotations.<key>``; none means labels and target.

        Raises:
            NotFound: if there is no such image.
            InvalidArgument: on an unknown field path or an invalid result.
        """

        def apply(current: Image) -> Image:
            return _validated(_updated(current, image, fieldpaths))

        stored = await self.records.change(namespace, image.name, apply)
        event = events.ImageUpdate(name=stored.name, labels=stored.labels)
        await self._publisher.publish(namespace, events.IMAGE_UPDATE, event)
        return stored

    async def delete(self, namespace: str, name: str, *, sync: bool = False) -> None:
        """Delete the image; with ``sync``, return once a collection has run.

        Raises:
            NotFound: if there is no such image.
        """
        await self.records.remove(namespace, name)
        await self._publisher.publish(namespace, events.IMAGE_DELETE, events.ImageDelete(name=name))
        if sync:
            await self._collector.collect()
        else:
            self._collector.schedule()


def _with(image: Image, **changes: object) -> Image:
    return msgspec.structs.replace(image, **changes)


def _updated(current: Image, requested: Image, fieldpaths: Sequence[str]) -> Image:
    if not fieldpaths:
        return _with(
            current,
            labels=requested.labels,
            target=requested.target,
            updated_at=datetime.now(UTC),
        )
    result_labels = dict(current.labels)
    target = current.target
    for path in fieldpaths:
        if labels.is_label_path(path):
            result_labels = labels.apply_path(result_labels, requested.labels, path)
        elif path == "target":
            target = requested.target
        elif path == "annotations" or path.startswith("annotations."):
            target = _annotated(target, requested.target, path)
        else:
            raise errdefs.InvalidArgument(f'cannot update "{path}" field on image "{current.name}"')
    return _with(current, labels=result_labels, target=target, updated_at=datetime.now(UTC))


def _annotated(current: Descriptor, requested: Descriptor, path: str) -> Descriptor:
    if path == "annotations":
        return msgspec.structs.replace(current, annotations=dict(requested.annotations))
    key = path[len("annotations.") :]
    annotations = dict(current.annotations)
    if key in requested.annotations:
        annotations[key] = requested.annotations[key]
    else:
        annotations.pop(key, None)
    return msgspec.structs.replace(current, annotations=annotations)


def _validated(image: Image) -> Image:
    if not image.name:
        raise errdefs.InvalidArgument("image name must not be empty")
    if not image.target.media_type:
        raise errdefs.InvalidArgument(f'image "{image.name}": target media type must be set')
    if not image.target.digest:
        raise errdefs.InvalidArgument(f'image "{image.name}": target digest must be set')
    digests.validate(image.target.digest)
    return _with(image, labels=labels.validate(image.labels))


def _adaptor(image: Image) -> filters.Adaptor:
    def field(path: Sequence[str]) -> str | None:
        if not path:
            return None
        head, rest = path[0], path[1:]
        if head == "name":
            return image.name
        if head == "target" and rest:
            if rest[0] == "digest":
                return image.target.digest
            if rest[0] in ("mediatype", "media_type"):
                return image.target.media_type
            return None
        if head == "labels" and rest:
            return image.labels.get(".".join(rest))
        return None

    return field
