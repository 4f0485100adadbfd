"""Container records: 10,000 created, listed, one read, all deleted, vs containerd's metadata.

Each side runs the same sequence in a namespace of its own, new every round (500 containers
with ``--quick``):

1. create every container, 64 requests in flight (containers/s);
2. list them all (ms), checked to be all of them;
3. read one, 200 times one after another, ids drawn the same way on both sides (p50 ms);
4. delete every container, 64 in flight (containers/s), then check the namespace is empty.

A container is what ``ctr run`` makes: id ``c-00000``.., runtime ``io.containerd.runc.v2``,
a 2.4 KB OCI runtime spec (JSON in an ``Any``), busybox's image name, an overlayfs snapshot key
equal to its id, and two labels. Nothing runs and no snapshot is made: only records move.

- containerd: its Containers API over gRPC on the private containerd's socket, from this
  process through stubs generated from containerd's protos (``grpc.aio``), the namespace in
  the ``containerd-namespace`` metadata as ``ctr`` sends it. The list is ``ListStream``, as
  containerd's own client lists (a plain ``List`` of 10,000 specs is past gRPC's 16 MiB).
  Records land in containerd's bolt database, each write a transaction synced to disk.
- Flotilla: ``flotilla.metadata`` in this process on a nats-server of its own, as the gateway
  and the CLI use it: each record a compare-and-set in a JetStream key-value bucket (file
  storage, nats-server's default syncing), its event on the events stream.

Both clients are Python on one event loop, so each side's figure includes its client's cost.
The rounds alternate (containerd, Flotilla, containerd, ...) after one warm-up round of each;
a round yields one figure per case, so ``abab`` (one figure per run) is not used.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, fields
from types import ModuleType
from typing import Any, Protocol

# Read once, when gRPC is imported. Its fork handlers only serve a child that uses gRPC; ours
# (ctr, containerd, nats-server) do not, and each fork with gRPC's threads busy printed a notice.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import grpc  # type: ignore[import-untyped]
from bench.harness import BenchContext, Result
from google.protobuf import any_pb2  # type: ignore[import-untyped]

from flotilla.common.bus import connect
from flotilla.common.natsserver import EmbeddedNats
from flotilla.gateway.protogen import containerd_module
from flotilla.metadata import AnyValue, Container, Metadata, Runtime

FULL_COUNT = 10_000
QUICK_COUNT = 500
IN_FLIGHT = 64
GETS = 200
RUNTIME = "io.containerd.runc.v2"
SPEC_TYPE = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
IMAGE = "docker.io/library/busybox:latest"
SNAPSHOTTER = "overlayfs"
LABELS = {"io.containerd.image.config.stop-signal": "SIGTERM", "bench": "metadata"}
_MAX_MESSAGE = 16 << 20  # what ctr allows too (containerd's defaults.DefaultMaxRecvMsgSize)
_namespaces = (f"bench-metadata-{n}" for n in itertools.count())


def container_ids(count: int) -> list[str]:
    """``c-00000``, ``c-00001``, ..."""
    return [f"c-{n:05d}" for n in range(count)]


_CAPABILITIES = [
    f"CAP_{name}"
    for name in ("CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID",
                 "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL",
                 "AUDIT_WRITE")
]  # fmt: skip
_MASKED = [
    *(f"/proc/{name}" for name in ("acpi", "asound", "kcore", "keys", "latency_stats",
                                   "timer_list", "timer_stats", "sched_debug", "scsi")),
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
]  # fmt: skip
_READONLY = [f"/proc/{name}" for name in ("bus", "fs", "irq", "sys", "sysrq-trigger")]
_NOSUID = ("nosuid", "noexec", "nodev")
_MOUNTS = [  # destination, type, source, options
    ("/proc", "proc", "proc", _NOSUID),
    ("/dev", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
    ("/dev/pts", "devpts", "devpts",
     ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5")),
    ("/dev/shm", "tmpfs", "shm", (*_NOSUID, "mode=1777", "size=65536k")),
    ("/dev/mqueue", "mqueue", "mqueue", _NOSUID),
    ("/sys", "sysfs", "sysfs", (*_NOSUID, "ro")),
    ("/sys/fs/cgroup", "cgroup", "cgroup", (*_NOSUID, "relatime", "ro")),
    ("/run", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
]  # fmt: skip


def oci_spec(container_id: str) -> bytes:
    """The runtime spec ``ctr run`` writes for busybox ``sh`` (containerd's defaults): 2.4 KB."""
    spec = {
        "ociVersion": "1.1.0",
        "process": {
            "user": {"uid": 0, "gid": 0, "additionalGids": [0, 10]},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "capabilities": {key: _CAPABILITIES for key in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs"},
        "hostname": container_id,
        "mounts": [
            {"destination": dest, "type": kind, "source": source, "options": list(options)}
            for dest, kind, source, options in _MOUNTS
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "cgroupsPath": f"/bench/{container_id}",
            "namespaces": [
                {"type": kind} for kind in ("pid", "ipc", "uts", "mount", "network", "cgroup")
            ],
            "maskedPaths": _MASKED,
            "readonlyPaths": _READONLY,
        },
    }
    return json.dumps(spec, separators=(",", ":")).encode()


class Side(Protocol):
    """One container store under test."""

    async def create(self, namespace: str, container_id: str, spec: bytes) -> None:
        """Create the container ``container_id`` with the runtime spec ``spec``."""
        ...

    async def count(self, namespace: str) -> int:
        """List every container of ``namespace``; how many there were."""
        ...

    async def get(self, namespace: str, container_id: str) -> str:
        """Read one container; its id."""
        ...

    async def delete(self, namespace: str, container_id: str) -> None:
        """Delete one container."""
        ...


class ContainerdSide:
    """containerd's Containers service through the stubs generated from its protos."""

    def __init__(self, channel: Any) -> None:
        self.pb: ModuleType = containerd_module("services.containers.v1.containers_pb2")
        grpc_module = containerd_module("services.containers.v1.containers_pb2_grpc")
        self.stub = grpc_module.ContainersStub(channel)

    async def create(self, namespace: str, container_id: str, spec: bytes) -> None:
        container = self.pb.Container(
            id=container_id,
            labels=LABELS,
            image=IMAGE,
            runtime=self.pb.Container.Runtime(name=RUNTIME),
            spec=any_pb2.Any(type_url=SPEC_TYPE, value=spec),
            snapshotter=SNAPSHOTTER,
            snapshot_key=container_id,
        )
        request = self.pb.CreateContainerRequest(container=container)
        await self.stub.Create(request, metadata=_metadata(namespace))

    async def count(self, namespace: str) -> int:
        found = 0
        stream = self.stub.ListStream(
            self.pb.ListContainersRequest(), metadata=_metadata(namespace)
        )
        async for _message in stream:
            found += 1
        return found

    async def get(self, namespace: str, container_id: str) -> str:
        request = self.pb.GetContainerRequest(id=container_id)
        reply = await self.stub.Get(request, metadata=_metadata(namespace))
        return str(reply.container.id)

    async def delete(self, namespace: str, container_id: str) -> None:
        request = self.pb.DeleteContainerRequest(id=container_id)
        await self.stub.Delete(request, metadata=_metadata(namespace))


def _metadata(namespace: str) -> tuple[tuple[str, str], ...]:
    return (("containerd-namespace", namespace),)


class FlotillaSide:
    """Flotilla's container records through ``flotilla.metadata``."""

    def __init__(self, metadata: Metadata) -> None:
        self.containers = metadata.containers

    async def create(self, namespace: str, container_id: str, spec: bytes) -> None:
        container = Container(
            id=container_id,
            labels=LABELS,
            image=IMAGE,
            runtime=Runtime(name=RUNTIME),
            spec=AnyValue(type_url=SPEC_TYPE, value=spec),
            snapshotter=SNAPSHOTTER,
            snapshot_key=container_id,
        )
        await self.containers.create(namespace, container)

    async def count(self, namespace: str) -> int:
        return len([c async for c in self.containers.list(namespace)])

    async def get(self, namespace: str, container_id: str) -> str:
        return (await self.containers.get(namespace, container_id)).id

    async def delete(self, namespace: str, container_id: str) -> None:
        await self.containers.delete(namespace, container_id)


@dataclass
class Round:
    """One round of one side: a figure per case."""

    create: float
    list_ms: float
    get_p50_ms: float
    delete: float


@dataclass
class Workload:
    """What every round does: the same containers, the same reads."""

    ids: list[str]
    specs: dict[str, bytes]
    reads: list[str]


def workload(count: int) -> Workload:
    """``count`` containers and the ids of :data:`GETS` reads (seeded: the same every run)."""
    ids = container_ids(count)
    rng = random.Random(count)
    return Workload(ids, {i: oci_spec(i) for i in ids}, [rng.choice(ids) for _ in range(GETS)])


async def one_round(side: Side, namespace: str, work: Workload) -> Round:
    """Create, list, read and delete in ``namespace``; raises if a side loses a record."""
    create = await _rate(lambda i: side.create(namespace, i, work.specs[i]), work.ids)
    start = time.perf_counter()
    listed = await side.count(namespace)
    list_ms = (time.perf_counter() - start) * 1000
    if listed != len(work.ids):
        raise RuntimeError(f"{namespace}: listed {listed} containers, not {len(work.ids)}")
    get_p50 = statistics.median(await _latencies(side, namespace, work.reads))
    delete = await _rate(lambda i: side.delete(namespace, i), work.ids)
    if left := await side.count(namespace):
        raise RuntimeError(f"{namespace}: {left} containers left after deleting them all")
    return Round(create, list_ms, get_p50, delete)


async def _rate(action: Callable[[str], Awaitable[object]], ids: list[str]) -> float:
    """``action`` on every id, :data:`IN_FLIGHT` at a time; ids per second."""
    pending: Iterator[str] = iter(ids)

    async def worker() -> None:
        for container_id in pending:  # one iterator shared: each id taken once
            await action(container_id)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return len(ids) / (time.perf_counter() - start)


async def _latencies(side: Side, namespace: str, reads: list[str]) -> list[float]:
    samples = []
    for container_id in reads:
        start = time.perf_counter()
        found = await side.get(namespace, container_id)
        samples.append((time.perf_counter() - start) * 1000)
        if found != container_id:
            raise RuntimeError(f"{namespace}: asked for {container_id}, got {found}")
    return samples


async def _containerd(ctx: BenchContext) -> ContainerdSide:
    ctd = await ctx.containerd()
    await asyncio.to_thread(containerd_module, "services.containers.v1.containers_pb2_grpc")
    options = [
        ("grpc.max_receive_message_length", _MAX_MESSAGE),
        ("grpc.max_send_message_length", _MAX_MESSAGE),
    ]
    channel = grpc.aio.insecure_channel(f"unix://{ctd.address}", options=options)
    ctx.stack.push_async_callback(channel.close)
    return ContainerdSide(channel)


async def _flotilla(ctx: BenchContext) -> FlotillaSide:
    server = await ctx.stack.enter_async_context(EmbeddedNats(ctx.workdir / "metadata-nats"))
    bus = await connect([server.url], node="bench", name="bench-metadata", connect_timeout=10)
    ctx.stack.push_async_callback(bus.close)
    return FlotillaSide(await Metadata.open(bus.nc))


async def run(ctx: BenchContext) -> list[Result]:
    """Every case, both sides: one warm-up round each, then the measured rounds."""
    count = QUICK_COUNT if ctx.quick else FULL_COUNT
    work = await asyncio.to_thread(workload, count)
    theirs = await ctx.lazy("metadata-containerd", _containerd)
    ours = await ctx.lazy("metadata-flotilla", _flotilla)
    await one_round(theirs, next(_namespaces), work)
    await one_round(ours, next(_namespaces), work)
    base: list[Round] = []
    mine: list[Round] = []
    for _ in range(ctx.rounds(5)):
        base.append(await one_round(theirs, next(_namespaces), work))
        mine.append(await one_round(ours, next(_namespaces), work))
    return _results(count, base, mine)


def _results(count: int, base: list[Round], mine: list[Round]) -> list[Result]:
    cases = {
        "create": (f"containers create {count} ({IN_FLIGHT} in flight)", "containers/s", True),
        "list_ms": (f"containers list {count}", "ms", False),
        "get_p50_ms": (f"container get p50 ({GETS} sequential, {count} stored)", "ms", False),
        "delete": (f"containers delete {count} ({IN_FLIGHT} in flight)", "containers/s", True),
    }
    results = []
    for field in fields(Round):
        case, unit, higher = cases[field.name]
        theirs = [getattr(r, field.name) for r in base]
        ours = [getattr(r, field.name) for r in mine]
        results.append(Result(case, unit, "containerd", theirs, ours, higher_is_better=higher))
    return results
