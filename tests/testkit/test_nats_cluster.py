"""The three-server NATS cluster: replicated JetStream records outlive the servers that held them.

Elections take nats-server's election timeout (4-9 s, fixed in the server), so every wait for
one is a bounded poll, never a sleep and never an assertion on how long it took.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

import nats
import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from flotilla.testkit.cluster import NatsCluster, resilient_client

T = TypeVar("T")

BUCKET = "survivor"
STREAM = f"KV_{BUCKET}"
KEY = "key"
REQUEST_TIMEOUT = 2.0
"""Per request while polling: a request lost to a dying server is retried soon."""
SETUP_TIMEOUT = 10.0
BOUND = 60.0
"""How long a poll may go on before the test fails: a bound for a stuck cluster, not a measure."""


async def _create_bucket(nc: Client, cluster: NatsCluster) -> KeyValue:
    """The bucket, with three replicas in files, once every server holds a current copy."""
    js = nc.jetstream(timeout=SETUP_TIMEOUT)
    config = KeyValueConfig(bucket=BUCKET, replicas=3, storage=StorageType.FILE)
    await _poll(lambda: js.create_key_value(config), "the bucket")  # the same config: idempotent
    # Used from here on, when servers die: short requests, retried by the polls.
    js = nc.jetstream(timeout=REQUEST_TIMEOUT)
    await _poll(lambda: _all_current(js, cluster), "the new bucket on every server")
    return await js.key_value(BUCKET)


async def _put(kv: KeyValue, value: bytes) -> int:
    """``kv.put``, retried while the new stream's subjects have no responder here yet."""
    # A retry after a lost acknowledgement stores the value again: its revision is the latest.
    return await _poll(lambda: kv.put(KEY, value), f"a first put of {KEY}")


async def _poll(check: Callable[[], Awaitable[T | None]], what: str) -> T:
    """``check``'s first result that is not None; NATS errors count as "not yet"."""
    try:
        async with asyncio.timeout(BOUND):
            while True:
                with contextlib.suppress(nats.errors.Error):
                    result = await check()
                    if result is not None:
                        return result
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"{what}: not within {BOUND:g}s") from None


async def _leader(js: JetStreamContext) -> str | None:
    """The bucket stream's leader, None while it has none."""
    cluster = (await js.stream_info(STREAM)).cluster
    return cluster.leader if cluster is not None and cluster.leader else None


async def _all_current(js: JetStreamContext, cluster: NatsCluster) -> bool | None:
    """True once the stream has a leader and every other server is a current replica."""
    info = (await js.stream_info(STREAM)).cluster
    if info is None or not info.leader:
        return None
    replicas = info.replicas or []
    current = [peer for peer in replicas if peer.current and not peer.offline]
    return True if len(current) == cluster.size - 1 else None


async def test_replicated_bucket_survives_losing_its_leader(nats_cluster: NatsCluster) -> None:
    async with resilient_client(nats_cluster.urls) as nc:
        js = nc.jetstream(timeout=REQUEST_TIMEOUT)
        kv = await _create_bucket(nc, nats_cluster)
        first = await _put(kv, b"one")
        old_leader = await _poll(lambda: _leader(js), "the stream's leader")
        down = nats_cluster.index(old_leader)

        await nats_cluster.kill(down)

        async def new_leader() -> str | None:
            leader = await _leader(js)
            return leader if leader != old_leader else None

        await _poll(new_leader, f"a stream leader other than {old_leader}")
        entry = await _poll(lambda: kv.get(KEY), f"{KEY} without {old_leader}")
        assert (entry.value, entry.revision) == (b"one", first)

        async def update() -> int:
            try:
                return await kv.update(KEY, b"two", first)
            except KeyWrongLastSequenceError:
                # A retry after an acknowledgement that was lost: the first attempt was stored.
                latest = await kv.get(KEY)
                assert latest.value == b"two", latest
                assert latest.revision is not None
                return latest.revision

        second = await _poll(update, f"an update of {KEY} without {old_leader}")
        assert second == first + 1

        await nats_cluster.start(down)

        async def caught_up() -> bool | None:
            state = await nats_cluster.stream_state(down, STREAM)
            if state is None or state.get("last_seq") != second:
                return None
            return await _all_current(js, nats_cluster)

        await _poll(caught_up, f"{old_leader} catching up")
        assert (await kv.get(KEY)).value == b"two"


async def test_acknowledged_write_survives_killing_every_server(nats_cluster: NatsCluster) -> None:
    async with resilient_client(nats_cluster.urls) as nc:
        kv = await _create_bucket(nc, nats_cluster)
        # Acknowledged: a majority wrote it to its files. nats-server does not fsync each write,
        # but what a killed process wrote stays in the kernel's page cache.
        revision = await _put(kv, b"kept")

        for i in range(nats_cluster.size):
            await nats_cluster.kill(i)
        await nats_cluster.start_all()

        js = nc.jetstream(timeout=REQUEST_TIMEOUT)
        await _poll(lambda: _all_current(js, nats_cluster), "the stream back on every server")
        entry = await _poll(lambda: kv.get(KEY), f"{KEY} after the restart")
        assert (entry.value, entry.revision) == (b"kept", revision)
