"""Typed item streams (every List): items encoded once, sent in batches that fit a chunk.

Each chunk of an items stream is one msgpack array of items, so the caller decodes a chunk on
its own (``Items.decode_batch``) and never holds more than a batch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

import msgspec

from flotilla.common import errdefs
from flotilla.common.bus.methods import encode

__all__ = ["MAX_BATCH", "batches"]

MAX_BATCH: Final = 256
"""Items per batch at most: a caller sees the first items early, even of a long list."""
_ARRAY_HEADER: Final = 5  # msgpack's largest array header


async def batches(
    items: AsyncIterator[Any], limit: int, max_items: int = MAX_BATCH
) -> AsyncIterator[bytes]:
    """Encode ``items`` into msgpack arrays of at most ``max_items`` and ``limit`` bytes.

    Raises:
        ResourceExhausted: if one item alone is larger than ``limit``.
    """
    batch: list[msgspec.Raw] = []
    size = _ARRAY_HEADER
    async for item in items:
        encoded = encode(item)
        if len(encoded) + _ARRAY_HEADER > limit:
            raise errdefs.ResourceExhausted(
                f"one item is {len(encoded)} bytes, more than a stream chunk ({limit})"
            )
        if batch and (len(batch) == max_items or size + len(encoded) > limit):
            yield encode(batch)
            batch, size = [], _ARRAY_HEADER
        batch.append(msgspec.Raw(encoded))
        size += len(encoded)
    if batch:
        yield encode(batch)
