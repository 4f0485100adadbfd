"""``flotilla up``: one node's whole stack, each service its own process, kept running.

Takes the state directory's lock (a second stack on it is refused), starts the embedded
nats-server (unless NATS URLs are configured), then ``python -m flotilla.<service>`` for every
service, waits until each answers ``$SRV.PING``, prints what runs where and what to try next.
It restarts a crashed service, and a crashed nats-server (same port, same JetStream directory),
with exponential backoff; the services reconnect by themselves. On SIGTERM/SIGINT, even during
start-up, it stops the services (SIGTERM, then SIGKILL after a grace period) and then NATS,
leaving nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Final

from nats.micro.service import ServiceVerb

from flotilla.cli.banner import cli_command, labelled, service_table, where_and_next
from flotilla.cli.health import services_on, wait_healthy
from flotilla.cli.keeper import Keeper, Kept
from flotilla.cli.lockfile import hold_stack_lock
from flotilla.cli.metrics_http import serve_metrics
from flotilla.cli.nats_service import NATS, NatsService
from flotilla.cli.units import ServiceUnit, service_command
from flotilla.common.bus import Bus, connect
from flotilla.common.config import Config
from flotilla.common.events.jetstream import ensure_events_stream
from flotilla.common.natsserver import EmbeddedNats

__all__ = ["SERVICES", "Supervisor"]

SERVICES: Final = ("content", "snapshots", "images", "tasks", "gateway")
_GRACE: Final = 10.0
_HEALTHY_WITHIN: Final = 60.0


class Supervisor:
    """Runs the stack for one node until told to stop.

    Args:
        config: the node's configuration.
        services: which services to run.
        say: prints a line for the operator.
        config_path: the ``--config`` given, repeated in the commands suggested to try.
    """

    def __init__(
        self,
        config: Config,
        services: tuple[str, ...] = SERVICES,
        say: Callable[[str], None] = print,
        *,
        config_path: Path | None = None,
    ) -> None:
        self.config = config
        self.services = services
        self.say = say
        self.config_path = config_path
        self.keeper = Keeper(say, on_restart=self._refresh_nats)
        self._server: EmbeddedNats | None = None
        self._nats_service: NatsService | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Bring the stack up, keep it up until ``stop`` is set, then bring it down."""
        async with AsyncExitStack() as stack:
            stack.enter_context(hold_stack_lock(self.config.state_dir))
            urls = await self._nats(stack)
            bus = await connect(urls, node=self.config.node, name="flotilla-up", connect_timeout=10)
            stack.push_async_callback(bus.close)
            await ensure_events_stream(bus.nc)
            await self._announce_nats(bus, stack)
            stack.push_async_callback(self._stop_services)
            env = self._child_env(urls)
            for name in self.services:
                unit = ServiceUnit(name, service_command(name), env, _GRACE)
                await self.keeper.start(name, unit)
            self._refresh_nats()
            if await _unless_stopped(stop, self._report(bus)):
                await self._serve(bus, stack)
                self.say("flotilla is up (Ctrl-C to stop)")
                await stop.wait()
            self.say("stopping")

    async def _nats(self, stack: AsyncExitStack) -> tuple[str, ...]:
        if self.config.nats.urls:
            self.say(labelled("nats", f"{', '.join(self.config.nats.urls)} (configured)"))
            return self.config.nats.urls
        server = EmbeddedNats(self.config.state_dir / "nats", port=self.config.nats.port)
        self._server = server
        stack.push_async_callback(self._stop_nats)
        await self.keeper.start(NATS, server)
        where = f"embedded, JetStream in {server.store_dir}, pid {server.pid}"
        self.say(labelled("nats", f"{server.url} ({where})"))
        return (server.url,)

    async def _announce_nats(self, bus: Bus, stack: AsyncExitStack) -> None:
        if self._server is None:
            return
        self._nats_service = NatsService(bus, self._server, self.keeper)
        await self._nats_service.start()
        stack.push_async_callback(self._nats_service.stop)

    def _refresh_nats(self, _: Kept | None = None) -> None:
        if self._nats_service is not None:
            self._nats_service.refresh()

    def _child_env(self, urls: tuple[str, ...]) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            FLOTILLA_NATS__URLS=",".join(urls),
            FLOTILLA_NODE_ID=self.config.node,
            FLOTILLA_ROOT=self.config.root,
            FLOTILLA_STATE=self.config.state,
        )
        return env

    async def _report(self, bus: Bus) -> None:
        node = self.config.node
        await wait_healthy(bus, self.services, node, timeout=_HEALTHY_WITHIN)
        pids = {name: self.keeper.kept[name].unit.pid for name in self.services}
        infos: dict[str, dict[str, Any]] = {}
        for info in await services_on(bus, node, ServiceVerb.INFO):
            meta = info.get("metadata", {})
            name = meta.get("service", "")
            if name in pids and (name not in infos or meta.get("pid") == str(pids[name])):
                infos[name] = info
        for line in service_table(pids, infos):
            self.say(line)
        self.say(f"all {len(self.services)} services healthy")

    async def _serve(self, bus: Bus, stack: AsyncExitStack) -> None:
        metrics_url = None
        if self.config.metrics.listen:
            server = await serve_metrics(bus, self.config.metrics.listen)
            stack.push_async_callback(_close_server, server)
            metrics_url = f"http://{_address(server)}/metrics"
        command = cli_command(self.config_path)
        for line in where_and_next(self.config.state_dir, metrics_url, command):
            self.say(line)

    async def _stop_services(self) -> None:
        await self.keeper.halt()
        await self.keeper.stop(list(self.services))

    async def _stop_nats(self) -> None:
        await self.keeper.halt()
        await self.keeper.stop([NATS])


async def _unless_stopped(stop: asyncio.Event, work: Coroutine[Any, Any, None]) -> bool:
    """Run ``work`` unless ``stop`` is set first (then cancel it); True if it finished."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        return False
    task.result()
    return True


async def _close_server(server: asyncio.Server) -> None:
    server.close()
    await server.wait_closed()


def _address(server: asyncio.Server) -> str:
    host, port = server.sockets[0].getsockname()[:2]
    return f"{host}:{port}"
