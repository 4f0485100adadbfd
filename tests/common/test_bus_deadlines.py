"""Deadlines on both sides of a call, on one timer per connection or host; replies matched."""

import asyncio
import contextlib
import time

import pytest
from nats.aio.msg import Msg

from flotilla.common import errdefs, headers
from flotilla.common.bus import Bus
from flotilla.common.bus.deadlines import TaskDeadline, Wheel
from flotilla.common.bus.methods import encode

from .echo_service import ECHO, SLEEP, Echo


async def test_a_block_past_its_deadline_ends_in_timeout_error() -> None:
    with pytest.raises(TimeoutError), TaskDeadline(Wheel(), time.monotonic() + 0.05):
        await asyncio.sleep(5)
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0


async def test_someone_elses_cancel_stays_a_cancel() -> None:
    entered = asyncio.Event()

    async def inside() -> None:
        with TaskDeadline(Wheel(), time.monotonic() + 5):
            entered.set()
            await asyncio.sleep(5)

    task = asyncio.create_task(inside())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_block_that_swallows_the_expiry_finishes_normally() -> None:
    deadline = TaskDeadline(Wheel(), time.monotonic() + 0.05)
    with deadline, contextlib.suppress(asyncio.CancelledError):  # the expiry, swallowed inside
        await asyncio.sleep(5)
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0
    await asyncio.sleep(0)  # and it is not cancelled again


async def test_a_block_done_in_time_is_left_alone() -> None:
    wheel = Wheel()
    with TaskDeadline(wheel, time.monotonic() + 0.05):
        await asyncio.sleep(0)
    await asyncio.sleep(0.1)  # past the deadline, outside the block: nothing happens
    wheel.close()


@pytest.mark.usefixtures("echo")
async def test_a_short_call_times_out_while_a_long_one_waits(bus: Bus) -> None:
    # The long call arms the caller's timer first; the short one must not wait for it.
    long = asyncio.create_task(bus.call(SLEEP, Echo(delay=1.5), namespace="n", timeout=5))
    await asyncio.sleep(0.05)
    short = asyncio.create_task(bus.call(SLEEP, Echo(delay=1.5), namespace="n", timeout=0.2))
    done, _ = await asyncio.wait({long, short}, return_when=asyncio.FIRST_COMPLETED)
    assert done == {short}
    with pytest.raises(errdefs.DeadlineExceeded, match=r"no reply within 0\.2s"):
        await short
    long.cancel()


@pytest.mark.usefixtures("echo")
async def test_the_service_stops_a_short_request_while_a_long_one_runs(bus: Bus) -> None:
    # Raw requests, to read the service's own answer: its timer is armed for the long one.
    def request(timeout_ms: int) -> asyncio.Task[Msg]:
        hdrs = {headers.TIMEOUT_MS: str(timeout_ms), headers.NAMESPACE: "n"}
        body = encode(Echo(delay=1.5))
        return asyncio.create_task(bus.nc.request(SLEEP.subject(), body, timeout=8, headers=hdrs))

    long = request(5000)
    await asyncio.sleep(0.05)
    short = request(200)
    done, _ = await asyncio.wait({long, short}, return_when=asyncio.FIRST_COMPLETED)
    assert done == {short}
    assert isinstance(headers.error_from(short.result().headers), errdefs.DeadlineExceeded)
    long.cancel()


@pytest.mark.usefixtures("echo")
async def test_concurrent_calls_each_get_their_own_reply(bus: Bus) -> None:
    calls = [(f"call-{index}", "abc"[index % 3]) for index in range(64)]
    replies = await asyncio.gather(
        *(bus.call(ECHO, Echo(text=text), namespace=namespace) for text, namespace in calls)
    )
    assert [reply.text for reply in replies] == [f"{text}@{ns}" for text, ns in calls]
