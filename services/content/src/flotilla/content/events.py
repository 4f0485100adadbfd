"""The events the content store publishes, after the change they describe is durable.

Tagged with containerd's event names so the gateway can rebuild ``containerd.events.*``
protobufs exactly; published under containerd's topics.
"""

from __future__ import annotations

from typing import Final

from flotilla.common.events import Event

__all__ = ["TOPIC_CREATE", "TOPIC_DELETE", "ContentCreate", "ContentDelete"]

TOPIC_CREATE: Final = "/content/create"
TOPIC_DELETE: Final = "/content/delete"


class ContentCreate(Event, frozen=True, kw_only=True, tag="containerd.events.ContentCreate"):
    """A blob was committed in the event's namespace."""

    digest: str
    size: int


class ContentDelete(Event, frozen=True, kw_only=True, tag="containerd.events.ContentDelete"):
    """A blob was removed from the event's namespace."""

    digest: str
