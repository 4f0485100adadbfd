"""The content conformance suite against LocalStore on a temporary directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flotilla.content.local import LocalStore
from flotilla.content.store import Store
from flotilla.content.testsuite import ContentSuite, EventLog, RecordedEvents, Restart
from flotilla.testkit.events import RecordingPublisher


class TestLocalContent(ContentSuite):
    @pytest.fixture
    def publisher(self) -> RecordingPublisher:
        return RecordingPublisher()

    @pytest.fixture
    def events(self, publisher: RecordingPublisher) -> EventLog:
        return RecordedEvents(publisher)

    @pytest.fixture
    async def stores(
        self, tmp_path: Path, publisher: RecordingPublisher
    ) -> AsyncIterator[list[LocalStore]]:
        """Every store opened on the test's root; the last is the live one."""
        opened = [await LocalStore.open(tmp_path / "content", publisher)]
        yield opened
        for store in opened:
            await store.close()

    @pytest.fixture
    def store(self, stores: list[LocalStore]) -> Store:
        return stores[0]

    @pytest.fixture
    def restart(
        self, stores: list[LocalStore], tmp_path: Path, publisher: RecordingPublisher
    ) -> Restart:
        async def restart() -> Store:
            await stores[-1].close()
            stores.append(await LocalStore.open(tmp_path / "content", publisher))
            return stores[-1]

        return restart
