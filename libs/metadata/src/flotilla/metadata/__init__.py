"""Flotilla's cluster records: namespaces, images, containers and leases in JetStream KV.

Open :class:`Metadata` on a NATS connection and use its stores; every write is a
compare-and-set, so any number of processes on any node may share the records.
"""

from flotilla.metadata.metadata import Buckets, Metadata
from flotilla.metadata.ports import Collector, Holder, NoCollector
from flotilla.metadata.records import (
    AnyValue,
    Container,
    Descriptor,
    Image,
    Lease,
    Namespace,
    Resource,
    Runtime,
)

__all__ = [
    "AnyValue",
    "Buckets",
    "Collector",
    "Container",
    "Descriptor",
    "Holder",
    "Image",
    "Lease",
    "Metadata",
    "Namespace",
    "NoCollector",
    "Resource",
    "Runtime",
]
