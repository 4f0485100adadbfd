"""Composition root of the content service (``python -m flotilla.content``).

Adapters (the JetStream relay of the events), then the core (the node's LocalStore under
``<root>/content``), then the endpoints. Everything with a lifetime goes on ``stack``.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from flotilla.common import __version__, runtime
from flotilla.common.bus import Bus, ServiceHost
from flotilla.common.bus.sessions import Sessions
from flotilla.common.bus.stream import chunk_size
from flotilla.common.config import Config
from flotilla.common.events.jetstream import JetStreamSink, ensure_events_stream
from flotilla.common.events.relay import Relay
from flotilla.content.local import LocalStore
from flotilla.content.local_handles import LocalWriter
from flotilla.content.service import ContentService
from flotilla.content.store import ReaderAt

__all__ = ["build", "main"]


async def _close_writer(writer: LocalWriter) -> None:
    await writer.close()


async def _close_reader(reader: ReaderAt) -> None:
    await reader.close()


async def build(config: Config, bus: Bus, stack: AsyncExitStack) -> ServiceHost:
    """Wire the content service for ``config`` on ``bus``."""
    await ensure_events_stream(bus.nc)
    root = config.root_dir / "content"
    relay = Relay(LocalStore.database(root), JetStreamSink(bus.nc))
    await stack.enter_async_context(relay)
    store = await LocalStore.open(root, relay)
    stack.push_async_callback(store.close)
    lease = config.content.session_lease
    writers = await stack.enter_async_context(Sessions("writer", _close_writer, lease))
    readers = await stack.enter_async_context(Sessions("reader", _close_reader, lease))
    host = ServiceHost(bus, "content", __version__, "a node's content-addressed blob store")
    ContentService(store, writers, readers, chunk_size(bus.nc)).register(host)
    return host


def main() -> None:
    """Run the content service until SIGTERM."""
    runtime.main("content", build)


if __name__ == "__main__":
    main()
