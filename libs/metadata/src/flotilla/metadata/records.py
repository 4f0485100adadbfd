"""The cluster's records, as containerd's metadata keeps them, and how they are stored.

Each is a frozen msgspec Struct stored msgpack-encoded as one KV value; the namespace and the
record's name are the key (:mod:`flotilla.metadata.keys`), never duplicated in the value.
Times are UTC datetimes, as containerd's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Final, Generic, TypeVar

import msgspec

__all__ = [
    "AnyValue",
    "Container",
    "Descriptor",
    "Image",
    "Lease",
    "Namespace",
    "Resource",
    "Runtime",
    "Codec",
]


class AnyValue(msgspec.Struct, frozen=True, kw_only=True):
    """A protobuf ``Any`` as containerd stores it: a type URL and its encoded bytes."""

    type_url: str = ""
    value: bytes = b""


class Descriptor(msgspec.Struct, frozen=True, kw_only=True):
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int = 0
    annotations: dict[str, str] = {}


class Namespace(msgspec.Struct, frozen=True, kw_only=True):
    """A namespace and its labels."""

    name: str
    labels: dict[str, str] = {}


class Image(msgspec.Struct, frozen=True, kw_only=True):
    """A name for a target descriptor (containerd's ``images.Image``)."""

    name: str
    target: Descriptor
    labels: dict[str, str] = {}
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Runtime(msgspec.Struct, frozen=True, kw_only=True):
    """The runtime a container runs with, and its options."""

    name: str
    options: AnyValue | None = None


class Container(msgspec.Struct, frozen=True, kw_only=True):
    """A container's metadata (containerd's ``containers.Container``); no process state."""

    id: str
    runtime: Runtime
    spec: AnyValue | None = None
    image: str = ""
    labels: dict[str, str] = {}
    snapshotter: str = ""
    snapshot_key: str = ""
    extensions: dict[str, AnyValue] = {}
    sandbox: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Lease(msgspec.Struct, frozen=True, kw_only=True):
    """A lease: while it lives (see ``containerd.io/gc.expire``), its resources are GC roots."""

    id: str
    labels: dict[str, str] = {}
    created_at: datetime | None = None


class Resource(msgspec.Struct, frozen=True, kw_only=True):
    """One resource a lease holds.

    Its type is ``content`` (the id a digest), ``snapshots/<snapshotter>`` (a key) or
    ``ingests`` (an ingest ref).
    """

    id: str
    type: str


T = TypeVar("T")


class Codec(Generic[T]):
    """msgpack encoder and decoder for one record type, built once."""

    def __init__(self, kind: type[T]) -> None:
        self.kind = kind
        self.encode = _ENCODER.encode
        self.decode: Callable[[bytes], T] = msgspec.msgpack.Decoder(kind).decode


_ENCODER: Final = msgspec.msgpack.Encoder()
