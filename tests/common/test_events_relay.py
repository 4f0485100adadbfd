"""Events are never lost and never doubled: the outbox and its relay against a real nats-server.

Outages are real (the embedded server stopped and started again on its port, its JetStream
directory kept), crashes are real (a child process killed with SIGKILL), and "exactly once"
is the stream's own message count.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import msgspec
import pytest
from nats.aio.client import Client
from nats.js.api import StreamConfig

from flotilla.common import errdefs
from flotilla.common.bus import Bus
from flotilla.common.events import Event
from flotilla.common.events.envelope import decode_envelope
from flotilla.common.events.jetstream import (
    JetStreamPublisher,
    JetStreamSink,
    _stream_config,
    ensure_events_stream,
)
from flotilla.common.events.outbox import Outbox
from flotilla.common.events.relay import Relay
from flotilla.common.natsserver import EmbeddedNats
from flotilla.common.subjects import EVENTS_STREAM

LONG = 60.0  # a bound never reached when things work: no timing is asserted


class Exited(Event, frozen=True, kw_only=True, tag="test.Exited"):
    id: str


# Records one event through its own relay, whose sink stores it in JetStream and then hangs
# before the relay can forget the row; says "sent" and waits to be killed.
SENT_NOT_FORGOTTEN = """
import asyncio, sys
from pathlib import Path
import nats
from flotilla.common.events import Event
from flotilla.common.events.jetstream import JetStreamSink
from flotilla.common.events.relay import Relay

class Exited(Event, frozen=True, kw_only=True, tag="test.Exited"):
    id: str

class Stalling(JetStreamSink):
    async def send(self, record):
        await super().send(record)
        print("sent", flush=True)
        await asyncio.Event().wait()

async def main():
    nc = await nats.connect(sys.argv[2])
    async with Relay(Path(sys.argv[1]), Stalling(nc, duplicate_window=float(sys.argv[3]))) as relay:
        await relay.publish("ns", "/tasks/exit", Exited(id="once"))
        await asyncio.Event().wait()

asyncio.run(main())
"""

# Records one event durably and is killed before any relay runs.
RECORDED_ONLY = """
import sys
from pathlib import Path
from flotilla.common.events import Event
from flotilla.common.events.outbox import Outbox

class Exited(Event, frozen=True, kw_only=True, tag="test.Exited"):
    id: str

Outbox(Path(sys.argv[1])).record("ns", "/tasks/exit", Exited(id="recorded"))
print("recorded", flush=True)
sys.stdin.readline()
"""


@pytest.fixture
async def stream(bus: Bus) -> Client:
    await ensure_events_stream(bus.nc)
    return bus.nc


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "node" / "events.db"


@pytest.fixture
async def relay(path: Path, stream: Client) -> AsyncIterator[Relay]:
    sink = JetStreamSink(stream, timeout=0.5)
    async with Relay(path, sink, wait=LONG, backoff=(0.05, 0.5)) as running:
        yield running


async def stored_count(nc: Client) -> int:
    info = await nc.jetstream().stream_info(EVENTS_STREAM)
    return int(info.state.messages)


async def stored_ids(nc: Client) -> list[str]:
    """The ids of every event in the stream, in stream order."""
    js = nc.jetstream()
    last = (await js.stream_info(EVENTS_STREAM)).state.last_seq
    ids = []
    for sequence in range(1, last + 1):
        message = await js.get_msg(EVENTS_STREAM, sequence)
        assert message.data is not None
        ids.append(msgspec.msgpack.decode(decode_envelope(message.data).event, type=Exited).id)
    return ids


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(int(LONG / 0.05)):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not seen: {what}")


def drained(path: Path) -> Callable[[], Awaitable[bool]]:
    async def empty() -> bool:
        outbox = await asyncio.to_thread(Outbox, path)
        try:
            return not (await asyncio.to_thread(outbox.pending, 1)).rows
        finally:
            outbox.close()

    return empty


def _spawn_until(script: str, said: str, *args: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == said
    return child


async def spawn_until(script: str, said: str, *args: str) -> subprocess.Popen[str]:
    """A child running ``script``, once it printed ``said`` (off the event loop)."""
    return await asyncio.to_thread(_spawn_until, script, said, *args)


def _kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL


async def kill(child: subprocess.Popen[str]) -> None:
    await asyncio.to_thread(_kill, child)


async def test_an_event_published_while_nats_is_down_arrives_once_it_is_back(
    relay: Relay, stream: Client, nats_server: EmbeddedNats, path: Path
) -> None:
    await nats_server.stop()
    await relay.publish("ns", "/tasks/exit", Exited(id="in the dark"))  # recorded: no error
    await nats_server.start()
    await until(drained(path), "the relay emptied its outbox")
    assert await stored_ids(stream) == ["in the dark"]
    assert await stored_count(stream) == 1


async def test_order_is_kept_across_an_outage(
    relay: Relay, stream: Client, nats_server: EmbeddedNats, path: Path
) -> None:
    for index in range(5):
        await relay.publish("ns", "/tasks/exit", Exited(id=str(index)))
    await nats_server.stop()
    for index in range(5, 25):
        await relay.publish("ns", "/tasks/exit", Exited(id=str(index)))
    await nats_server.start()
    for index in range(25, 30):
        await relay.publish("ns", "/tasks/exit", Exited(id=str(index)))
    await until(drained(path), "the relay emptied its outbox")
    assert await stored_ids(stream) == [str(index) for index in range(30)]


async def test_a_crash_before_relaying_is_relayed_once_on_restart(
    stream: Client, path: Path
) -> None:
    child = await spawn_until(RECORDED_ONLY, "recorded", str(path))
    await kill(child)
    assert await stored_count(stream) == 0
    async with Relay(path, JetStreamSink(stream), wait=LONG):
        await until(drained(path), "the restarted relay emptied the outbox")
    assert await stored_ids(stream) == ["recorded"]


async def test_a_replay_of_a_stored_event_is_not_doubled(
    stream: Client, path: Path, nats_url: str
) -> None:
    child = await spawn_until(SENT_NOT_FORGOTTEN, "sent", str(path), nats_url, "120")
    await kill(child)
    assert await stored_count(stream) == 1
    async with Relay(path, JetStreamSink(stream), wait=LONG):
        await until(drained(path), "the restarted relay emptied the outbox")
    assert await stored_ids(stream) == ["once"]


async def test_a_replay_after_the_duplicate_window_is_not_doubled(
    bus: Bus, path: Path, nats_url: str
) -> None:
    window = 1.0  # the stream's, shortened so the test can outwait it
    js = bus.nc.jetstream()
    config = _stream_config()
    config.duplicate_window = window
    await js.add_stream(config)
    child = await spawn_until(SENT_NOT_FORGOTTEN, "sent", str(path), nats_url, str(window))
    await kill(child)
    stored = await js.get_msg(EVENTS_STREAM, 1)
    assert stored.subject is not None
    assert stored.headers is not None
    await asyncio.sleep(2 * window)  # the stream forgot the id: a blind replay would double
    async with Relay(path, JetStreamSink(bus.nc, duplicate_window=window), wait=LONG):
        await until(drained(path), "the restarted relay emptied the outbox")
    assert await stored_count(bus.nc) == 1
    # The window had passed indeed: the same id, sent again, is stored again.
    await js.publish(stored.subject, stored.data or b"", headers=dict(stored.headers))
    assert await stored_count(bus.nc) == 2


async def test_the_direct_publisher_names_only_the_cause_type(bus: Bus) -> None:
    # No stream: JetStream refuses, and the client's own text must not reach the caller.
    with pytest.raises(errdefs.Unavailable) as raised:
        await JetStreamPublisher(bus.nc).publish("ns", "/tasks/exit", Exited(id="x"))
    assert str(raised.value) == "event /tasks/exit not stored (NoStreamResponseError)"


async def test_creating_the_stream_names_only_the_cause_type(bus: Bus) -> None:
    js = bus.nc.jetstream()
    await js.add_stream(StreamConfig(name="SQUATTER", subjects=["flotilla.events.>"]))
    with pytest.raises(errdefs.Unavailable) as raised:
        await ensure_events_stream(bus.nc)
    assert str(raised.value) == f"cannot create the {EVENTS_STREAM} stream (BadRequestError)"
