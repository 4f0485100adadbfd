"""pytest fixtures over the kit: test images, a local registry, a private containerd.

Enable them with ``pytest_plugins = ["flotilla.testkit.fixtures"]`` in the top-level
``conftest.py``, or import the fixtures you need into a ``conftest.py``. Set
``FLOTILLA_TESTKIT_CACHE`` to a directory to keep built images between sessions.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from flotilla.testkit.containerd import Containerd, private_containerd
from flotilla.testkit.faulty import FaultyRegistry, faulty_registry
from flotilla.testkit.images import build_busybox, build_large, build_multiarch
from flotilla.testkit.publish import ImageSet, PublishedImages, publish_images
from flotilla.testkit.registry import LocalRegistry, local_registry
from flotilla.testkit.token_server import TokenServer, token_server

__all__ = [
    "SMALL_LARGE_SIZE",
    "AUTH_PASSWORD",
    "AUTH_USER",
    "AuthRegistry",
    "auth_registry",
    "containerd",
    "faulty",
    "image_cache",
    "images",
    "published_images",
    "registry",
    "token_registry",
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


# Registries with authentication, for the image pull and push tests.

AUTH_USER = "flotilla"
AUTH_PASSWORD = "secret"  # a test registry's password, on 127.0.0.1 only


@dataclass(frozen=True)
class AuthRegistry:
    """A registry with authentication on, and the test images pushed to it.

    Attributes:
        registry: The registry (``registry.credentials`` log in to it).
        published: The images and their refs.
        token_server: The token server it trusts, for a token-auth registry.
    """

    registry: LocalRegistry
    published: PublishedImages
    token_server: TokenServer | None = None

    @property
    def credentials(self) -> tuple[str, str]:
        """The user and password to pull and push with."""
        assert self.registry.credentials is not None
        return self.registry.credentials

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``."""
        return self.registry.host

    def ref(self, name: str) -> str:
        """The reference of test image ``name`` (``busybox``, ``large``, ``multiarch``)."""
        return self.published.ref(name)


@pytest.fixture
async def auth_registry(images: ImageSet) -> AsyncIterator[AuthRegistry]:
    """A basic-auth registry (``flotilla``/``secret``) with ``images`` pushed, for one test."""
    async with local_registry(htpasswd={AUTH_USER: AUTH_PASSWORD}) as reg:
        creds = (AUTH_USER, AUTH_PASSWORD)
        yield AuthRegistry(reg, await publish_images(images, reg.host, creds=creds))


@pytest.fixture
async def token_registry(images: ImageSet) -> AsyncIterator[AuthRegistry]:
    """A token-auth registry with its token server (``flotilla``/``secret``) and ``images``.

    Anonymous token requests are refused; ``token_server.requests`` records every one.
    """
    async with (
        token_server(users={AUTH_USER: AUTH_PASSWORD}) as ts,
        local_registry(token=ts.auth()) as reg,
    ):
        creds = (AUTH_USER, AUTH_PASSWORD)
        published = await publish_images(images, reg.host, creds=creds)
        ts.requests.clear()  # the pushes' requests: a test sees only its own
        yield AuthRegistry(reg, published, ts)


@pytest.fixture
async def faulty(registry: LocalRegistry) -> AsyncIterator[FaultyRegistry]:
    """A faulty proxy in front of ``registry``, no fault on (use with ``published_images``)."""
    async with faulty_registry(registry.url) as proxy:
        yield proxy
