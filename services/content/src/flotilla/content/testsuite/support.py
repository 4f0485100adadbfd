"""What the content conformance suite needs from its host, and the helpers its cases share."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Final

from flotilla.common import digests
from flotilla.content.store import Store
from flotilla.testkit.suite import (
    EventLog,
    RecordedEvents,
    SuiteFixtures,
    expect_event,
    now,
)

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

SLACK: Final = timedelta(seconds=1)
"""Tolerance when comparing a store's timestamps with the test's clock."""


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
