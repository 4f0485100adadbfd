"""Events: containerd's envelope, the publisher port, and its JetStream adapter."""

from flotilla.common.events.envelope import (
    Envelope,
    Event,
    EventPublisher,
    RecordingPublisher,
    envelope_for,
)

__all__ = ["Envelope", "Event", "EventPublisher", "RecordingPublisher", "envelope_for"]
