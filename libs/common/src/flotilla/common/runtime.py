"""The life of one service process: configure, connect, build, serve, drain, stop.

Each service's ``__main__`` declares ``build(config, bus, stack) -> ServiceHost`` (its one
composition root: adapters, then core, then endpoints) and calls :func:`main`. Everything with a
lifetime is entered on one ``AsyncExitStack``, so shutdown runs in reverse: stop taking requests
and finish in-flight ones, close the stores ``build`` opened, then drain NATS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import IO

from flotilla.common import config as config_mod
from flotilla.common import errdefs
from flotilla.common.bus import Bus, ServiceHost, connect
from flotilla.common.telemetry.logs import configure_logging
from flotilla.common.telemetry.tracing import configure_tracing

__all__ = ["Builder", "bare_builder", "embedded_url", "main_bare", "main", "nats_urls", "serve"]

log = logging.getLogger(__name__)

Builder = Callable[[config_mod.Config, Bus, AsyncExitStack], Awaitable[ServiceHost]]


def embedded_url(config: config_mod.Config) -> str:
    """Where the embedded NATS of ``flotilla up`` listens."""
    return f"nats://127.0.0.1:{config.nats.port}"


def nats_urls(config: config_mod.Config) -> tuple[str, ...]:
    """The configured NATS servers, or the embedded one."""
    return config.nats.urls or (embedded_url(config),)


async def serve(
    service: str, config: config_mod.Config, build: Builder, stop: asyncio.Event
) -> None:
    """Run ``service`` until ``stop`` is set, then shut it down cleanly."""
    bus = await connect(
        nats_urls(config),
        node=config.node,
        name=f"flotilla-{service}@{config.node}",
        credentials=config.nats.credentials or None,
        connect_timeout=config.nats.connect_timeout,
    )
    async with AsyncExitStack() as stack:
        stack.push_async_callback(bus.close)
        host = await build(config, bus, stack)
        await host.start()
        stack.push_async_callback(host.stop)
        log.info("started", extra={"nats": bus.nc.connected_url and bus.nc.connected_url.netloc})
        await stop.wait()
        log.info("stopping")


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _trace_output(config: config_mod.Config, stack: contextlib.ExitStack) -> IO[str] | None:
    if not config.telemetry.trace_file:
        return None
    return stack.enter_context(open(config.telemetry.trace_file, "a", buffering=1))


def main(service: str, build: Builder) -> None:
    """The entry point of ``python -m flotilla.<service>``; exits 2 on bad configuration."""
    import uvloop

    try:
        config = config_mod.load()
    except errdefs.ErrdefsError as err:
        print(f"flotilla-{service}: {err}", file=sys.stderr)
        raise SystemExit(2) from err
    configure_logging(f"flotilla-{service}", config.node, config.log_level)
    with contextlib.ExitStack() as files:
        out = _trace_output(config, files)
        configure_tracing(f"flotilla-{service}", config.node, config.telemetry.traces, out)

        async def run() -> None:
            await serve(service, config, build, _stop_on_signals())

        try:
            uvloop.run(run())
        except errdefs.ErrdefsError as err:
            log.error("failed", extra={"error": str(err), "class": type(err).__name__})
            raise SystemExit(1) from err


def bare_builder(service: str, description: str) -> Builder:
    """A builder for a service whose endpoints have not landed yet: discovery and metrics only."""
    from flotilla.common import __version__

    async def build(config: config_mod.Config, bus: Bus, stack: AsyncExitStack) -> ServiceHost:
        return ServiceHost(bus, service, __version__, description)

    return build


def main_bare(service: str, description: str) -> None:
    """Run a service whose endpoints have not landed yet (discovery and metrics only)."""
    main(service, bare_builder(service, description))
