"""Typed item streams, and the bounds every endpoint and stream keeps, over a real nats-server."""

import asyncio
import contextlib

import pytest

from flotilla.common import errdefs, headers
from flotilla.common.bus import Bus, ServiceHost, stream
from flotilla.common.bus.methods import encode

from .echo_service import API, DIGEST, GENERATE, ITEMS, MEET, Echo, EchoHandlers, Reply, echo_host

pytestmark = pytest.mark.usefixtures("echo")


async def test_items_arrive_typed_and_in_order(bus: Bus) -> None:
    found = [item async for item in bus.items(ITEMS, Echo(text="ab", count=1000, chunk=8))]
    assert [item.count for item in found] == list(range(1000))
    assert all(item == Reply(text="abababab", count=i) for i, item in enumerate(found))


async def test_large_items_are_batched_within_a_chunk(bus: Bus) -> None:
    # 300 items of 64 KiB: far more than one message holds, so several batches.
    size = 64 * 1024
    found = [item async for item in bus.items(ITEMS, Echo(text="x", count=300, chunk=size))]
    assert len(found) == 300
    assert {len(item.text) for item in found} == {size}


async def test_an_item_larger_than_a_chunk_is_resource_exhausted(bus: Bus) -> None:
    huge = stream.chunk_size(bus.nc) + 1
    with pytest.raises(errdefs.ResourceExhausted, match="more than a stream chunk"):
        async for _ in bus.items(ITEMS, Echo(text="x", count=1, chunk=huge)):
            pass


async def test_leaving_an_item_stream_early_returns_its_credit(bus: Bus) -> None:
    items = bus.items(ITEMS, Echo(text="x", count=100_000, chunk=1024))
    async with contextlib.aclosing(items) as found:
        async for _ in found:
            break
    assert bus.budget.available == bus.budget.total


async def test_an_endpoint_past_its_bound_answers_resource_exhausted(
    bus: Bus, server_bus: Bus, echo: ServiceHost
) -> None:
    await echo.stop()  # only the bounded host below answers
    async with echo_host(server_bus, EchoHandlers(), max_inflight=4):
        meet = Echo(count=99)
        held = [asyncio.create_task(bus.call(MEET, meet, namespace="n")) for _ in range(4)]
        await asyncio.sleep(0.5)  # the four are inside, waiting for each other
        more = (bus.call(MEET, Echo(count=99), namespace="n") for _ in range(4))
        outcomes = await asyncio.gather(*more, return_exceptions=True)
        assert all(isinstance(o, errdefs.ResourceExhausted) for o in outcomes), outcomes
        assert "4 requests in flight" in str(outcomes[0])
        for task in held:
            task.cancel()
        await asyncio.gather(*held, return_exceptions=True)


async def test_a_sender_past_its_credit_fails_the_stream_not_the_memory(bus: Bus) -> None:
    # Speak the upload protocol by hand, ignoring the credit the sink grants.
    inbox, answers = bus.nc.new_inbox(), asyncio.Queue[object]()

    async def on_control(msg: object) -> None:
        await answers.put(msg)

    sub = await bus.nc.subscribe(inbox, cb=on_control)
    hdrs = {headers.NAMESPACE: "n"}
    await bus.nc.publish(DIGEST.subject(), encode(Echo(delay=5)), reply=inbox, headers=hdrs)
    ready = await asyncio.wait_for(answers.get(), 5)
    granted = int(ready.headers[stream.GRANT])  # type: ignore[attr-defined]
    for seq in range(1, granted + 50):
        await bus.nc.publish(ready.reply, b"x" * 1024, headers={stream.SEQ: str(seq)})  # type: ignore[attr-defined]
    async with asyncio.timeout(10):
        while True:
            msg = await answers.get()
            if "Flotilla-Final" in (msg.headers or {}):  # type: ignore[attr-defined]
                break
    error = headers.error_from(msg.headers)  # type: ignore[attr-defined]
    assert isinstance(error, errdefs.ResourceExhausted)
    assert "ran past the credit" in str(error)
    await sub.unsubscribe()


async def test_sending_after_the_sink_answered_is_an_error_not_a_silent_drop(bus: Bus) -> None:
    async with bus.open_upload(DIGEST, Echo(text="skip")) as upload:
        with pytest.raises(errdefs.Aborted, match="5 bytes not sent"):
            await upload.send(b"lost?")
        assert (await upload.finish()).text == "answered without reading"


async def test_stream_headers_carry_an_idle_timeout_not_a_deadline(bus: Bus) -> None:
    # A slow download outlives a short idle timeout as long as chunks keep coming.
    received = 0
    async with bus.download(GENERATE, Echo(count=5, chunk=10), idle_timeout=0.5) as chunks:
        async for _ in chunks:
            received += 1
            await asyncio.sleep(0.2)  # 1 s in all, each gap under 0.5 s
    assert received == 5
    assert set(API.methods) >= {"generate", "items"}
