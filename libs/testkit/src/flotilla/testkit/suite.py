"""What every conformance suite shares: events, default fixtures, an in-process service.

- :class:`EventLog`: what the implementation under test published; :class:`RecordedEvents`
  over an in-memory publisher, :class:`BusEvents` over a subscription to the event subjects.
- :class:`SuiteFixtures`: ``namespace``, ``other_namespace`` and a ``restart`` that skips.
- :class:`InProcessService`: a service built by its own composition root, restartable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import msgspec
import pytest
from nats.aio.msg import Msg

from flotilla.common import runtime
from flotilla.common.config import Config
from flotilla.common.events import Envelope, Event
from flotilla.common.subjects import topic_of

__all__ = [
    "BusEvents",
    "EventLog",
    "InProcessService",
    "RecordedEvents",
    "SuiteFixtures",
    "expect_event",
    "now",
]

_POLL: Final = 0.01
_envelope = msgspec.msgpack.Decoder(Envelope)


class EventLog(Protocol):
    """What the implementation under test has published, as the suite can observe it."""

    def seen(self) -> Sequence[tuple[str, str, Event]]:
        """``(namespace, topic, event)`` published so far, oldest first."""
        ...


class Recording(Protocol):
    """An in-memory publisher, e.g. ``flotilla.testkit.events.RecordingPublisher``."""

    @property
    def published(self) -> Sequence[tuple[str, str, Event]]:
        """``(namespace, topic, event)`` published so far, oldest first."""
        ...


class RecordedEvents:
    """An :class:`EventLog` over an in-memory :class:`Recording` publisher."""

    def __init__(self, publisher: Recording) -> None:
        self._publisher = publisher

    def seen(self) -> Sequence[tuple[str, str, Event]]:
        """Everything the publisher recorded."""
        return list(self._publisher.published)


class BusEvents:
    """An :class:`EventLog` fed by a NATS subscription to event subjects.

    Args:
        events: decodes an envelope's event (a tagged union of the events expected).
    """

    def __init__(self, events: msgspec.msgpack.Decoder[Any]) -> None:
        self._events = events
        self._seen: list[tuple[str, str, Event]] = []

    async def on_message(self, msg: Msg) -> None:
        """Subscription callback: decode and keep one event."""
        envelope = _envelope.decode(msg.data)
        assert topic_of(msg.subject) == envelope.topic
        event = self._events.decode(envelope.event)
        self._seen.append((envelope.namespace, envelope.topic, event))

    def seen(self) -> Sequence[tuple[str, str, Event]]:
        """Every event received so far."""
        return list(self._seen)


class SuiteFixtures:
    """The fixtures every suite has defaults for; a host overrides them as it needs."""

    @pytest.fixture
    def namespace(self) -> str:
        """The namespace most cases work in."""
        return "flotilla-suite"

    @pytest.fixture
    def other_namespace(self) -> str:
        """A second namespace, for isolation cases."""
        return "flotilla-suite.other"

    @pytest.fixture
    def restart(self) -> Any:
        """By default the implementation cannot be restarted: those cases are skipped."""
        pytest.skip("the host provides no `restart` fixture")


class InProcessService:
    """A service built in this process by its composition root, restartable over its root."""

    def __init__(self, name: str, config: Config, build: runtime.Builder) -> None:
        self.name, self.config, self.build = name, config, build
        self.stack = AsyncExitStack()

    async def start(self) -> None:
        """Build and start the service."""
        self.stack = AsyncExitStack()
        await self.stack.enter_async_context(runtime.running(self.name, self.config, self.build))

    async def stop(self) -> None:
        """Stop it as its process would."""
        await self.stack.aclose()


def now() -> datetime:
    """The test's clock."""
    return datetime.now(UTC)


async def expect_event(
    log: EventLog, namespace: str, topic: str, event: Event, within: float = 5.0
) -> None:
    """Wait until ``event`` was published on ``topic`` in ``namespace``."""
    # Polled: an EventLog is only a snapshot, whatever carries the events.
    for _ in range(int(within / _POLL)):
        if (namespace, topic, event) in log.seen():
            return
        await asyncio.sleep(_POLL)
    raise AssertionError(f"{topic} {event} not published in {namespace}: {log.seen()}")
