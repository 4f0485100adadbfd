"""What the content conformance suite needs from its host, and the helpers its cases share."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol

import pytest

from flotilla.common import digests
from flotilla.common.events import Event
from flotilla.content.store import Store

__all__ = [
    "SLACK",
    "EventLog",
    "RecordedEvents",
    "Restart",
    "SuiteFixtures",
    "commit_blob",
    "expect_event",
    "make_blob",
    "now",
]

Restart = Callable[[], Awaitable[Store]]
"""Closes the store under test and returns a new one over the same state."""

_POLL: Final = 0.01

SLACK: Final = timedelta(seconds=1)
"""Tolerance when comparing a store's timestamps with the test's clock."""


class EventLog(Protocol):
    """What the store under test has published, as the suite can observe it."""

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


class SuiteFixtures:
    """The fixtures that have defaults; a host overrides them as it needs.

    ``store`` and ``events`` have none: the host must provide them.
    """

    @pytest.fixture
    def namespace(self) -> str:
        """The namespace most cases work in."""
        return "flotilla-suite"

    @pytest.fixture
    def other_namespace(self) -> str:
        """A second namespace, for isolation cases."""
        return "flotilla-suite.other"

    @pytest.fixture
    def restart(self) -> Restart:
        """By default the store cannot be restarted: those cases are skipped."""
        pytest.skip("the host provides no `restart` fixture")


def now() -> datetime:
    """The test's clock."""
    return datetime.now(UTC)


def make_blob(size: int, seed: int = 0) -> tuple[bytes, str]:
    """``size`` pseudo-random bytes (the same for the same seed) and their sha256 digest."""
    data = random.Random(seed).randbytes(size)
    return data, digests.digest_of(data)


async def commit_blob(
    store: Store,
    namespace: str,
    data: bytes,
    ref: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> str:
    """Write ``data`` through a writer in odd-sized pieces and commit it, checking the digest."""
    digest = digests.digest_of(data)
    async with await store.writer(namespace, ref or f"ref-{digest}", len(data), digest) as writer:
        for start in range(0, len(data), 7919):
            await writer.write(data[start : start + 7919])
        assert await writer.commit(len(data), digest, labels) == digest
    return digest


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
