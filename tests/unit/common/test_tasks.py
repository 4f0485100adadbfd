"""A task group's failure comes out as its first real error."""

from __future__ import annotations

import asyncio

import pytest

from flotilla.common import errdefs
from flotilla.common.tasks import first_error


async def test_the_first_error_alone() -> None:
    async def fails() -> None:
        raise errdefs.NotFound("blob x")

    async def waits() -> None:
        await asyncio.sleep(3600)

    with pytest.raises(errdefs.NotFound, match="blob x"), first_error():
        async with asyncio.TaskGroup() as group:
            group.create_task(waits())
            group.create_task(fails())


async def test_nested_groups_are_opened() -> None:
    async def inner() -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(boom())

    async def boom() -> None:
        raise errdefs.Unavailable("registry")

    with pytest.raises(errdefs.Unavailable), first_error():
        async with asyncio.TaskGroup() as group:
            group.create_task(inner())
