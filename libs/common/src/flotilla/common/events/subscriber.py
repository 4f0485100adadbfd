"""Reading events back: an ``EventSubscriber`` on the JetStream events stream.

Each subscription is an ordered consumer (ephemeral, in memory, flow-controlled, no acks):
nats-py recreates it from the last stream sequence it delivered when messages go missing or
its heartbeats stop (a NATS restart), so envelopes come in stream order, none twice. The
consumer reads only the subjects the filter allows (:func:`subjects_for`); the filter itself
then runs on each envelope.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Final, Self

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext

from flotilla.common import errdefs
from flotilla.common.events.envelope import decode_envelope
from flotilla.common.events.matching import ALL_EVENTS, adapt_envelope, subjects_for
from flotilla.common.events.ports import Delivery
from flotilla.common.filters import Filter, parse_all
from flotilla.common.subjects import EVENTS_STREAM

__all__ = ["JetStreamSubscriber", "JetStreamSubscription"]

log = logging.getLogger(__name__)

_HEARTBEAT: Final = 2.0  # seconds; the consumer is recreated after two missed


class JetStreamSubscriber:
    """An :class:`~flotilla.common.events.ports.EventSubscriber` on ``nc``'s events stream."""

    def __init__(self, nc: Client) -> None:
        self._js = nc.jetstream()

    async def subscribe(
        self,
        filters: Sequence[str] = (),
        *,
        from_sequence: int | None = None,
        since: datetime | None = None,
    ) -> JetStreamSubscription:
        """Follow matching events; see :meth:`EventSubscriber.subscribe`."""
        matcher = parse_all(filters)
        config = _start(from_sequence, since)
        subjects = subjects_for(matcher)
        config.filter_subjects = subjects
        try:
            subscription = await self._js.subscribe(
                ALL_EVENTS,
                stream=EVENTS_STREAM,
                config=config,
                ordered_consumer=True,
                idle_heartbeat=_HEARTBEAT,
            )
        except Exception as err:  # nats-py raises several unrelated types here
            kind = type(err).__name__
            raise errdefs.Unavailable(f"cannot subscribe to {EVENTS_STREAM} ({kind})") from err
        return JetStreamSubscription(subscription, matcher, subjects)


def _start(from_sequence: int | None, since: datetime | None) -> ConsumerConfig:
    if from_sequence is not None and since is not None:
        raise errdefs.InvalidArgument("subscribe from a sequence or from a time, not both")
    if from_sequence is not None:
        if from_sequence < 1:
            raise errdefs.InvalidArgument(f"stream sequence {from_sequence} is not positive")
        return ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=from_sequence
        )
    if since is not None:
        return ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=since)
    return ConsumerConfig(deliver_policy=DeliverPolicy.NEW)


class JetStreamSubscription:
    """Matching envelopes in stream order; ``aclose()`` (or leave ``async with``) to stop.

    Iterate from one task at a time, and close from that task: closing ends the iteration.
    """

    def __init__(
        self,
        subscription: JetStreamContext.PushSubscription,
        matcher: Filter,
        subjects: Sequence[str],
    ) -> None:
        self._subscription = subscription
        self._matcher = matcher
        self.subjects = tuple(subjects)
        """The subjects the consumer reads (the filter narrowed to topics)."""
        self._last = 0
        self._closed = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Delivery:
        """The next matching envelope, waiting for it if need be.

        Raises:
            Unavailable: if the bus connection closed.
        """
        while not self._closed:
            try:
                msg = await self._subscription.next_msg(timeout=None)
            except nats.errors.ConnectionClosedError as err:
                raise errdefs.Unavailable(
                    "event subscription ended: bus connection closed"
                ) from err
            delivery = self._accept(msg.metadata.sequence.stream, msg.subject, msg.data)
            if delivery is not None:
                return delivery
        raise StopAsyncIteration

    def _accept(self, sequence: int, subject: str, data: bytes) -> Delivery | None:
        if sequence <= self._last:
            return None  # already delivered, before the consumer was recreated
        self._last = sequence
        try:
            envelope = decode_envelope(data)
        except msgspec.DecodeError:
            log.warning("skipped event %d on %s: not an envelope", sequence, subject)
            return None
        if not self._matcher.match(adapt_envelope(envelope)):
            return None
        return Delivery(sequence, envelope)

    async def aclose(self) -> None:
        """Delete the consumer; closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._subscription.unsubscribe()
        except nats.errors.Error as err:  # closed: the server drops the consumer itself
            log.debug("event subscription not unsubscribed: %s", type(err).__name__)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
