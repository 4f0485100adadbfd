"""pytest fixtures for every test tier: a real nats-server, a connected bus, service processes.

Enable them in a ``conftest.py`` with ``pytest_plugins = ["flotilla.testkit.services"]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

import nats.errors
import pytest

from flotilla.common.bus import Bus, connect
from flotilla.common.bus.discovery import SERVICE_PREFIX
from flotilla.common.natsserver import EmbeddedNats

__all__ = [
    "ServiceProcess",
    "bus",
    "nats_server",
    "nats_url",
    "node_env",
    "node_services",
    "run_cli",
]


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[EmbeddedNats]:
    """A real nats-server on a free loopback port, JetStream in a temp dir."""
    async with EmbeddedNats(tmp_path / "nats") as server:
        yield server


@pytest.fixture
def nats_url(nats_server: EmbeddedNats) -> str:
    """The URL of the test's nats-server."""
    return nats_server.url


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    """A bus connection as node ``test-node``."""
    connection = await connect([nats_url], node="test-node", name="pytest", connect_timeout=5)
    yield connection
    await connection.close()


class ServiceProcess:
    """A Flotilla service run for real, as ``python -m flotilla.<service>``, restartable.

    Args:
        service: the service name, e.g. ``content``.
        env: extra environment (``FLOTILLA_ROOT``, ``FLOTILLA_NATS__URLS``, ...).
    """

    def __init__(self, service: str, env: dict[str, str]) -> None:
        self.service = service
        self.env = {**os.environ, **env}
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, bus: Bus, timeout: float = 30.0) -> None:
        """Start the process and wait until it answers ``$SRV.PING`` on ``bus``."""
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", f"flotilla.{self.service}", env=self.env
        )
        subject = f"$SRV.PING.{SERVICE_PREFIX}{self.service}"
        async with asyncio.timeout(timeout):
            while True:
                if self.process.returncode is not None:
                    raise AssertionError(f"{self.service} exited with {self.process.returncode}")
                with contextlib.suppress(nats.errors.Error):
                    await bus.nc.request(subject, b"", timeout=0.5)
                    return
                await asyncio.sleep(0.05)

    async def kill(self) -> None:
        """SIGKILL the process, as a crash would."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    async def stop(self) -> int:
        """SIGTERM the process and return its exit status."""
        if self.process is None:
            return 0
        if self.process.returncode is not None:
            return self.process.returncode
        self.process.terminate()
        return await asyncio.wait_for(self.process.wait(), 30)


def node_env(root: Path, nats_url: str, node: str, extra: Mapping[str, str] = {}) -> dict[str, str]:
    """The environment of a service process of ``node`` on ``root`` (quiet logs)."""
    return {
        "FLOTILLA_ROOT": str(root),
        "FLOTILLA_NATS__URLS": nats_url,
        "FLOTILLA_NODE_ID": node,
        "FLOTILLA_LOG_LEVEL": "warning",
        **extra,
    }


@contextlib.asynccontextmanager
async def node_services(
    bus: Bus,
    nats_url: str,
    root: Path,
    names: Sequence[str],
    env: Mapping[str, str] = {},
    node: str | None = None,
) -> AsyncIterator[list[ServiceProcess]]:
    """``names`` started in order as processes of one node on ``root``; stopped in reverse.

    Args:
        bus: the test's connection (its node is the services' node).
        nats_url: where the services connect.
        root: their ``FLOTILLA_ROOT``.
        names: e.g. ``("content", "snapshots")``.
        env: more environment (``FLOTILLA_SNAPSHOTS__FOLLOW_IDLE``, ...).
        node: their node, when not the bus's.
    """
    started: list[ServiceProcess] = []
    try:
        for name in names:
            service = ServiceProcess(name, node_env(root, nats_url, node or bus.node, env))
            await service.start(bus)
            started.append(service)
        yield started
    finally:
        for service in reversed(started):
            await service.stop()


async def run_cli(env: Mapping[str, str], *args: str, stdin: bytes = b"") -> tuple[int, bytes, str]:
    """Run ``flotilla <args>`` with this interpreter: its exit status, stdout and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flotilla.cli", *args, env=dict(env),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate(stdin)
    assert proc.returncode is not None
    return proc.returncode, out, err.decode()
