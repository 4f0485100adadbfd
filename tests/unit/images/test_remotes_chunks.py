"""A blob answer's bytes from an offset: a 200 to a ranged request skipped to the offset."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import pytest

from flotilla.common.errdefs import DataLoss, Unavailable
from flotilla.images.remotes.fetch import _chunks

DATA = bytes(range(256)) * 40


@dataclass
class Content:
    parts: list[bytes]

    async def iter_any(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            yield part


@dataclass
class Answer:
    status: int
    content: Content


def answer(status: int, data: bytes, size: int = 1000) -> Any:
    return cast(
        Any, Answer(status, Content([data[i : i + size] for i in range(0, len(data), size)]))
    )


async def collect(resp: Any, offset: int, size: int = len(DATA)) -> bytes:
    return b"".join([c async for c in _chunks(resp, "r.io", "blob a@sha256:x", size, offset)])


@pytest.mark.parametrize("offset", [0, 1, 999, 1000, 1001, 5000, len(DATA) - 1])
async def test_whole_answer_to_a_ranged_request_is_skipped(offset: int) -> None:
    assert await collect(answer(200, DATA), offset) == DATA[offset:]


async def test_partial_answer_is_taken_as_it_comes() -> None:
    assert await collect(answer(206, DATA[2500:]), 2500) == DATA[2500:]


async def test_short_answer_is_unavailable() -> None:
    with pytest.raises(Unavailable, match=rf"answer ended after 3000 of {len(DATA)} bytes"):
        await collect(answer(206, DATA[100:3000]), 100)


async def test_long_answer_is_data_loss() -> None:
    with pytest.raises(DataLoss, match="more than the 5000 bytes described"):
        await collect(answer(200, DATA), 0, size=5000)
