"""A Flotilla node for benchmarks: the embedded nats-server and real service processes."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from flotilla.common.bus import Bus, connect
from flotilla.common.natsserver import EmbeddedNats
from flotilla.testkit.services import ServiceProcess

NODE = "bench-node"
SERVICES = ("content", "snapshots", "images")


@dataclass
class Flotilla:
    """What a benchmark talks to: a bus connection on the node running the services."""

    bus: Bus
    root: Path
    node: str = NODE


async def start_flotilla(stack: AsyncExitStack, workdir: Path) -> Flotilla:
    """Start NATS and every service in :data:`SERVICES` on ``stack`` (stopped in reverse)."""
    server = await stack.enter_async_context(EmbeddedNats(workdir / "flotilla-nats"))
    bus = await connect([server.url], node=NODE, name="bench", connect_timeout=10)
    stack.push_async_callback(bus.close)
    env = {
        "FLOTILLA_ROOT": str(workdir / "flotilla-root"),
        "FLOTILLA_STATE": str(workdir / "flotilla-state"),
        "FLOTILLA_NATS__URLS": server.url,
        "FLOTILLA_NODE_ID": NODE,
        "FLOTILLA_LOG_LEVEL": "warning",
    }
    for name in SERVICES:
        service = ServiceProcess(name, env)
        await service.start(bus)
        stack.push_async_callback(service.stop)
    return Flotilla(bus=bus, root=workdir / "flotilla-root")
