"""The ports through which cores announce their changes and readers follow them.

A core announces a change only once it is durable, and the announcement itself is durable
before the change is acknowledged to its caller: either recorded in the core's own SQLite
transaction (:class:`TransactionalPublisher`, the same commit as the change) or in an outbox
of its own (:class:`EventPublisher`). A relay then stores it in JetStream, however long that
takes; neither port raises once the event is recorded.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import NamedTuple, Protocol, Self

from flotilla.common.events.envelope import Envelope, Event

__all__ = [
    "Delivery",
    "EventPublisher",
    "EventSubscriber",
    "Subscription",
    "TransactionalPublisher",
]


class EventPublisher(Protocol):
    """Where a core without a transaction of its own announces a durable change."""

    async def publish(self, namespace: str, topic: str, event: Event) -> None:
        """Record ``event`` under containerd's ``topic`` (e.g. ``/content/delete``) durably.

        Returns once the event is recorded (and, in the healthy case, stored in JetStream);
        raises only if it could not be recorded.
        """
        ...


class TransactionalPublisher(Protocol):
    """Where a core with its own SQLite database announces a change in the change's transaction.

    The core calls :meth:`stage` inside the write transaction that makes the change, on that
    transaction's connection, and :meth:`committed` once the transaction committed. A
    transaction that rolls back takes its event with it.
    """

    def stage(
        self, connection: sqlite3.Connection, namespace: str, topic: str, event: Event
    ) -> int:
        """Record ``event`` in the transaction open on ``connection`` (blocking).

        Returns:
            The event's place in the outbox, for :meth:`committed`.
        """
        ...

    async def committed(self, row: int) -> None:
        """The transaction that staged ``row`` committed: relay it. Never raises."""
        ...


class Delivery(NamedTuple):
    """An envelope as the events stream holds it."""

    sequence: int
    """The envelope's sequence in the stream: resume after it with ``from_sequence=seq + 1``."""
    envelope: Envelope


class Subscription(Protocol):
    """Envelopes in stream order, until closed (``aclose()`` or ``async with``)."""

    def __aiter__(self) -> AsyncIterator[Delivery]: ...

    async def __anext__(self) -> Delivery: ...

    async def aclose(self) -> None:
        """Stop reading; closing twice is harmless."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...


class EventSubscriber(Protocol):
    """Where readers (the gateway's ``Subscribe``, the garbage collector) follow events."""

    async def subscribe(
        self,
        filters: Sequence[str] = (),
        *,
        from_sequence: int | None = None,
        since: datetime | None = None,
    ) -> Subscription:
        """Follow the events matching containerd's ``filters``, then new ones as they come.

        Args:
            filters: containerd's event filters, ORed (fields ``topic``, ``namespace`` and
                ``event.<field>``); none matches everything.
            from_sequence: start at this stream sequence (inclusive).
            since: start at the first event stored at or after this time.
                Without either, only events stored from now on.

        Raises:
            InvalidArgument: for a malformed filter, or both starting points.
            Unavailable: if the stream cannot be read.
        """
        ...
