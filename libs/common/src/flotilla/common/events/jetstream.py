"""Events on JetStream: one file-backed stream keeps every envelope, so none is lost.

Subscribers replay from any point with an ordinary JetStream consumer; containerd's ``Subscribe``
maps onto an ephemeral consumer filtered by topic.
"""

from __future__ import annotations

from typing import Final

from nats.aio.client import Client
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from flotilla.common import errdefs, headers
from flotilla.common.bus.methods import encode
from flotilla.common.events.envelope import Event, envelope_for
from flotilla.common.subjects import EVENTS_PREFIX, EVENTS_STREAM

__all__ = ["JetStreamPublisher", "ensure_events_stream"]

_MAX_AGE: Final = 7 * 24 * 3600.0


def _stream_config() -> StreamConfig:
    return StreamConfig(
        name=EVENTS_STREAM,
        subjects=[f"{EVENTS_PREFIX}.>"],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        max_age=_MAX_AGE,
        duplicate_window=120.0,
    )


async def ensure_events_stream(nc: Client) -> None:
    """Create (or update) the events stream; idempotent."""
    js = nc.jetstream()
    try:
        await js.add_stream(_stream_config())
    except Exception as err:  # nats-py raises several unrelated types here
        raise errdefs.Unavailable(f"cannot create the {EVENTS_STREAM} stream: {err}") from err


class JetStreamPublisher:
    """An ``EventPublisher`` that returns only once JetStream has stored the envelope."""

    def __init__(self, nc: Client) -> None:
        self._js = nc.jetstream()

    async def publish(self, namespace: str, topic: str, event: Event) -> None:
        """Publish and wait for JetStream's acknowledgement."""
        envelope = envelope_for(namespace, topic, event)
        try:
            await self._js.publish(
                envelope.subject, encode(envelope), headers={headers.NAMESPACE: namespace}
            )
        except Exception as err:  # timeouts, no stream, disconnects
            raise errdefs.Unavailable(f"event {topic} not stored: {err}") from err
