"""The images service on the wire: for now, the garbage collector's endpoint.

``flotilla.v1.images.gc`` is a cluster method: any images service instance answers, and the
cluster lock makes collections run one at a time. ``wait=False`` only schedules one (the
debounced collection deletes ask for).
"""

from __future__ import annotations

from typing import Final

from flotilla.common.bus import ServiceApi, Wire

__all__ = ["API", "GC", "Collect", "Collected"]

SERVICE: Final = "images"


class Collect(Wire, frozen=True):
    """Run a collection now (``wait``), or soon."""

    wait: bool = True


class Collected(Wire, frozen=True):
    """What a collection removed (all zero when it was only scheduled)."""

    blobs: int = 0
    snapshots: int = 0
    leases: int = 0
    marks: int = 0
    seconds: float = 0.0
    skipped: bool = False


API = ServiceApi(SERVICE)

GC = API.unary("gc", Collect, Collected)
