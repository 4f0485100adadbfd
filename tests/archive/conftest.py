"""Archive tests with real files and tools: the kit's images, skopeo, a private containerd."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flotilla.content.local import LocalStore
from flotilla.testkit.events import RecordingPublisher
from flotilla.testkit.fixtures import containerd, image_cache, images

__all__ = ["containerd", "image_cache", "images", "store"]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalStore]:
    """A node content store for one test."""
    async with await LocalStore.open(tmp_path / "content", RecordingPublisher()) as opened:
        yield opened
