"""Events on JetStream: one file-backed stream keeps every envelope, so none is lost.

Relays store outbox rows with :class:`JetStreamSink` (``Nats-Msg-Id`` de-duplication);
readers follow the stream with :mod:`flotilla.common.events.subscriber`. A foreign
exception's text never leaves this module, only its type.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Final

from nats.aio.client import Client
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from flotilla.common import errdefs, headers
from flotilla.common.events.envelope import Event, encode_envelope, envelope_for
from flotilla.common.events.outbox import Recorded
from flotilla.common.subjects import EVENTS_PREFIX, EVENTS_STREAM
from flotilla.common.times import from_ns

__all__ = ["DUPLICATE_WINDOW", "JetStreamPublisher", "JetStreamSink", "ensure_events_stream"]

_MAX_AGE: Final = 7 * 24 * 3600.0
DUPLICATE_WINDOW: Final = 120.0
"""Seconds the stream remembers a ``Nats-Msg-Id``. Longer costs server memory per message;
relays look older copies up instead (see :mod:`flotilla.common.events.relay`)."""

MSG_ID: Final = "Nats-Msg-Id"
_TIMEOUT: Final = 2.0
_SEARCH_BATCH: Final = 256
_SEARCH_IDLE: Final = 30.0  # the server drops a search's consumer if the relay vanished


def _stream_config() -> StreamConfig:
    return StreamConfig(
        name=EVENTS_STREAM,
        subjects=[f"{EVENTS_PREFIX}.>"],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        max_age=_MAX_AGE,
        duplicate_window=DUPLICATE_WINDOW,
    )


async def ensure_events_stream(nc: Client) -> None:
    """Create the events stream if it is missing; idempotent."""
    js = nc.jetstream()
    try:
        await js.add_stream(_stream_config())
    except Exception as err:  # nats-py raises several unrelated types here
        kind = type(err).__name__
        raise errdefs.Unavailable(f"cannot create the {EVENTS_STREAM} stream ({kind})") from err


class JetStreamSink:
    """A relay's :class:`~flotilla.common.events.relay.EventSink`: the events stream.

    Args:
        nc: the connection.
        timeout: how long to wait for one acknowledgement or search step.
        duplicate_window: the stream's, which a test may shorten with its own stream.
    """

    def __init__(
        self, nc: Client, *, timeout: float = _TIMEOUT, duplicate_window: float = DUPLICATE_WINDOW
    ) -> None:
        self._js = nc.jetstream()
        self._timeout = timeout
        self._window = duplicate_window

    @property
    def duplicate_window(self) -> float:
        """Seconds within which the stream drops a second copy of a message id."""
        return self._window

    async def send(self, record: Recorded) -> None:
        """Store ``record`` under its message id; a copy the stream knows is acknowledged too.

        Raises:
            Unavailable: if JetStream did not acknowledge it.
        """
        sent = {headers.NAMESPACE: record.namespace, MSG_ID: record.msg_id}
        try:
            await self._js.publish(
                record.subject,
                record.envelope,
                timeout=self._timeout,
                stream=EVENTS_STREAM,
                headers=sent,
            )
        except Exception as err:  # timeouts, no stream, disconnects, API errors
            raise _not_stored(record.subject, err) from err

    async def stored(self, records: Sequence[Recorded], since_ns: int) -> set[str]:
        """The message ids of ``records`` the stream holds among messages stored since then.

        Reads headers only, with an ephemeral consumer deleted afterwards.

        Raises:
            Unavailable: if the stream could not be searched.
        """
        wanted = {record.msg_id for record in records}
        subjects = sorted({record.subject for record in records})
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_TIME,
            opt_start_time=from_ns(max(since_ns, 0)),
            ack_policy=AckPolicy.NONE,
            headers_only=True,
            filter_subjects=subjects,
            inactive_threshold=_SEARCH_IDLE,
            mem_storage=True,
            num_replicas=1,
        )
        try:
            return await self._search(config, wanted)
        except Exception as err:
            raise errdefs.Unavailable(
                f"cannot search {EVENTS_STREAM} ({type(err).__name__})"
            ) from err

    async def _search(self, config: ConsumerConfig, wanted: set[str]) -> set[str]:
        subscription = await self._js.pull_subscribe(
            f"{EVENTS_PREFIX}.>", stream=EVENTS_STREAM, config=config
        )
        found: set[str] = set()
        try:
            remaining = (await subscription.consumer_info()).num_pending or 0
            while remaining > 0 and found != wanted:
                batch = min(remaining, _SEARCH_BATCH)
                messages = await subscription.fetch(batch, timeout=self._timeout)
                remaining -= len(messages)
                found.update(
                    msg.headers[MSG_ID]
                    for msg in messages
                    if msg.headers and msg.headers.get(MSG_ID) in wanted
                )
        finally:
            # Tidy up; the server drops an idle ephemeral consumer anyway.
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
            with contextlib.suppress(Exception):
                await self._js.delete_consumer(EVENTS_STREAM, config.name or "")
        return found


class JetStreamPublisher:
    """An ``EventPublisher`` straight to JetStream, without an outbox.

    Only for events whose loss is acceptable: if JetStream does not acknowledge, the event is
    gone and the caller gets Unavailable. Cores announce through a
    :class:`~flotilla.common.events.relay.Relay` instead.
    """

    def __init__(self, nc: Client) -> None:
        self._js = nc.jetstream()

    async def publish(self, namespace: str, topic: str, event: Event) -> None:
        """Publish and wait for JetStream's acknowledgement.

        Raises:
            Unavailable: if JetStream did not acknowledge it (the cause's type only).
        """
        envelope = envelope_for(namespace, topic, event)
        try:
            await self._js.publish(
                envelope.subject,
                encode_envelope(envelope),
                headers={headers.NAMESPACE: namespace},
            )
        except Exception as err:  # timeouts, no stream, disconnects
            raise _not_stored(topic, err) from err


def _not_stored(what: str, err: Exception) -> errdefs.Unavailable:
    # The foreign text may hold addresses or server internals: its type says enough.
    return errdefs.Unavailable(f"event {what} not stored ({type(err).__name__})")
