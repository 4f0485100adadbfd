"""One holder at a time across the cluster: a KV key with a lease that its holder renews.

The key holds who holds it and until when. Taking it is a create; a holder that vanished is
replaced once its time is up (a compare-and-set on the stale revision); the holder renews
every third of the lease, and knows it lost the lock when a renewal is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Final

import msgspec

from flotilla.common import errdefs
from flotilla.metadata.bucket import Bucket

__all__ = ["ClusterLock", "Held"]

_POLL: Final = 0.2


class _Holder(msgspec.Struct, frozen=True):
    holder: str
    expires_ns: int


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(_Holder).decode


class Held:
    """A held lock: :attr:`lost` is set when it stopped being ours."""

    def __init__(self) -> None:
        self.lost = asyncio.Event()

    def check(self, what: str) -> None:
        """Raise Aborted if the lock was lost.

        Raises:
            Aborted: naming ``what`` was stopped.
        """
        if self.lost.is_set():
            raise errdefs.Aborted(f"{what}: the cluster lock was lost")


class ClusterLock:
    """The lock ``key`` in ``bucket``.

    Args:
        bucket: where locks are kept.
        key: which lock.
        ttl: seconds a holder keeps it without renewing.
    """

    def __init__(self, bucket: Bucket, key: str, ttl: float = 15.0) -> None:
        self.bucket = bucket
        self.key = key
        self.ttl = ttl
        self.holder = uuid.uuid4().hex

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[Held]:
        """Wait for the lock, keep it renewed while the block runs, then release it."""
        revision = await self._acquire()
        held = Held()
        renewing = asyncio.create_task(self._renew(revision, held))
        try:
            yield held
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
            if not held.lost.is_set():
                with contextlib.suppress(errdefs.ErrdefsError):
                    await self.bucket.delete(self.key, self._revision)

    def _value(self) -> bytes:
        return _encode(_Holder(self.holder, time.time_ns() + int(self.ttl * 1e9)))

    async def _acquire(self) -> int:
        while True:
            try:
                self._revision = await self.bucket.create(self.key, self._value())
                return self._revision
            except errdefs.AlreadyExists:
                pass
            found = await self.bucket.get(self.key)
            if found is not None and _decode(found.value).expires_ns < time.time_ns():
                with contextlib.suppress(errdefs.Conflict):
                    self._revision = await self.bucket.update(
                        self.key, self._value(), found.revision
                    )
                    return self._revision
            await asyncio.sleep(_POLL)

    async def _renew(self, revision: int, held: Held) -> None:
        self._revision = revision
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                self._revision = await self.bucket.update(self.key, self._value(), self._revision)
                renewed = time.monotonic()
            except errdefs.Conflict:
                held.lost.set()
                return
            except errdefs.Unavailable:
                # The lease may still run and the next renewal land; past two thirds of it,
                # another collector may take over any moment.
                if time.monotonic() - renewed > self.ttl * 2 / 3:
                    held.lost.set()
                    return
