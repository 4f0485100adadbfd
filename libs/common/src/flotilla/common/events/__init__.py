"""Events: containerd's envelope, the ports that publish and read them, the outbox and its relay.

- :mod:`~flotilla.common.events.envelope`: the envelope and event payloads;
- :mod:`~flotilla.common.events.ports`: ``EventPublisher``, ``TransactionalPublisher``,
  ``EventSubscriber``;
- :mod:`~flotilla.common.events.outbox`: events recorded in SQLite, with the change;
- :mod:`~flotilla.common.events.relay`: the task that stores them in JetStream, exactly once;
- :mod:`~flotilla.common.events.jetstream`, :mod:`~flotilla.common.events.subscriber`: the
  JetStream adapters.
"""

from flotilla.common.events.envelope import Envelope, Event, envelope_for
from flotilla.common.events.ports import (
    Delivery,
    EventPublisher,
    EventSubscriber,
    Subscription,
    TransactionalPublisher,
)

__all__ = [
    "Delivery",
    "Envelope",
    "Event",
    "EventPublisher",
    "EventSubscriber",
    "Subscription",
    "TransactionalPublisher",
    "envelope_for",
]
