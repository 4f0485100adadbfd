"""The :class:`~flotilla.metadata.bucket.Bucket` port on a JetStream key-value bucket.

Buckets are file-backed and keep one revision per key (``history=1``): records, not logs.
Writes are publishes with ``Nats-Expected-Last-Subject-Sequence`` (compare-and-set) that carry
the caller's trace context, so a record's write joins the request's trace.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Final

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, KeyValueConfig, StorageType
from nats.js.errors import (
    APIError,
    BucketNotFoundError,
    KeyDeletedError,
    KeyNotFoundError,
    NotFoundError,
)
from nats.js.kv import KeyValue

from flotilla.common import errdefs
from flotilla.common.telemetry import tracing
from flotilla.metadata.bucket import Entry

__all__ = ["JetStreamBucket", "open_bucket"]

_EXPECTED: Final = "Nats-Expected-Last-Subject-Sequence"
_OPERATION: Final = "KV-Operation"
_WRONG_LAST_SEQUENCE: Final = frozenset({10071, 10164})
_LISTING_IDLE: Final = 30.0
"""Seconds the server keeps a listing's consumer after its client vanished."""
_LISTING_TIMEOUT: Final = 120.0


async def open_bucket(nc: Client, name: str, *, replicas: int = 1) -> JetStreamBucket:
    """The bucket ``name``, made (file storage, ``replicas`` copies) when it is missing.

    Raises:
        Unavailable: if JetStream cannot be reached or refuses the bucket.
    """
    js = nc.jetstream()
    try:
        try:
            kv = await js.key_value(name)
        except (BucketNotFoundError, NotFoundError):
            config = KeyValueConfig(
                bucket=name, history=1, storage=StorageType.FILE, replicas=replicas, direct=True
            )
            kv = await js.create_key_value(config)
    except Exception as err:  # timeouts, no JetStream, API errors
        raise errdefs.Unavailable(f"key-value bucket {name} ({type(err).__name__})") from err
    return JetStreamBucket(nc, kv, name)


class JetStreamBucket:
    """One JetStream KV bucket as a :class:`~flotilla.metadata.bucket.Bucket`."""

    def __init__(self, nc: Client, kv: KeyValue, name: str) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._kv = kv
        self._name = name
        self._prefix = f"$KV.{name}."
        self._stream = f"KV_{name}"

    @property
    def name(self) -> str:
        return self._name

    async def get(self, key: str) -> Entry | None:
        try:
            found = await self._kv.get(key)
        except (KeyNotFoundError, KeyDeletedError):
            return None
        except Exception as err:
            raise _unavailable(self._name, key, err) from err
        return Entry(key, found.value or b"", found.revision or 0)

    async def create(self, key: str, value: bytes) -> int:
        try:
            return await self._publish(key, value, 0)
        except errdefs.Conflict:
            pass
        # A deleted key keeps a marker: a create replaces exactly that marker.
        marker = await self._deleted_revision(key)
        if marker is None:
            raise errdefs.AlreadyExists(key)
        try:
            return await self._publish(key, value, marker)
        except errdefs.Conflict as err:
            raise errdefs.AlreadyExists(key) from err

    async def _deleted_revision(self, key: str) -> int | None:
        """The revision of the key's delete marker; None when the key is live or unknown."""
        try:
            msg = await self._js.get_msg(self._stream, subject=self._prefix + key)
        except NotFoundError:
            return None
        except Exception as err:
            raise _unavailable(self._name, key, err) from err
        operation = (msg.headers or {}).get(_OPERATION)
        return msg.seq if operation in ("DEL", "PURGE") else None

    async def update(self, key: str, value: bytes, revision: int) -> int:
        return await self._publish(key, value, revision)

    async def delete(self, key: str, revision: int = 0) -> None:
        sent = tracing.inject({_OPERATION: "DEL"})
        if revision:
            sent[_EXPECTED] = str(revision)
        await self._send(key, b"", sent)

    async def _publish(self, key: str, value: bytes, expected: int) -> int:
        return await self._send(key, value, tracing.inject({_EXPECTED: str(expected)}))

    async def _send(self, key: str, value: bytes, headers: dict[str, str]) -> int:
        try:
            ack = await self._js.publish(self._prefix + key, value, headers=headers)
        except APIError as err:
            if err.err_code in _WRONG_LAST_SEQUENCE:
                raise errdefs.Conflict(f"{key} was changed by another writer") from err
            raise _unavailable(self._name, key, err) from err
        except Exception as err:
            raise _unavailable(self._name, key, err) from err
        return ack.seq

    async def entries(self, pattern: str) -> AsyncIterator[Entry]:
        # An ephemeral push consumer of each key's last message, without acks or flow
        # control: one request, then the server streams; the reply subject's last token says
        # how many are still pending, so the one saying 0 is the last.
        found: list[Entry] = []
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        inbox = self._nc.new_inbox()

        async def collect(msg: Msg) -> None:
            if not msg.reply:
                return
            sequence, pending = _ack_tokens(msg.reply)
            if (msg.headers or {}).get(_OPERATION) is None:
                found.append(Entry(msg.subject[len(self._prefix) :], msg.data, sequence))
            if pending == "0" and not done.done():
                done.set_result(None)

        subscription = await self._nc.subscribe(
            inbox, cb=collect, pending_msgs_limit=-1, pending_bytes_limit=-1
        )
        try:
            await self._stream_last(pattern, inbox, done)
        finally:
            await subscription.unsubscribe()
        for entry in found:
            yield entry

    async def _stream_last(self, pattern: str, inbox: str, done: asyncio.Future[None]) -> None:
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
            ack_policy=AckPolicy.NONE,
            filter_subject=self._prefix + pattern,
            deliver_subject=inbox,
            mem_storage=True,
            num_replicas=1,
            inactive_threshold=_LISTING_IDLE,
        )
        try:
            info = await self._js.add_consumer(self._stream, config)
            if info.num_pending:
                await asyncio.wait_for(done, _LISTING_TIMEOUT)
        except Exception as err:
            raise _unavailable(self._name, pattern, err) from err
        with contextlib.suppress(Exception):  # idle, the server drops it anyway
            await self._js.delete_consumer(self._stream, info.name or "")

    async def revision(self) -> int:
        try:
            info = await self._js.stream_info(self._stream)
        except Exception as err:
            raise _unavailable(self._name, "", err) from err
        return info.state.last_seq


def _ack_tokens(reply: str) -> tuple[int, str]:
    """A delivery's stream sequence and pending count, from its ``$JS.ACK`` reply subject.

    ``$JS.ACK.<stream>.<consumer>.<delivered>.<seq>.<cseq>.<time>.<pending>``, or the newer
    form with a domain and account hash after ``ACK`` (and maybe a random last token).
    """
    tokens = reply.split(".")
    if len(tokens) == 9:
        return int(tokens[5]), tokens[8]
    return int(tokens[7]), tokens[10]


def _unavailable(bucket: str, key: str, err: Exception) -> errdefs.Unavailable:
    # The foreign text may hold server internals: its type says enough.
    return errdefs.Unavailable(f"key-value {bucket} {key}: {type(err).__name__}")
