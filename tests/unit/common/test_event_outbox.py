"""The outbox table and the relay's logic, with a recording sink in place of JetStream."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import msgspec
import pytest

from flotilla.common import errdefs
from flotilla.common.events import Event
from flotilla.common.events.envelope import decode_envelope
from flotilla.common.events.outbox import Outbox, install, stage
from flotilla.common.events.relay import Relay
from flotilla.testkit.events import RecordingSink

LONG = 60.0  # a bound never reached when things work: no timing is asserted


class Exited(Event, frozen=True, kw_only=True, tag="test.Exited"):
    id: str
    status: int = 0


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "outbox" / "events.db"


@pytest.fixture
def outbox(path: Path) -> Iterator[Outbox]:
    opened = Outbox(path)
    yield opened
    opened.close()


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
async def relay(path: Path, sink: RecordingSink) -> AsyncIterator[Relay]:
    async with Relay(path, sink, wait=LONG, backoff=(0.01, 0.05)) as running:
        yield running


def caller_connection(path: Path) -> sqlite3.Connection:
    """A core's own connection to the outbox's database, with a table of its own."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("CREATE TABLE IF NOT EXISTS things (name TEXT)")
    install(connection)
    return connection


def payloads(sink: RecordingSink) -> list[str]:
    """The ids of the events the sink stored, in the order it stored them."""
    first = {record.msg_id: record for record in reversed(sink.sent)}
    events = (decode_envelope(first[msg_id].envelope).event for msg_id in sink.stored_ids)
    return [msgspec.msgpack.decode(event, type=Exited).id for event in events]


async def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(int(LONG / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not seen: {what}")


def test_recorded_rows_survive_reopening_in_order(path: Path) -> None:
    first = Outbox(path)
    rows = [first.record("ns", "/tasks/exit", Exited(id=str(i))) for i in range(3)]
    first.close()
    again = Outbox(path)
    pending = again.pending(10)
    again.close()
    assert [row.id for row in pending.rows] == rows == sorted(rows)
    assert pending.floor == rows[0]
    assert len({row.msg_id for row in pending.rows}) == 3
    envelope = decode_envelope(pending.rows[0].envelope)
    assert (envelope.namespace, envelope.topic) == ("ns", "/tasks/exit")
    assert pending.rows[0].subject == "flotilla.events.tasks.exit"


def test_ids_are_never_reused_once_the_outbox_is_empty(outbox: Outbox) -> None:
    first = outbox.record("ns", "/a/b", Exited(id="1"))
    outbox.remove([first])
    assert outbox.pending(10) == ([], first + 1)
    assert outbox.record("ns", "/a/b", Exited(id="2")) == first + 1


def test_a_rolled_back_transaction_takes_its_event_with_it(outbox: Outbox, path: Path) -> None:
    connection = caller_connection(path)
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("INSERT INTO things VALUES ('lost')")
    stage(connection, "ns", "/a/b", Exited(id="lost"))
    connection.execute("ROLLBACK")
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("INSERT INTO things VALUES ('kept')")
    kept = stage(connection, "ns", "/a/b", Exited(id="kept"))
    connection.execute("COMMIT")
    connection.close()
    assert [row.id for row in outbox.pending(10).rows] == [kept]


def test_staging_outside_a_transaction_is_refused(outbox: Outbox, path: Path) -> None:
    connection = caller_connection(path)
    with pytest.raises(errdefs.FailedPrecondition, match="outside a transaction"):
        stage(connection, "ns", "/a/b", Exited(id="x"))
    connection.close()


async def test_publish_returns_once_the_sink_stored_it(relay: Relay, sink: RecordingSink) -> None:
    for index in range(5):
        await relay.publish("ns", "/tasks/exit", Exited(id=str(index)))
        assert payloads(sink)[-1] == str(index)  # already stored: nothing polled
    assert payloads(sink) == ["0", "1", "2", "3", "4"]


async def test_staged_rows_are_relayed_once_committed(relay: Relay, sink: RecordingSink) -> None:
    connection = caller_connection(relay.path)
    connection.execute("BEGIN IMMEDIATE")
    row = relay.stage(connection, "ns", "/a/b", Exited(id="staged"))
    connection.execute("COMMIT")
    await relay.committed(row)
    assert payloads(sink) == ["staged"]
    connection.close()


async def test_staging_into_another_database_is_refused(relay: Relay, tmp_path: Path) -> None:
    connection = caller_connection(tmp_path / "elsewhere.db")
    connection.execute("BEGIN IMMEDIATE")
    with pytest.raises(errdefs.FailedPrecondition, match="staged outside"):
        relay.stage(connection, "ns", "/a/b", Exited(id="x"))
    connection.execute("ROLLBACK")
    connection.close()


async def test_a_failing_sink_never_fails_the_publisher_and_order_is_kept(
    relay: Relay, sink: RecordingSink, outbox: Outbox
) -> None:
    await relay.publish("ns", "/a/b", Exited(id="0"))
    sink.failing = True
    for index in range(1, 6):
        await relay.publish("ns", "/a/b", Exited(id=str(index)))  # returns: recorded
    assert payloads(sink) == ["0"]
    sink.failing = False
    await until(lambda: len(sink.stored_ids) == 6, "the backlog drained")
    assert payloads(sink) == [str(index) for index in range(6)]
    await until(lambda: not outbox.pending(10).rows, "the outbox emptied")


async def test_rows_a_crash_left_are_relayed_at_start(path: Path, sink: RecordingSink) -> None:
    left = Outbox(path)
    left.record("ns", "/a/b", Exited(id="left"))
    left.close()
    async with Relay(path, sink, wait=LONG):
        await until(lambda: payloads(sink) == ["left"], "the left row was relayed")


async def test_a_young_replay_is_sent_blind_and_dropped_as_a_duplicate(
    path: Path, sink: RecordingSink
) -> None:
    crashed = Outbox(path)
    crashed.record("ns", "/a/b", Exited(id="again"))
    record = crashed.pending(1).rows[0]
    crashed.close()
    sink.stored_ids.append(record.msg_id)  # stored, but the crash lost the deletion
    async with Relay(path, sink, wait=LONG):
        await until(lambda: len(sink.sent) == 1, "the row was replayed")
    assert sink.stored_ids == [record.msg_id]
    assert sink.searches == 0


async def test_an_old_replay_is_looked_up_instead_of_sent(path: Path) -> None:
    sink = RecordingSink(duplicate_window=1.0)
    crashed = Outbox(path)
    crashed.record("ns", "/a/b", Exited(id="stored"))
    crashed.record("ns", "/a/b", Exited(id="not stored"))
    stored, missing = crashed.pending(2).rows
    crashed.close()
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as connection:
        # Recorded ten windows ago: a copy may be stored beyond the sink's memory.
        connection.execute("UPDATE event_outbox SET recorded_at = recorded_at - 10000000000")
    sink.stored_ids.append(stored.msg_id)
    async with Relay(path, sink, wait=LONG):
        await until(lambda: len(sink.stored_ids) == 2, "the missing row was sent")
    assert [record.msg_id for record in sink.sent] == [missing.msg_id]
    assert sink.searches >= 1


async def test_a_stopped_relay_refuses_to_publish_and_keeps_staged_rows(
    path: Path, sink: RecordingSink
) -> None:
    relay = Relay(path, sink)
    with pytest.raises(errdefs.Unavailable, match="not running"):
        await relay.publish("ns", "/a/b", Exited(id="x"))
    outbox = Outbox(path)
    connection = caller_connection(path)
    connection.execute("BEGIN IMMEDIATE")
    row = relay.stage(connection, "ns", "/a/b", Exited(id="kept"))
    connection.execute("COMMIT")
    await relay.committed(row)  # returns: nobody relays now
    assert [pending.id for pending in outbox.pending(10).rows] == [row]
    connection.close()
    outbox.close()
