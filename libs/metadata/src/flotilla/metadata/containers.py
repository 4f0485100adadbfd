"""Containers: what to run and how (containerd's Containers API on ``flotilla_containers``).

No process state lives here: a container record is only what ``ctr containers info`` shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

import msgspec

from flotilla.common import errdefs, filters, labels, namespaces
from flotilla.metadata import events
from flotilla.metadata.records import AnyValue, Container
from flotilla.metadata.store import Catalog

__all__ = ["ContainerStore"]

_REPLACED: Final = ("labels", "spec", "extensions", "image", "snapshotkey")
"""What an update without field paths replaces (containerd's full replace)."""


class ContainerStore(Catalog[Container]):
    """Container records, by namespace and name (``get`` and ``list`` are :class:`Catalog`'s)."""

    kind = Container
    what = "container"

    @staticmethod
    def adapt(record: Container) -> filters.Adaptor:
        """How filters see ``record``."""
        return _adaptor(record)

    async def create(self, namespace: str, container: Container) -> Container:
        """Store a new container, stamped now.

        Raises:
            InvalidArgument: if a field is invalid or missing.
            AlreadyExists: if the id is taken.
        """
        now = datetime.now(UTC)
        stored = _validated(msgspec.structs.replace(container, created_at=now, updated_at=now))
        await self.records.insert(namespace, stored.id, stored)
        runtime = events.EventRuntime(name=stored.runtime.name, options=stored.runtime.options)
        event = events.ContainerCreate(id=stored.id, image=stored.image, runtime=runtime)
        await self._publisher.publish(namespace, events.CONTAINER_CREATE, event)
        return stored

    async def update(
        self, namespace: str, container: Container, fieldpaths: Sequence[str] = ()
    ) -> Container:
        """Change the container along ``fieldpaths``.

        The paths are ``labels``, ``labels.<key>``, ``spec``, ``extensions``,
        ``extensions.<key>``, ``image`` and ``snapshotkey``; none means all of them, and the
        snapshotter and runtime must then be unchanged.

        Raises:
            NotFound: if there is no such container.
            InvalidArgument: on another field path, a changed immutable field, or an invalid
                result.
        """

        def apply(current: Container) -> Container:
            return _validated(_updated(current, container, fieldpaths))

        stored = await self.records.change(namespace, container.id, apply)
        event = events.ContainerUpdate(
            id=stored.id, image=stored.image, labels=stored.labels, snapshot_key=stored.snapshot_key
        )
        await self._publisher.publish(namespace, events.CONTAINER_UPDATE, event)
        return stored

    async def delete(self, namespace: str, container_id: str) -> None:
        """Delete the container record (its snapshot is left to the collector).

        Raises:
            NotFound: if there is no such container.
        """
        await self.records.remove(namespace, container_id)
        event = events.ContainerDelete(id=container_id)
        await self._publisher.publish(namespace, events.CONTAINER_DELETE, event)
        self._collector.schedule()


def _updated(current: Container, requested: Container, fieldpaths: Sequence[str]) -> Container:
    if not fieldpaths:
        if requested.snapshotter != current.snapshotter:
            raise errdefs.InvalidArgument("container.Snapshotter field is immutable")
        if requested.runtime.name != current.runtime.name:
            raise errdefs.InvalidArgument("container.Runtime.Name field is immutable")
        fieldpaths = _REPLACED
    changes: dict[str, object] = {}
    result_labels = dict(current.labels)
    extensions = dict(current.extensions)
    for path in fieldpaths:
        if labels.is_label_path(path):
            result_labels = labels.apply_path(result_labels, requested.labels, path)
        elif path == "extensions":
            extensions = dict(requested.extensions)
        elif path.startswith("extensions."):
            _apply_extension(extensions, requested.extensions, path[len("extensions.") :])
        elif path in ("spec", "image"):
            changes[path] = getattr(requested, path)
        elif path == "snapshotkey":
            changes["snapshot_key"] = requested.snapshot_key
        else:
            raise errdefs.InvalidArgument(f'cannot update "{path}" field on "{current.id}"')
    return msgspec.structs.replace(
        current,
        labels=result_labels,
        extensions=extensions,
        updated_at=datetime.now(UTC),
        **changes,
    )


def _apply_extension(result: dict[str, AnyValue], requested: dict[str, AnyValue], key: str) -> None:
    if key in requested:
        result[key] = requested[key]
    else:
        result.pop(key, None)


def _validated(container: Container) -> Container:
    namespaces.identifier(container.id, "container id")
    if not container.runtime.name:
        raise errdefs.InvalidArgument(f'container "{container.id}": must set runtime.Name')
    if container.spec is None:
        raise errdefs.InvalidArgument(f'container "{container.id}": container.Spec must be set')
    if container.snapshot_key and not container.snapshotter:
        raise errdefs.InvalidArgument(
            f'container "{container.id}": container.Snapshotter must be set if '
            "container.SnapshotKey is set"
        )
    for key in container.extensions:
        if not key:
            raise errdefs.InvalidArgument(f'container "{container.id}": extension key is empty')
    return msgspec.structs.replace(container, labels=labels.validate(container.labels))


def _adaptor(container: Container) -> filters.Adaptor:
    def field(path: Sequence[str]) -> str | None:
        if not path:
            return None
        head, rest = path[0], path[1:]
        if head == "id":
            return container.id
        if head == "image":
            return container.image
        if head == "snapshotter":
            return container.snapshotter
        if head == "runtime" and tuple(rest) == ("name",):
            return container.runtime.name
        if head == "labels" and rest:
            return container.labels.get(".".join(rest))
        return None

    return field
