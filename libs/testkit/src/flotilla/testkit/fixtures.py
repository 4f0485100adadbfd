"""pytest fixtures over the kit: test images, a local registry, a private containerd.

Enable them with ``pytest_plugins = ["flotilla.testkit.fixtures"]`` in the top-level
``conftest.py``, or import the fixtures you need into a ``conftest.py``. Set
``FLOTILLA_TESTKIT_CACHE`` to a directory to keep built images between sessions.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flotilla.testkit.containerd import Containerd, private_containerd
from flotilla.testkit.images import build_busybox, build_large, build_multiarch
from flotilla.testkit.publish import ImageSet, PublishedImages, publish_images
from flotilla.testkit.registry import LocalRegistry, local_registry

__all__ = [
    "SMALL_LARGE_SIZE",
    "containerd",
    "image_cache",
    "images",
    "published_images",
    "registry",
]

SMALL_LARGE_SIZE = 4 << 20
"""The ``large`` image's size in tests: all its features, little data."""


@pytest.fixture(scope="session")
def image_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this session builds images (``$FLOTILLA_TESTKIT_CACHE`` if set)."""
    configured = os.environ.get("FLOTILLA_TESTKIT_CACHE")
    return Path(configured) if configured else tmp_path_factory.mktemp("images")


@pytest.fixture(scope="session")
def images(image_cache: Path) -> ImageSet:
    """busybox, a ``SMALL_LARGE_SIZE`` large image and multiarch, built once per session."""
    return ImageSet(
        build_busybox(image_cache),
        build_large(image_cache, size=SMALL_LARGE_SIZE),
        build_multiarch(image_cache),
    )


@pytest.fixture
async def registry() -> AsyncIterator[LocalRegistry]:
    """An empty local registry for one test."""
    async with local_registry() as reg:
        yield reg


@pytest.fixture
async def published_images(images: ImageSet, registry: LocalRegistry) -> PublishedImages:
    """``images`` pushed to ``registry`` as ``<host>/<name>:latest``."""
    return await publish_images(images, registry.host)


@pytest.fixture
async def containerd() -> AsyncIterator[Containerd]:
    """A private containerd for one test (needs root)."""
    async with private_containerd() as ctd:
        yield ctd
