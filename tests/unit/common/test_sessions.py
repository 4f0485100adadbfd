import asyncio

import pytest

from flotilla.common import errdefs
from flotilla.common.bus.sessions import Sessions


class Held:
    def __init__(self) -> None:
        self.closed = False


async def close(held: Held) -> None:
    held.closed = True


async def test_sessions_belong_to_their_namespace() -> None:
    sessions: Sessions[Held] = Sessions("writer", close, lease=60)
    token = sessions.add("a", Held())
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
    idle_token, busy_token = sessions.add("n", idle), sessions.add("n", busy)
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
        sessions.add("n", held)
    assert held.closed
