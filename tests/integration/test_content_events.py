"""The content store's events on real NATS: a change never fails for want of JetStream, and its
event follows, once, even after an outage or a crash of the store's process."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from nats.aio.client import Client

from flotilla.common import digests
from flotilla.common.bus import Bus
from flotilla.common.events import Envelope
from flotilla.common.events.jetstream import JetStreamSink, ensure_events_stream
from flotilla.common.events.outbox import Outbox
from flotilla.common.events.relay import Relay
from flotilla.common.natsserver import EmbeddedNats
from flotilla.common.subjects import EVENTS_STREAM
from flotilla.content.events import ContentCreate, ContentDelete
from flotilla.content.helpers import write_blob
from flotilla.content.local import LocalStore

NS = "events"
LONG = 60.0  # a bound never reached when things work: no timing is asserted

# Commits a blob with a relay that cannot reach JetStream, says so, and waits to be killed.
COMMIT_THEN_CRASH = """
import asyncio, sys
from flotilla.common import errdefs
from flotilla.common.events.relay import Relay
from flotilla.content.helpers import write_blob
from flotilla.content.local import LocalStore

class Away:
    duplicate_window = 120.0
    async def send(self, record):
        raise errdefs.Unavailable("away")
    async def stored(self, records, since_ns):
        raise errdefs.Unavailable("away")

async def main():
    root = sys.argv[1]
    async with Relay(LocalStore.database(root), Away()) as relay:
        store = await LocalStore.open(root, relay)
        print(await write_blob(store, "events", "crash", b"committed, then killed"), flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""

_event = msgspec.msgpack.Decoder(ContentCreate | ContentDelete)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "content"


@pytest.fixture
async def stream(bus: Bus) -> Client:
    await ensure_events_stream(bus.nc)
    return bus.nc


@pytest.fixture
async def store(root: Path, stream: Client) -> AsyncIterator[LocalStore]:
    sink = JetStreamSink(stream, timeout=0.5)
    async with (
        Relay(LocalStore.database(root), sink, backoff=(0.05, 0.5)) as relay,
        await LocalStore.open(root, relay) as opened,
    ):
        yield opened


async def stored(nc: Client) -> list[tuple[str, ContentCreate | ContentDelete]]:
    """Every event in the stream, in order."""
    js = nc.jetstream()
    last = (await js.stream_info(EVENTS_STREAM)).state.last_seq
    events = []
    for sequence in range(1, last + 1):
        message = await js.get_msg(EVENTS_STREAM, sequence)
        envelope = msgspec.msgpack.decode(message.data or b"", type=Envelope)
        assert envelope.namespace == NS
        events.append((envelope.topic, _event.decode(envelope.event)))
    return events


async def drained(root: Path) -> None:
    """Wait until the store's outbox is empty: every event it recorded is in JetStream."""
    outbox = await asyncio.to_thread(Outbox, LocalStore.database(root))
    try:
        for _ in range(int(LONG / 0.05)):
            if not (await asyncio.to_thread(outbox.pending, 1)).rows:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the outbox never drained")
    finally:
        outbox.close()


def commit_then_crash(root: Path) -> str:
    """The digest a child process committed before it was killed."""
    child = subprocess.Popen(
        [sys.executable, "-c", COMMIT_THEN_CRASH, str(root)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    digest = child.stdout.readline().strip()
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL
    return digest


async def test_a_commit_without_jetstream_succeeds_and_its_event_follows(
    store: LocalStore, stream: Client, nats_server: EmbeddedNats, root: Path
) -> None:
    await nats_server.stop()
    data = b"committed while NATS is down"
    digest = await write_blob(store, NS, "dark", data)  # no Unavailable: the blob is there
    await store.delete(NS, digest)
    await nats_server.start()
    await drained(root)
    assert await stored(stream) == [
        ("/content/create", ContentCreate(digest=digest, size=len(data))),
        ("/content/delete", ContentDelete(digest=digest)),
    ]


async def test_a_commit_whose_process_dies_before_relaying_is_announced_after(
    root: Path, stream: Client
) -> None:
    digest = await asyncio.to_thread(commit_then_crash, root)
    assert digest == digests.digest_of(b"committed, then killed")
    assert await stored(stream) == []
    async with Relay(LocalStore.database(root), JetStreamSink(stream)):
        await drained(root)
    size = len(b"committed, then killed")
    assert await stored(stream) == [("/content/create", ContentCreate(digest=digest, size=size))]
