"""Flotilla's content service: the node's content-addressed blob store.

The core (:mod:`~flotilla.content.store`, :mod:`~flotilla.content.events`) is pure
(containerd's filters and labels are :mod:`flotilla.common`'s); ``local`` is the
on-disk implementation and ``testsuite`` the conformance suite every implementation passes.
"""

from flotilla.content.events import ContentCreate, ContentDelete
from flotilla.content.store import (
    Info,
    Ingester,
    IngestManager,
    Manager,
    Provider,
    ReaderAt,
    Status,
    Store,
    Writer,
)

__all__ = [
    "ContentCreate",
    "ContentDelete",
    "Info",
    "IngestManager",
    "Ingester",
    "Manager",
    "Provider",
    "ReaderAt",
    "Status",
    "Store",
    "Writer",
]
