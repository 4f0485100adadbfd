"""containerd's event envelope, and the payloads it carries.

Event payloads are msgspec Structs subclassing :class:`Event`, tagged with containerd's
fully-qualified event name (``containerd.events.ContentCreate``) so the gateway can rebuild
containerd's protobuf exactly.
"""

from __future__ import annotations

import time
from typing import Final

import msgspec

from flotilla.common.subjects import event_subject

__all__ = ["Envelope", "Event", "decode_envelope", "encode_envelope", "envelope_for"]


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


_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(Envelope)


def envelope_for(namespace: str, topic: str, event: Event) -> Envelope:
    """Wrap ``event`` in an envelope stamped now."""
    raw = msgspec.Raw(_encoder.encode(event))
    return Envelope(timestamp=time.time_ns(), namespace=namespace, topic=topic, event=raw)


def encode_envelope(envelope: Envelope) -> bytes:
    """The envelope as it is stored in JetStream (msgpack)."""
    return _encoder.encode(envelope)


def decode_envelope(data: bytes) -> Envelope:
    """An envelope read back from JetStream.

    Raises:
        msgspec.DecodeError: if ``data`` is not one.
    """
    return _decoder.decode(data)
