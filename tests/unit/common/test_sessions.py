import asyncio

import pytest

from flotilla.common import errdefs
from flotilla.common.bus.sessions import Sessions


class Held:
    def __init__(self, fails: bool = False) -> None:
        self.closed = False
        self.fails = fails


async def close(held: Held) -> None:
    held.closed = True
    if held.fails:
        raise OSError(5, "Input/output error")  # e.g. a writer's fsync on close


async def test_sessions_belong_to_their_namespace() -> None:
    sessions: Sessions[Held] = Sessions("writer", close, lease=60)
    token = await sessions.add("a", "caller", Held())
    with sessions.use("a", token) as held:
        assert not held.closed
    with pytest.raises(errdefs.NotFound, match="writer session"), sessions.use("b", token):
        pass
    await sessions.close("a", token)
    with pytest.raises(errdefs.NotFound):
        sessions.pop("a", token)


async def test_idle_sessions_expire_but_busy_ones_do_not() -> None:
    sessions: Sessions[Held] = Sessions("reader", close, lease=0.05)
    idle, busy = Held(), Held()
    idle_token = await sessions.add("n", "c", idle)
    busy_token = await sessions.add("n", "c", busy)
    with sessions.use("n", busy_token):
        await asyncio.sleep(0.1)
        assert await sessions.reap() == 1
    assert idle.closed
    assert not busy.closed
    with pytest.raises(errdefs.NotFound):
        sessions.pop("n", idle_token)


async def test_leaving_closes_everything() -> None:
    held = Held()
    async with Sessions("writer", close, lease=60) as sessions:
        await sessions.add("n", "c", held)
    assert held.closed


async def test_the_reaper_outlives_a_close_that_fails() -> None:
    failing, later = Held(fails=True), Held()
    async with Sessions("writer", close, lease=0.05) as sessions:
        await sessions.add("n", "c", failing)
        await asyncio.sleep(0.3)  # the reaper meets the OSError
        assert failing.closed
        await sessions.add("n", "c", later)
        async with asyncio.timeout(5):
            while not later.closed:  # and still reaps what expires after it
                await asyncio.sleep(0.05)
        assert len(sessions) == 0


async def test_leaving_closes_every_session_even_when_one_fails() -> None:
    held = [Held(fails=index == 1) for index in range(4)]
    async with Sessions("writer", close, lease=60) as sessions:
        for one in held:
            await sessions.add("n", "c", one)
    assert all(one.closed for one in held)


async def test_sessions_are_bounded_per_caller_and_in_all() -> None:
    sessions: Sessions[Held] = Sessions("writer", close, lease=60, max_total=5, max_per_caller=3)
    for _ in range(3):
        await sessions.add("n", "greedy", Held())
    refused = Held()
    with pytest.raises(errdefs.ResourceExhausted, match="this caller holds 3 writer sessions"):
        await sessions.add("n", "greedy", refused)
    assert refused.closed  # its ref is not left locked
    await sessions.add("n", "polite", Held())
    await sessions.add("n", "polite", Held())
    with pytest.raises(errdefs.ResourceExhausted, match="5 writer sessions open"):
        await sessions.add("n", "other", Held())
    assert len(sessions) == 5


async def test_closing_frees_the_callers_share() -> None:
    sessions: Sessions[Held] = Sessions("writer", close, lease=60, max_per_caller=1)
    token = await sessions.add("n", "c", Held())
    await sessions.close("n", token)
    await sessions.add("n", "c", Held())


async def test_exclusive_sessions_take_one_request_at_a_time() -> None:
    sessions: Sessions[Held] = Sessions("writer", close, lease=60, exclusive=True)
    token = await sessions.add("n", "c", Held())
    with sessions.use("n", token):
        with pytest.raises(errdefs.FailedPrecondition, match="busy"), sessions.use("n", token):
            pass
        with pytest.raises(errdefs.FailedPrecondition, match="busy"):
            await sessions.close("n", token)
    with sessions.use("n", token):
        pass
    await sessions.close("n", token)
