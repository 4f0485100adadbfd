"""The images service on the wire: pull, and the garbage collector's endpoint.

``flotilla.v1.node.<node>.images.pull`` is node-local: the images service of the node whose
content store and snapshots receive the image does the pull, so its bytes go straight to that
node's disk. Its per-blob progress (:class:`~flotilla.images.pull.progress.BlobProgress`,
msgpack) is published on the request's ``progress`` subject while it runs.

``flotilla.v1.images.gc`` is a cluster method: any images service instance answers, and the
cluster lock makes collections run one at a time. ``wait=False`` only schedules one (the
debounced collection deletes ask for).
"""

from __future__ import annotations

from typing import Final

from flotilla.common.bus import ServiceApi, Wire

__all__ = ["API", "GC", "PULL", "Collect", "Collected", "PullRequest", "PullResult", "Target"]

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


class PullRequest(Wire, frozen=True):
    """Pull ``reference`` into this node's content store (and snapshots, with ``unpack``).

    Attributes:
        reference: ``host/repo:tag``, ``repo@digest``; short names are Docker Hub's.
        platforms: wanted platforms (``linux/arm64``); none: this node's.
        all_platforms: every platform of an index.
        unpack: unpack into ``snapshotter`` (empty: the node's default).
        plain_http: the registry speaks plain HTTP (``ctr --plain-http``).
        skip_verify: do not verify the registry's TLS certificate.
        username: with ``secret``, credentials for the reference's registry (else the
            service's Docker ``config.json``).
        labels: the image record's labels.
        progress: a subject to publish each blob's progress on (none: not published).
    """

    reference: str
    platforms: tuple[str, ...] = ()
    all_platforms: bool = False
    unpack: bool = True
    snapshotter: str = ""
    plain_http: bool = False
    skip_verify: bool = False
    username: str = ""
    secret: str = ""
    labels: dict[str, str] = {}
    progress: str = ""


class Target(Wire, frozen=True):
    """An image's target descriptor."""

    media_type: str
    digest: str
    size: int


class PullResult(Wire, frozen=True):
    """The image a pull recorded (``created``: new, else its target was updated)."""

    name: str
    target: Target
    chain_ids: tuple[str, ...] = ()
    created: bool = True


API = ServiceApi(SERVICE)

PULL = API.unary("pull", PullRequest, PullResult, node_local=True)

GC = API.unary("gc", Collect, Collected)
