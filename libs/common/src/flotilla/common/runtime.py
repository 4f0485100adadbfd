"""The life of one service process: configure, connect, build, serve, drain, stop.

Each service's ``__main__`` declares ``build(config, bus, stack) -> ServiceHost`` (its one
composition root: adapters, then core, then endpoints) and calls :func:`main`. Everything with a
lifetime is entered on one ``AsyncExitStack``, so shutdown runs in reverse: stop taking requests
and finish in-flight ones, close the stores ``build`` opened, then drain NATS.

:func:`running` is the one way a service is started, by :func:`serve` in its own process and by
the tests in theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import IO

from flotilla.common import __version__, errdefs
from flotilla.common import config as config_mod
from flotilla.common.bus import Bus, ServiceApi, ServiceHost, connect
from flotilla.common.telemetry.logs import configure_logging
from flotilla.common.telemetry.tracing import configure_tracing

__all__ = [
    "Builder",
    "bare_builder",
    "connect_service",
    "embedded_url",
    "main",
    "main_bare",
    "nats_urls",
    "new_host",
    "raise_open_files_limit",
    "running",
    "serve",
]

log = logging.getLogger(__name__)

Builder = Callable[[config_mod.Config, Bus, AsyncExitStack], Awaitable[ServiceHost]]


def embedded_url(config: config_mod.Config) -> str:
    """Where the embedded NATS of ``flotilla up`` listens."""
    return f"nats://127.0.0.1:{config.nats.port}"


def nats_urls(config: config_mod.Config) -> tuple[str, ...]:
    """The configured NATS servers, or the embedded one."""
    return config.nats.urls or (embedded_url(config),)


def new_host(
    config: config_mod.Config, bus: Bus, api: ServiceApi | str, description: str
) -> ServiceHost:
    """A :class:`ServiceHost` for ``api`` with the node's configured bounds."""
    return ServiceHost(bus, api, __version__, description, max_inflight=config.bus.max_inflight)


async def connect_service(service: str, config: config_mod.Config) -> Bus:
    """The bus connection of ``service`` on this node."""
    return await connect(
        nats_urls(config),
        node=config.node,
        name=f"flotilla-{service}@{config.node}",
        credentials=config.nats.credentials or None,
        connect_timeout=config.nats.connect_timeout,
    )


@contextlib.asynccontextmanager
async def running(
    service: str, config: config_mod.Config, build: Builder, bus: Bus | None = None
) -> AsyncIterator[ServiceHost]:
    """``service`` built and serving until the block ends, then stopped in reverse.

    Args:
        service: the service's name (for the connection's name).
        config: the node's configuration.
        build: the service's composition root.
        bus: a connection to serve on; default a new one from ``config``, closed at the end.
    """
    async with AsyncExitStack() as stack:
        if bus is None:
            bus = await connect_service(service, config)
            stack.push_async_callback(bus.close)
        host = await build(config, bus, stack)
        await host.start()
        stack.push_async_callback(host.stop)
        yield host


async def serve(
    service: str, config: config_mod.Config, build: Builder, stop: asyncio.Event
) -> None:
    """Run ``service`` until ``stop`` is set, then shut it down cleanly."""
    async with running(service, config, build) as host:
        url = host.bus.nc.connected_url
        log.info("started", extra={"nats": url and url.netloc})
        await stop.wait()
        log.info("stopping")


def raise_open_files_limit() -> None:
    """Lift the soft limit on open files to the hard one, as containerd and Go do.

    A service holds a descriptor per open session and blob reader; the usual soft limit of
    1,024 would be reached long before the sessions' own bounds.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


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
    raise_open_files_limit()
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

    async def build(config: config_mod.Config, bus: Bus, stack: AsyncExitStack) -> ServiceHost:
        return new_host(config, bus, service, description)

    return build


def main_bare(service: str, description: str) -> None:
    """Run a service whose endpoints have not landed yet (discovery and metrics only)."""
    main(service, bare_builder(service, description))
