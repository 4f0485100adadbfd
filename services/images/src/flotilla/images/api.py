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

__all__ = [
    "API",
    "EXPORT",
    "GC",
    "IMPORT",
    "PULL",
    "PUSH",
    "Collect",
    "Collected",
    "ExportRequest",
    "Exported",
    "ImportRequest",
    "ImportResult",
    "PullRequest",
    "PullResult",
    "PushRequest",
    "Pushed",
    "Target",
]

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


class ImportRequest(Wire, frozen=True):
    """Import the image tarball at ``path`` on this node (OCI layout or ``docker save``).

    Attributes:
        path: the tarball, plain or gzip, on the service's node.
        base_name: names entries that carry only a tag (``ctr import --base-name``).
        platforms: unpack (and, of an index, require) these platforms; none: this node's.
        all_platforms: import and unpack every platform the archive holds.
        unpack: unpack into ``snapshotter`` (empty: the node's default).
        labels: the image records' labels.
    """

    path: str
    base_name: str = ""
    platforms: tuple[str, ...] = ()
    all_platforms: bool = False
    unpack: bool = True
    snapshotter: str = ""
    labels: dict[str, str] = {}


class ImportResult(Wire, frozen=True):
    """The images an import recorded."""

    images: tuple[PullResult, ...] = ()


class ExportRequest(Wire, frozen=True):
    """Write the named images to an OCI layout tarball at ``path`` on this node.

    Attributes:
        path: where the tarball goes (replaced).
        names: the images, by record name.
        platforms: of an index, only these platforms' manifests; none: every one present.
        docker_manifest: add ``manifest.json`` so ``docker load`` reads it too.
    """

    path: str
    names: tuple[str, ...]
    platforms: tuple[str, ...] = ()
    docker_manifest: bool = True


class Exported(Wire, frozen=True):
    """The tarball written, and its size."""

    path: str
    size: int


class PushRequest(Wire, frozen=True):
    """Push the image record ``name`` from this node's content store to a registry.

    Attributes:
        name: the image record.
        reference: where to (``host/repo:tag``); empty: ``name`` itself.
        platforms: only these platforms' manifests (one: pushed alone as the tag); none:
            the whole image.
        plain_http: the registry speaks plain HTTP.
        skip_verify: do not verify the registry's TLS certificate.
        username: with ``secret``, credentials for the registry.
        chunk_size: upload blobs in ``PATCH`` es of this many bytes; 0: one ``PUT`` each.
        progress: a subject to publish each blob's progress on.
    """

    name: str
    reference: str = ""
    platforms: tuple[str, ...] = ()
    plain_http: bool = False
    skip_verify: bool = False
    username: str = ""
    secret: str = ""
    chunk_size: int = 0
    progress: str = ""


class Pushed(Wire, frozen=True):
    """What the registry now has under ``reference``."""

    reference: str
    target: Target


API = ServiceApi(SERVICE)

PULL = API.unary("pull", PullRequest, PullResult, node_local=True)
IMPORT = API.unary("import", ImportRequest, ImportResult, node_local=True)
EXPORT = API.unary("export", ExportRequest, Exported, node_local=True)
PUSH = API.unary("push", PushRequest, Pushed, node_local=True)

GC = API.unary("gc", Collect, Collected)
