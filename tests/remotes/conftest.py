"""Fixtures for the registry client's tests against real registries."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from flotilla.images.remotes import Registries
from flotilla.testkit.fixtures import (
    auth_registry,
    faulty,
    image_cache,
    images,
    published_images,
    registry,
    token_registry,
)

__all__ = [
    "auth_registry",
    "faulty",
    "image_cache",
    "images",
    "published_images",
    "registries",
    "registry",
    "token_registry",
]


@pytest.fixture
async def registries() -> AsyncIterator[Registries]:
    """A client with no configuration and no credentials."""
    client = Registries()
    try:
        yield client
    finally:
        await client.close()
