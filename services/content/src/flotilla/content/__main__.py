"""Composition root of the content service (``python -m flotilla.content``).

Adapters (the JetStream relay of the events), then the core (the node's LocalStore under
``<root>/content``), then the endpoints. Everything with a lifetime goes on ``stack``.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from flotilla.common import runtime
from flotilla.common.bus import Bus, ServiceHost
from flotilla.common.bus.sessions import Sessions
from flotilla.common.bus.stream import chunk_size
from flotilla.common.config import Config
from flotilla.common.events.jetstream import JetStreamSink, ensure_events_stream
from flotilla.common.events.relay import Relay
from flotilla.common.lifecycle import AsyncClosable
from flotilla.content import api
from flotilla.content.config import ContentConfig
from flotilla.content.local import LocalStore
from flotilla.content.service import ContentService
from flotilla.content.store import PathWriter, ReaderAt

__all__ = ["build", "main"]


async def _close(session: AsyncClosable) -> None:
    await session.close()


def _sessions(settings: ContentConfig, kind: str, *, exclusive: bool) -> Sessions[Any]:
    return Sessions(
        kind,
        _close,
        settings.session_lease,
        max_total=settings.max_sessions,
        max_per_caller=settings.max_sessions_per_caller,
        exclusive=exclusive,
    )


async def build(config: Config, bus: Bus, stack: AsyncExitStack) -> ServiceHost:
    """Wire the content service for ``config`` on ``bus``."""
    await ensure_events_stream(bus.nc)
    root = config.root_dir / "content"
    relay = Relay(LocalStore.database(root), JetStreamSink(bus.nc))
    await stack.enter_async_context(relay)
    store = await LocalStore.open(root, relay)
    stack.push_async_callback(store.close)
    settings = config.section("content", ContentConfig)
    writers: Sessions[PathWriter] = await stack.enter_async_context(
        _sessions(settings, "writer", exclusive=True)
    )
    readers: Sessions[ReaderAt] = await stack.enter_async_context(
        _sessions(settings, "reader", exclusive=False)
    )
    host = runtime.new_host(config, bus, api.API, "a node's content-addressed blob store")
    ContentService(store, writers, readers, chunk_size(bus.nc)).register(host)
    return host


def main() -> None:
    """Run the content service until SIGTERM."""
    runtime.main("content", build)


if __name__ == "__main__":
    main()
