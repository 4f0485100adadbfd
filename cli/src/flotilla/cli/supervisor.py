"""``flotilla up``: one node's whole stack, each service its own process, kept running.

Starts the embedded nats-server (unless NATS URLs are configured), then ``python -m
flotilla.<service>`` for every service, waits until each answers ``$SRV.PING``, prints what runs
where, restarts a crashed service with exponential backoff, and on SIGTERM/SIGINT stops the
services (SIGTERM, then SIGKILL after a grace period) and the NATS server, leaving nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Final

from flotilla.cli.health import wait_healthy
from flotilla.cli.metrics_http import serve_metrics
from flotilla.common.bus import Bus, connect
from flotilla.common.config import Config
from flotilla.common.events.jetstream import ensure_events_stream
from flotilla.common.natsserver import EmbeddedNats
from flotilla.common.process import CHILD_OPTIONS

__all__ = ["SERVICES", "Supervisor"]

log = logging.getLogger(__name__)

SERVICES: Final = ("content", "snapshots", "images", "tasks", "gateway")
_GRACE: Final = 10.0
_MAX_BACKOFF: Final = 30.0
_STABLE_AFTER: Final = 60.0  # a service that ran this long has its backoff reset


@dataclass
class Child:
    """One supervised service process."""

    service: str
    process: asyncio.subprocess.Process | None = None
    started: float = 0.0
    failures: int = 0
    restarts: int = 0
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)


class Supervisor:
    """Runs the stack for one node until told to stop."""

    def __init__(
        self,
        config: Config,
        services: tuple[str, ...] = SERVICES,
        say: Callable[[str], None] = print,
    ) -> None:
        self.config = config
        self.services = services
        self.say = say
        self.children = {name: Child(name) for name in services}
        self._stopping = False
        self._env: dict[str, str] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Bring the stack up, keep it up until ``stop`` is set, then bring it down."""
        async with AsyncExitStack() as stack:
            urls = await self._nats(stack)
            bus = await connect(urls, node=self.config.node, name="flotilla-up", connect_timeout=10)
            stack.push_async_callback(bus.close)
            await ensure_events_stream(bus.nc)
            self._env = self._child_env(urls)
            stack.push_async_callback(self._stop_children)
            for child in self.children.values():
                await self._spawn(child)
            await self._report(bus)
            if self.config.metrics.listen:
                server = await serve_metrics(bus, self.config.metrics.listen)
                stack.push_async_callback(_close_server, server)
                self.say(f"metrics: http://{_address(server)}/metrics")
            self.say("flotilla is up (Ctrl-C to stop)")
            await stop.wait()
            self.say("stopping")

    async def _nats(self, stack: AsyncExitStack) -> tuple[str, ...]:
        if self.config.nats.urls:
            return self.config.nats.urls
        server = EmbeddedNats(self.config.state_dir / "nats", port=self.config.nats.port)
        await stack.enter_async_context(server)
        self.say(
            f"nats: {server.url} (embedded, JetStream in {server.store_dir}, pid {server.pid})"
        )
        return (server.url,)

    def _child_env(self, urls: tuple[str, ...]) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            FLOTILLA_NATS__URLS=",".join(urls),
            FLOTILLA_NODE_ID=self.config.node,
            FLOTILLA_ROOT=self.config.root,
            FLOTILLA_STATE=self.config.state,
        )
        return env

    async def _spawn(self, child: Child) -> None:
        child.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            f"flotilla.{child.service}",
            env=self._env,
            **CHILD_OPTIONS,
        )
        child.started = time.monotonic()
        child.watcher = asyncio.create_task(self._watch(child))

    async def _watch(self, child: Child) -> None:
        assert child.process is not None
        code = await child.process.wait()
        if self._stopping:
            return
        ran = time.monotonic() - child.started
        child.failures = 0 if ran > _STABLE_AFTER else child.failures + 1
        delay = min(0.5 * 2 ** max(child.failures - 1, 0), _MAX_BACKOFF)
        log.warning("service exited", extra={"service": child.service, "code": code})
        self.say(f"{child.service} exited with status {code}; restarting in {delay:.1f}s")
        await asyncio.sleep(delay)
        if not self._stopping:
            child.restarts += 1
            await self._spawn(child)

    async def _report(self, bus: Bus) -> None:
        answers = await wait_healthy(bus, self.services, self.config.node, timeout=60)
        self.say(f"{'SERVICE':<10} {'NODE':<16} {'PID':>7}  SUBJECTS")
        for name in self.services:
            child = self.children[name]
            pid = child.process.pid if child.process else 0
            node = answers[name].get("metadata", {}).get("node", "?")
            self.say(f"{name:<10} {node:<16} {pid:>7}  flotilla.v1.{name}.*")
        self.say(f"all {len(self.services)} services healthy")

    async def _stop_children(self) -> None:
        self._stopping = True
        running = [c for c in self.children.values() if c.process and c.process.returncode is None]
        for child in running:
            assert child.process is not None
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
        await asyncio.gather(*(_reap(c, _GRACE) for c in running))
        for child in self.children.values():
            if child.watcher is not None:
                child.watcher.cancel()


async def _reap(child: Child, grace: float) -> None:
    assert child.process is not None
    try:
        await asyncio.wait_for(child.process.wait(), grace)
    except TimeoutError:
        log.warning("service ignored SIGTERM; killing", extra={"service": child.service})
        with contextlib.suppress(ProcessLookupError):
            child.process.kill()
        await child.process.wait()


async def _close_server(server: asyncio.Server) -> None:
    server.close()
    await server.wait_closed()


def _address(server: asyncio.Server) -> str:
    host, port = server.sockets[0].getsockname()[:2]
    return f"{host}:{port}"
