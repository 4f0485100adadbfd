"""Committed records outlive the servers that hold them.

- One server, killed with SIGKILL and started again on its store: every record is back, and the
  records' clients carry on through their reconnect.
- A cluster of three, records in R3 buckets: losing the server that leads a bucket costs no
  record, and writes go on once another leads it. Elections take nats-server's own 4-9 s, so
  every wait is a bounded poll, never a timing assertion.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

import nats
import nats.errors
import pytest
from nats.aio.client import Client

from flotilla.common import errdefs
from flotilla.common.natsserver import EmbeddedNats
from flotilla.metadata import AnyValue, Container, Descriptor, Image, Metadata, Resource, Runtime
from flotilla.metadata.metadata import BUCKETS
from flotilla.testkit.cluster import NatsCluster, resilient_client

T = TypeVar("T")

NS = "durable"
DIGEST = "sha256:" + "d" * 64
TARGET = Descriptor(media_type="application/vnd.oci.image.manifest.v1+json", digest=DIGEST)
SPEC = AnyValue(type_url="types.containerd.io/opencontainers/runtime-spec/1/Spec", value=b"{}")
BOUND = 60.0


def container(container_id: str) -> Container:
    return Container(id=container_id, runtime=Runtime(name="io.containerd.runc.v2"), spec=SPEC)


async def _poll(attempt: Callable[[], Awaitable[T]], what: str) -> T:
    """``attempt``'s result once it stops failing for want of a server (bounded)."""
    try:
        async with asyncio.timeout(BOUND):
            while True:
                with contextlib.suppress(
                    errdefs.Unavailable, errdefs.DeadlineExceeded, nats.errors.Error
                ):
                    return await attempt()
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"{what}: not within {BOUND:g}s") from None


async def _write_everything(metadata: Metadata) -> None:
    await metadata.namespaces.create(NS, {"kept": "yes"})
    await metadata.images.create(NS, Image(name="kept:1", target=TARGET))
    await metadata.containers.create(NS, container("kept"))
    await metadata.leases.create(NS, "kept")
    await metadata.leases.add_resource(NS, "kept", Resource(id=DIGEST, type="content"))


async def _read_everything(metadata: Metadata) -> None:
    assert (await metadata.namespaces.get(NS)).labels == {"kept": "yes"}
    assert (await metadata.images.get(NS, "kept:1")).target == TARGET
    assert (await metadata.containers.get(NS, "kept")).spec == SPEC
    assert [r.id for r in await metadata.leases.resources(NS, "kept")] == [DIGEST]


async def test_kill_9_of_the_server_loses_no_record(nats_server: EmbeddedNats) -> None:
    async with resilient_client([nats_server.url]) as nc:
        metadata = await Metadata.open(nc)
        await _write_everything(metadata)
        assert nats_server.pid is not None
        os.kill(nats_server.pid, signal.SIGKILL)
        await nats_server.wait()
        await nats_server.start()  # the same port and store

        await _poll(lambda: _read_everything(metadata), "the records after the restart")
        await _poll(lambda: metadata.containers.create(NS, container("after")), "a new write")
        assert {c.id async for c in metadata.containers.list(NS)} == {"kept", "after"}


async def _leader(nc: Client, stream: str) -> str | None:
    cluster = (await nc.jetstream(timeout=2).stream_info(stream)).cluster
    return cluster.leader if cluster is not None and cluster.leader else None


async def _all_current(nc: Client, cluster: NatsCluster) -> None:
    for bucket in BUCKETS:
        info = (await nc.jetstream(timeout=2).stream_info(f"KV_{bucket}")).cluster
        current = [p for p in (info.replicas or []) if p.current and not p.offline] if info else []
        if info is None or not info.leader or len(current) != cluster.size - 1:
            raise errdefs.Unavailable(f"{bucket} not current everywhere yet")


@pytest.mark.slow
async def test_losing_one_of_three_servers_loses_no_record(nats_cluster: NatsCluster) -> None:
    async with resilient_client(nats_cluster.urls) as nc:
        metadata = await _poll(lambda: Metadata.open(nc, replicas=3), "the R3 buckets")
        await _poll(lambda: _all_current(nc, nats_cluster), "the buckets on every server")
        await _poll(lambda: _write_everything(metadata), "the first writes")
        leader = await _poll(lambda: _leader(nc, "KV_flotilla_containers"), "a leader")
        assert leader is not None
        down = nats_cluster.index(leader)

        await nats_cluster.kill(down)

        await _poll(lambda: _read_everything(metadata), f"the records without {leader}")

        async def create_after() -> None:
            with contextlib.suppress(errdefs.AlreadyExists):  # an earlier try was stored
                await metadata.containers.create(NS, container("after"))

        await _poll(create_after, f"a write without {leader}")
        await nats_cluster.start(down)
        await _poll(lambda: _all_current(nc, nats_cluster), f"{leader} catching up")
        assert {c.id async for c in metadata.containers.list(NS)} == {"kept", "after"}
