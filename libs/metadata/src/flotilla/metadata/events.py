"""The events cluster records publish, tagged with containerd's names, on containerd's topics.

Each is published after the change it describes is stored; leases have none (neither has
containerd).
"""

from __future__ import annotations

from typing import Final

from flotilla.common.events import Event
from flotilla.metadata.records import AnyValue

__all__ = [
    "ContainerCreate",
    "ContainerDelete",
    "ContainerUpdate",
    "EventRuntime",
    "ImageCreate",
    "ImageDelete",
    "ImageUpdate",
    "NamespaceCreate",
    "NamespaceDelete",
    "NamespaceUpdate",
]

NAMESPACE_CREATE: Final = "/namespaces/create"
NAMESPACE_UPDATE: Final = "/namespaces/update"
NAMESPACE_DELETE: Final = "/namespaces/delete"
IMAGE_CREATE: Final = "/images/create"
IMAGE_UPDATE: Final = "/images/update"
IMAGE_DELETE: Final = "/images/delete"
CONTAINER_CREATE: Final = "/containers/create"
CONTAINER_UPDATE: Final = "/containers/update"
CONTAINER_DELETE: Final = "/containers/delete"


class NamespaceCreate(Event, frozen=True, kw_only=True, tag="containerd.events.NamespaceCreate"):
    """A namespace was created."""

    name: str
    labels: dict[str, str] = {}


class NamespaceUpdate(Event, frozen=True, kw_only=True, tag="containerd.events.NamespaceUpdate"):
    """A namespace's labels changed."""

    name: str
    labels: dict[str, str] = {}


class NamespaceDelete(Event, frozen=True, kw_only=True, tag="containerd.events.NamespaceDelete"):
    """A namespace was deleted."""

    name: str


class ImageCreate(Event, frozen=True, kw_only=True, tag="containerd.events.ImageCreate"):
    """An image record was created."""

    name: str
    labels: dict[str, str] = {}


class ImageUpdate(Event, frozen=True, kw_only=True, tag="containerd.events.ImageUpdate"):
    """An image record changed."""

    name: str
    labels: dict[str, str] = {}


class ImageDelete(Event, frozen=True, kw_only=True, tag="containerd.events.ImageDelete"):
    """An image record was deleted."""

    name: str


class EventRuntime(
    Event, frozen=True, kw_only=True, tag="containerd.events.ContainerCreate.Runtime"
):
    """The runtime a created container names."""

    name: str
    options: AnyValue | None = None


class ContainerCreate(Event, frozen=True, kw_only=True, tag="containerd.events.ContainerCreate"):
    """A container record was created."""

    id: str
    image: str = ""
    runtime: EventRuntime | None = None


class ContainerUpdate(Event, frozen=True, kw_only=True, tag="containerd.events.ContainerUpdate"):
    """A container record changed."""

    id: str
    image: str = ""
    labels: dict[str, str] = {}
    snapshot_key: str = ""


class ContainerDelete(Event, frozen=True, kw_only=True, tag="containerd.events.ContainerDelete"):
    """A container record was deleted."""

    id: str
