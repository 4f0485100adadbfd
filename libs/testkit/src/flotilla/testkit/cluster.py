"""A real three-server NATS cluster with JetStream, for tests that lose a server on purpose.

Each server is a ``nats-server`` child process on loopback (named ``n1``..``n3``, one cluster
name) with its own JetStream store, so streams with three replicas can be created, a server can
be SIGKILLed and started again on the same ports with the same store. The ``nats_cluster``
fixture yields one started cluster and kills every server after the test, whatever its outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client

from flotilla.common import errdefs
from flotilla.common.natsserver import GO_GC_PERCENT, nats_server_binary
from flotilla.common.process import child_command, child_options
from flotilla.testkit._http import request
from flotilla.testkit._proc import free_port

__all__ = ["CLUSTER_NAME", "NatsCluster", "nats_cluster", "resilient_client"]

CLUSTER_NAME = "flotilla-test"

_HOST = "127.0.0.1"
_POLL = 0.05
# Small, so three servers on one test machine do not claim its memory and disk three times.
_MAX_MEMORY_STORE = 256 << 20
_MAX_FILE_STORE = 4 << 30

Process = asyncio.subprocess.Process


class _Member:
    """One server of the cluster: its name, directory, ports and process."""

    def __init__(self, name: str, directory: Path, route_port: int) -> None:
        self.name = name
        self.directory = directory
        self.route_port = route_port
        # 0 until the first start reads back the ports the server picked; kept from then on.
        self.client_port = 0
        self.http_port = 0
        self.process: Process | None = None

    @property
    def url(self) -> str:
        return f"nats://{_HOST}:{self.client_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    @property
    def ports_dir(self) -> Path:
        return self.directory / "ports"

    def config(self, peers: list[int]) -> str:
        """The server's configuration: ``peers`` are the other members' route ports."""
        routes = [f"nats-route://{_HOST}:{port}" for port in peers]
        jetstream = {
            "store_dir": str(self.directory / "jetstream"),
            "max_memory_store": _MAX_MEMORY_STORE,
            "max_file_store": _MAX_FILE_STORE,
        }
        cluster = {
            "name": CLUSTER_NAME,
            "listen": f"{_HOST}:{self.route_port}",
            "routes": routes,
        }
        # nats-server's configuration format reads JSON objects.
        settings = {
            "server_name": self.name,
            "listen": f"{_HOST}:{self.client_port or -1}",
            "http": f"{_HOST}:{self.http_port or -1}",
            "ports_file_dir": str(self.ports_dir),
            "jetstream": jetstream,
            "cluster": cluster,
        }
        return json.dumps(settings, indent=2)

    def last_log_line(self) -> str:
        with contextlib.suppress(OSError):
            lines = self.log.read_text(errors="replace").strip().splitlines()
            if lines:
                return lines[-1]
        return "no log"

    def check_alive(self) -> None:
        process = self.process
        if process is not None and process.returncode is not None:
            raise errdefs.Unavailable(
                f"nats-server {self.name} exited with status {process.returncode}: "
                f"{self.last_log_line()}"
            )


class NatsCluster:
    """Three ``nats-server`` processes with JetStream in one cluster, on loopback.

    Servers are addressed by index (0, 1, 2 for ``n1``, ``n2``, ``n3``). Their client, route and
    monitoring ports are fixed at the first start, so a server started again after
    :meth:`kill` comes back where its clients and peers expect it, with its store.

    Args:
        root: a directory for the servers' configuration, logs and JetStream stores.
        size: the number of servers.
    """

    def __init__(self, root: Path, size: int = 3) -> None:
        route_ports = _distinct_free_ports(size)
        self._members = [
            _Member(f"n{i + 1}", root / f"n{i + 1}", port) for i, port in enumerate(route_ports)
        ]

    @property
    def size(self) -> int:
        """The number of servers, running or not."""
        return len(self._members)

    @property
    def names(self) -> list[str]:
        """The server names, ``n1`` first."""
        return [member.name for member in self._members]

    @property
    def urls(self) -> list[str]:
        """Every server's client URL (valid once the cluster started)."""
        return [member.url for member in self._members]

    def url(self, i: int) -> str:
        """Server ``i``'s client URL."""
        return self._members[i].url

    def index(self, name: str) -> int:
        """The index of the server named ``name`` (as stream info's ``cluster.leader`` names it)."""
        try:
            return self.names.index(name)
        except ValueError:
            raise errdefs.NotFound(f"nats-server {name}: not in this cluster") from None

    def running(self, i: int) -> bool:
        """Whether server ``i`` runs."""
        return self._members[i].running

    def pid(self, i: int) -> int | None:
        """Server ``i``'s process id while it runs."""
        process = self._members[i].process
        return process.pid if process is not None and process.returncode is None else None

    async def start_all(self, timeout: float = 30.0) -> None:
        """Start every server that is not running and wait for a JetStream meta leader.

        On failure or cancellation every server is killed: nothing is left running.
        """
        try:
            async with asyncio.timeout(timeout):
                # One after the other: each waits only for its listener (milliseconds), and a
                # failure leaves no launch half done behind it.
                for i, member in enumerate(self._members):
                    if not member.running:
                        await self._launch(i)
                await self.wait_meta_leader()
        except BaseException as err:
            await self.stop()
            if isinstance(err, TimeoutError):
                raise errdefs.Unavailable(
                    f"nats cluster {CLUSTER_NAME}: no JetStream meta leader within {timeout:g}s"
                ) from None
            raise

    async def start(self, i: int, timeout: float = 30.0) -> None:
        """Start server ``i`` again, on its ports with its store.

        Returns once it listens; when a majority of the servers then runs, once every running
        server also agrees on a JetStream meta leader. A start that fails kills the server.
        """
        member = self._members[i]
        if member.running:
            raise errdefs.FailedPrecondition(f"nats-server {member.name} already runs")
        try:
            async with asyncio.timeout(timeout):
                await self._launch(i)
                if 2 * sum(m.running for m in self._members) > self.size:
                    await self.wait_meta_leader()
        except BaseException as err:
            await self.kill(i)
            if isinstance(err, TimeoutError):
                raise errdefs.Unavailable(
                    f"nats-server {member.name} not back in cluster {CLUSTER_NAME} "
                    f"within {timeout:g}s"
                ) from None
            raise

    async def kill(self, i: int) -> None:
        """SIGKILL server ``i``, as a crash would, and reap it."""
        member = self._members[i]
        process = member.process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        # Shielded: a second cancellation must not leave the killed process unreaped.
        await asyncio.shield(process.wait())
        # A killed server leaves its ports file behind; the next start must not read it.
        (member.ports_dir / f"nats-server_{process.pid}.ports").unlink(missing_ok=True)
        member.process = None

    async def stop(self) -> None:
        """Kill and reap every server (their stores are disposable)."""
        for i in range(self.size):
            await self.kill(i)

    async def wait_meta_leader(self) -> str:
        """Wait until JetStream's meta group is whole again; the meta leader's name.

        That is: every running server names the same meta leader, that leader runs, and it
        counts every other running server as a current follower (so streams can be placed on
        them). Bound it with ``asyncio.timeout()``.

        Raises:
            Unavailable: a server exited meanwhile.
        """
        while True:
            views: dict[str, tuple[str, frozenset[str]]] = {}
            for member in self._members:
                member.check_alive()
                if member.running:
                    views[member.name] = await _meta_view(member)
            leaders = {leader for leader, _ in views.values()}
            # Right after a kill the others still name the dead leader: it must be running.
            leader = leaders.pop() if len(leaders) == 1 else ""
            if leader in views and set(views) - {leader} <= views[leader][1]:
                return leader
            await asyncio.sleep(_POLL)

    async def jsz(self, i: int, *, streams: bool = False) -> dict[str, Any]:
        """Server ``i``'s JetStream monitoring report (``/jsz``), with its streams if asked."""
        member = self._members[i]
        query = "?streams=true" if streams else ""
        response = await request("GET", _jsz_url(member) + query)
        if response.status != 200:
            raise errdefs.Unavailable(f"nats-server {member.name}: /jsz answered {response.status}")
        report: dict[str, Any] = json.loads(response.body)
        return report

    async def stream_state(self, i: int, stream: str) -> dict[str, Any] | None:
        """The state of server ``i``'s own copy of ``stream`` (``messages``, ``last_seq``...).

        None when the server holds no such stream (yet).
        """
        report = await self.jsz(i, streams=True)
        for account in report.get("account_details") or []:
            for detail in account.get("stream_detail") or []:
                if detail.get("name") == stream:
                    state: dict[str, Any] = detail.get("state") or {}
                    return state
        return None

    async def _launch(self, i: int) -> None:
        member = self._members[i]
        member.directory.mkdir(parents=True, exist_ok=True)
        member.ports_dir.mkdir(exist_ok=True)
        peers = [m.route_port for m in self._members if m is not member]
        config = member.directory / "server.conf"
        config.write_text(member.config(peers))
        argv = [str(nats_server_binary()), "-c", str(config)]
        with member.log.open("ab") as log:
            spawn = asyncio.ensure_future(
                asyncio.create_subprocess_exec(
                    *child_command(argv),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                    env={"GOGC": GO_GC_PERCENT, **os.environ},
                    **child_options(),
                )
            )
            try:
                member.process = await asyncio.shield(spawn)
            except asyncio.CancelledError:
                # The process may exist already: keep it, so the caller's cleanup kills it.
                member.process = await spawn
                raise
        await _read_ports(member, member.process)


async def _read_ports(member: _Member, process: Process) -> None:
    """Wait for the ports file the server writes once it listens; keep its ports."""
    # The file is named after this very process, so a port that someone else holds is never
    # mistaken for ours.
    ports_file = member.ports_dir / f"nats-server_{process.pid}.ports"
    while True:
        member.check_alive()
        with contextlib.suppress(FileNotFoundError, ValueError, LookupError):
            ports = json.loads(ports_file.read_text())
            client = _port(ports["nats"][0])
            http = _port(ports["monitoring"][0])
            break
        await asyncio.sleep(_POLL / 2)
    if member.client_port and (client, http) != (member.client_port, member.http_port):
        raise errdefs.Internal(f"nats-server {member.name} moved to ports {client} and {http}")
    member.client_port, member.http_port = client, http


async def _meta_view(member: _Member) -> tuple[str, frozenset[str]]:
    """The meta leader ``member`` knows of, and the followers it counts as current.

    The leader is "" while there is none (or no answer); the followers are known only when
    ``member`` is the leader.
    """
    with contextlib.suppress(OSError, ValueError):
        response = await request("GET", _jsz_url(member), socket_timeout=2.0)
        if response.status == 200:
            meta = json.loads(response.body).get("meta_cluster") or {}
            replicas = meta.get("replicas") or []
            current = frozenset(str(peer["name"]) for peer in replicas if peer.get("current"))
            return str(meta.get("leader", "")), current
    return "", frozenset()


def _jsz_url(member: _Member) -> str:
    return f"http://{_HOST}:{member.http_port}/jsz"


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _distinct_free_ports(count: int) -> list[int]:
    """``count`` different ports that were free a moment ago."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


async def _ignore(_: Exception) -> None:
    """nats-py's error callback: lost connections are what cluster tests cause."""


@contextlib.asynccontextmanager
async def resilient_client(urls: list[str]) -> AsyncIterator[Client]:
    """A client of ``urls`` that reconnects at once and for ever, and keeps quiet about it."""
    nc = await nats.connect(
        urls, connect_timeout=5, reconnect_time_wait=0.1, max_reconnect_attempts=-1,
        error_cb=_ignore,
    )  # fmt: skip
    try:
        yield nc
    finally:
        await nc.close()


@pytest.fixture
async def nats_cluster(tmp_path: Path) -> AsyncIterator[NatsCluster]:
    """A started three-server NATS cluster with JetStream; killed after the test."""
    cluster = NatsCluster(tmp_path / "nats-cluster")
    await cluster.start_all()
    try:
        yield cluster
    finally:
        await cluster.stop()
