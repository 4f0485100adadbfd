"""Reading events back from JetStream: replay from a sequence or a time, filters, live order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from flotilla.common import errdefs
from flotilla.common.bus import Bus
from flotilla.common.events import Delivery, Event, EventSubscriber, Subscription
from flotilla.common.events.jetstream import JetStreamSink, ensure_events_stream
from flotilla.common.events.relay import Relay
from flotilla.common.events.subscriber import JetStreamSubscriber
from flotilla.common.natsserver import EmbeddedNats

LONG = 60.0  # a bound never reached when things work: no timing is asserted


class Exited(Event, frozen=True, kw_only=True, tag="test.Exited"):
    id: str


@pytest.fixture
async def relay(bus: Bus, tmp_path: Path) -> AsyncIterator[Relay]:
    await ensure_events_stream(bus.nc)
    sink = JetStreamSink(bus.nc, timeout=0.5)
    async with Relay(tmp_path / "events.db", sink, wait=LONG, backoff=(0.05, 0.5)) as running:
        yield running


@pytest.fixture
def subscriber(bus: Bus) -> JetStreamSubscriber:
    return JetStreamSubscriber(bus.nc)


def as_port(subscriber: JetStreamSubscriber) -> EventSubscriber:
    return subscriber  # the adapter satisfies the port (checked by mypy)


async def take(subscription: Subscription, count: int) -> list[Delivery]:
    taken: list[Delivery] = []
    async with asyncio.timeout(LONG):
        while len(taken) < count:
            taken.append(await anext(subscription))
    return taken


def ids(deliveries: list[Delivery]) -> list[str]:
    return [msgspec.msgpack.decode(d.envelope.event, type=Exited).id for d in deliveries]


async def publish(relay: Relay, *events: tuple[str, str, str]) -> None:
    for namespace, topic, event_id in events:
        await relay.publish(namespace, topic, Exited(id=event_id))


async def test_replays_from_a_sequence_in_order(
    relay: Relay, subscriber: JetStreamSubscriber
) -> None:
    await publish(relay, *[("ns", "/tasks/exit", str(index)) for index in range(5)])
    async with await as_port(subscriber).subscribe(from_sequence=3) as events:
        replayed = await take(events, 3)
    assert [d.sequence for d in replayed] == [3, 4, 5]
    assert ids(replayed) == ["2", "3", "4"]
    assert {(d.envelope.namespace, d.envelope.topic) for d in replayed} == {("ns", "/tasks/exit")}


async def test_replays_from_a_time(relay: Relay, subscriber: JetStreamSubscriber) -> None:
    await publish(relay, ("ns", "/tasks/exit", "before"))
    moment = datetime.now(UTC)
    await publish(relay, ("ns", "/tasks/exit", "after"), ("ns", "/tasks/exit", "later"))
    async with await subscriber.subscribe(since=moment) as events:
        assert ids(await take(events, 2)) == ["after", "later"]


async def test_filters_by_topic_and_namespace(
    relay: Relay, subscriber: JetStreamSubscriber
) -> None:
    await publish(
        relay,
        ("a", "/tasks/start", "start a"),
        ("a", "/tasks/exit", "exit a"),
        ("b", "/tasks/exit", "exit b"),
        ("a", "/content/create", "create a"),
        ("b", "/tasks/exit", "exit b again"),
    )
    exits = await subscriber.subscribe(['topic=="/tasks/exit"'], from_sequence=1)
    async with exits:
        assert exits.subjects == ("flotilla.events.tasks.exit",)
        assert ids(await take(exits, 3)) == ["exit a", "exit b", "exit b again"]
    in_b = await subscriber.subscribe(['topic=="/tasks/exit",namespace==b'], from_sequence=1)
    async with in_b:
        assert ids(await take(in_b, 2)) == ["exit b", "exit b again"]
    tasks = await subscriber.subscribe(
        ['topic~="^/tasks/"', 'event.id=="create a"'], from_sequence=1
    )
    async with tasks:
        assert tasks.subjects == ("flotilla.events.>",)
        assert ids(await take(tasks, 4)) == ["start a", "exit a", "exit b", "create a"]


async def test_follows_live_events_in_order(relay: Relay, subscriber: JetStreamSubscriber) -> None:
    await publish(relay, ("ns", "/tasks/exit", "old"))
    async with await subscriber.subscribe() as events:
        await publish(relay, *[("ns", "/tasks/exit", str(index)) for index in range(20)])
        live = await take(events, 20)
    assert ids(live) == [str(index) for index in range(20)]
    assert [d.sequence for d in live] == list(range(2, 22))


async def test_keeps_following_across_a_nats_restart(
    relay: Relay, subscriber: JetStreamSubscriber, nats_server: EmbeddedNats
) -> None:
    async with await subscriber.subscribe(['topic=="/tasks/exit"']) as events:
        await publish(relay, ("ns", "/tasks/exit", "before"))
        assert ids(await take(events, 1)) == ["before"]
        await nats_server.stop()
        await nats_server.start()
        await publish(relay, ("ns", "/tasks/exit", "after"))
        assert ids(await take(events, 1)) == ["after"]


async def test_a_closed_subscription_ends_iteration(
    relay: Relay, subscriber: JetStreamSubscriber
) -> None:
    events = await subscriber.subscribe(from_sequence=1)
    await events.aclose()
    await events.aclose()
    assert [d async for d in events] == []


@pytest.mark.parametrize(
    ("filters", "start", "message"),
    [
        (["topic=="], {}, "expected value"),
        ([], {"from_sequence": 0}, "not positive"),
        ([], {"from_sequence": 1, "since": datetime.now(UTC)}, "not both"),
    ],
)
async def test_bad_requests_are_invalid_arguments(
    subscriber: JetStreamSubscriber, filters: list[str], start: dict[str, object], message: str
) -> None:
    with pytest.raises(errdefs.InvalidArgument, match=message):
        await subscriber.subscribe(filters, **start)  # type: ignore[arg-type]
