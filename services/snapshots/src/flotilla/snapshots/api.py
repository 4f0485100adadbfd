"""The snapshots service on the wire: msgspec Structs and one :class:`Method` per endpoint.

Every method is node-local (``flotilla.v1.node.<node>.snapshots.<method>``): snapshots are one
node's disk. The namespace travels in the ``Flotilla-Namespace`` header. The methods are
containerd's Snapshots API one to one (prepare, view, mounts, commit, remove, stat, update,
list, usage, cleanup) and its Diff API (apply, diff), so a gateway serves each with one call;
``namespaces`` adds which namespaces a snapshotter holds snapshots in (no namespace header), for
the cluster's garbage collector and namespace deletion.

Each snapshot request names its ``snapshotter`` (``overlayfs``, ``native``); an empty name is
the node's default (``[snapshots] default``; ``native`` where overlayfs does not work), and a
name the node has not loaded is InvalidArgument ``snapshotter not loaded: <name>``, as
containerd answers. ``snapshotters`` tells what the node loaded: each one's name, root and
capabilities (``rebase``), as containerd's introspection does for its snapshotter plugins.

Mounts are :class:`~flotilla.common.mounts.Mount` Structs as they are.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

from flotilla.common.bus import Empty, ServiceApi, Wire
from flotilla.common.mounts import Mount

__all__ = [
    "API",
    "APPLY",
    "CAPABILITY_REBASE",
    "CLEANUP",
    "COMMIT",
    "DIFF",
    "LIST",
    "MOUNTS",
    "NAMESPACES",
    "PREPARE",
    "REMOVE",
    "SNAPSHOTTERS",
    "STAT",
    "UPDATE",
    "USAGE",
    "VIEW",
    "Descriptor",
    "KindName",
    "Namespaces",
    "NamespacesRequest",
    "SnapshotInfo",
    "SnapshotterInfo",
]

SERVICE: Final = "snapshots"
CAPABILITY_REBASE: Final = "rebase"
"""containerd's capability of a snapshotter whose commit takes a parent."""

KindName = Literal["View", "Active", "Committed"]
"""A snapshot's kind as containerd spells it."""


class SnapshotInfo(Wire, frozen=True):
    """One snapshot (containerd's ``snapshots.Info``)."""

    name: str
    kind: KindName
    parent: str = ""
    labels: dict[str, str] = {}
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Named(Wire, frozen=True):
    """Names the snapshotter a request is for (empty: the node's default)."""

    snapshotter: str = ""


class PrepareRequest(Named, frozen=True, kw_only=True):
    """Make the active snapshot ``key`` on the committed ``parent`` (empty: none)."""

    key: str
    parent: str = ""
    labels: dict[str, str] = {}


class ViewRequest(PrepareRequest, frozen=True, kw_only=True):
    """Make the read-only view ``key`` of the committed ``parent``."""


class KeyRequest(Named, frozen=True, kw_only=True):
    """Names one snapshot."""

    key: str


class MountsRequest(KeyRequest, frozen=True, kw_only=True):
    """The mounts of an active snapshot or view."""


class RemoveRequest(KeyRequest, frozen=True, kw_only=True):
    """Delete one snapshot."""


class StatRequest(KeyRequest, frozen=True, kw_only=True):
    """One snapshot's info."""


class UsageRequest(KeyRequest, frozen=True, kw_only=True):
    """The disk one snapshot's own layer uses."""


class Mounts(Wire, frozen=True):
    """What to mount to see a snapshot."""

    mounts: tuple[Mount, ...] = ()


class CommitRequest(Named, frozen=True, kw_only=True):
    """Turn the active ``key`` into the committed ``name``.

    ``labels`` ``None`` keeps the active snapshot's; ``parent`` ``None`` keeps the parent it
    was prepared on, a name (or ``""``: none) rebases where the snapshotter can.
    """

    name: str
    key: str
    labels: dict[str, str] | None = None
    parent: str | None = None


class UpdateRequest(Named, frozen=True, kw_only=True):
    """Change ``info.name``'s labels along ``fieldpaths`` (``labels``, ``labels.<key>``)."""

    info: SnapshotInfo
    fieldpaths: tuple[str, ...] = ()


class ListRequest(Named, frozen=True, kw_only=True):
    """containerd filters, ORed: the snapshots to list."""

    filters: tuple[str, ...] = ()


class Usage(Wire, frozen=True):
    """Bytes and inodes of a snapshot's own layer."""

    size: int = 0
    inodes: int = 0


class CleanupRequest(Named, frozen=True):
    """Remove the snapshotter's directories no snapshot owns."""


class NamespacesRequest(Named, frozen=True):
    """The namespaces the snapshotter holds snapshots in."""


class Namespaces(Wire, frozen=True):
    """Namespace names, sorted."""

    namespaces: tuple[str, ...] = ()


class SnapshotterInfo(Wire, frozen=True):
    """One loaded snapshotter: its root on the service's node and its capabilities."""

    name: str
    root: str
    capabilities: tuple[str, ...] = ()


class Snapshotters(Wire, frozen=True):
    """The node's snapshotters, and which an empty name means."""

    default: str
    snapshotters: tuple[SnapshotterInfo, ...] = ()


class Descriptor(Wire, frozen=True):
    """An OCI content descriptor (containerd's ``types.Descriptor``)."""

    media_type: str
    digest: str
    size: int = 0
    annotations: dict[str, str] = {}


class ApplyRequest(Wire, frozen=True):
    """Unpack the layer blob ``diff`` onto ``mounts``; ``diff_id``: its uncompressed digest.

    ``ref``: the node's content ingest the layer's bytes are still arriving in; unless the
    blob is committed, the ingest's file is read as it grows, up to ``diff.size`` bytes.
    """

    diff: Descriptor
    mounts: tuple[Mount, ...] = ()
    diff_id: str = ""
    ref: str = ""


class ApplyResponse(Wire, frozen=True):
    """The uncompressed tar that was applied."""

    applied: Descriptor


class DiffRequest(Wire, frozen=True):
    """Write the changes from ``left`` to ``right`` into the content store as a layer.

    An empty ``media_type`` is gzip (containerd's default); an empty ``ref`` a unique one.
    """

    left: tuple[Mount, ...] = ()
    right: tuple[Mount, ...] = ()
    media_type: str = ""
    ref: str = ""
    labels: dict[str, str] = {}


class DiffResponse(Wire, frozen=True):
    """The committed layer."""

    diff: Descriptor


API = ServiceApi(SERVICE, node_local=True)

PREPARE = API.unary("prepare", PrepareRequest, Mounts)
VIEW = API.unary("view", ViewRequest, Mounts)
MOUNTS = API.unary("mounts", MountsRequest, Mounts)
COMMIT = API.unary("commit", CommitRequest, Empty)
REMOVE = API.unary("remove", RemoveRequest, Empty)
STAT = API.unary("stat", StatRequest, SnapshotInfo)
UPDATE = API.unary("update", UpdateRequest, SnapshotInfo)
LIST = API.items("list", ListRequest, SnapshotInfo)
USAGE = API.unary("usage", UsageRequest, Usage)
CLEANUP = API.unary("cleanup", CleanupRequest, Empty)
NAMESPACES = API.unary("namespaces", NamespacesRequest, Namespaces)
SNAPSHOTTERS = API.unary("snapshotters", Empty, Snapshotters)
APPLY = API.unary("apply", ApplyRequest, ApplyResponse)
DIFF = API.unary("diff", DiffRequest, DiffResponse)
