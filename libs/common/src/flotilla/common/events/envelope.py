"""containerd's event envelope and the port through which cores announce their changes.

A core publishes an event only after the change it describes is durable. Event payloads are
msgspec Structs subclassing :class:`Event`, tagged with containerd's fully-qualified event name
(``containerd.events.ContentCreate``) so the gateway can rebuild containerd's protobuf exactly.
"""

from __future__ import annotations

import time
from typing import Protocol

import msgspec

from flotilla.common.subjects import event_subject

__all__ = ["Envelope", "Event", "EventPublisher", "RecordingPublisher", "envelope_for"]


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every event payload; subclasses set ``tag="containerd.events.<Name>"``."""


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """What travels on ``flotilla.events.<topic>``, as containerd's ``events.Envelope``.

    Attributes:
        timestamp: nanoseconds since the epoch when the change became durable.
        namespace: the namespace the change happened in.
        topic: containerd's topic, e.g. ``/content/create``.
        event: the msgpack-encoded, tagged :class:`Event`.
    """

    timestamp: int
    namespace: str
    topic: str
    event: msgspec.Raw

    @property
    def subject(self) -> str:
        """The NATS subject this envelope is published on."""
        return event_subject(self.topic)


_encoder = msgspec.msgpack.Encoder()


def envelope_for(namespace: str, topic: str, event: Event) -> Envelope:
    """Wrap ``event`` in an envelope stamped now."""
    raw = msgspec.Raw(_encoder.encode(event))
    return Envelope(timestamp=time.time_ns(), namespace=namespace, topic=topic, event=raw)


class EventPublisher(Protocol):
    """Where a core announces a durable change."""

    async def publish(self, namespace: str, topic: str, event: Event) -> None:
        """Publish ``event`` under containerd's ``topic`` (e.g. ``/content/delete``)."""
        ...


class RecordingPublisher:
    """An in-memory :class:`EventPublisher` for unit tests of a pure core."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str, Event]] = []

    async def publish(self, namespace: str, topic: str, event: Event) -> None:
        """Remember the event."""
        self.published.append((namespace, topic, event))
