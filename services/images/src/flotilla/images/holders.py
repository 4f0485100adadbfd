"""Who else holds a namespace's objects: every node's blobs and snapshots.

A namespace delete asks them and refuses while any remain (containerd's "must be empty, but
it still has blobs").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from flotilla.common.bus import Bus
from flotilla.images.gc.client import CollectorClient
from flotilla.images.gc.nodes import BusNode, BusNodes
from flotilla.metadata import Metadata

__all__ = ["NodeHolder", "open_metadata"]


class NodeHolder:
    """Whether any node answers that it holds objects of one kind in a namespace.

    Args:
        nodes: the nodes to ask.
        held: which namespaces one node holds objects of the kind in.
    """

    def __init__(self, nodes: BusNodes, held: Callable[[BusNode], Awaitable[set[str]]]) -> None:
        self.nodes = nodes
        self.held = held

    async def holds_any(self, namespace: str) -> bool:
        """Whether a node holds objects of the kind in ``namespace``."""
        for node in await self.nodes.nodes():
            if namespace in await self.held(node):
                return True
        return False


async def open_metadata(bus: Bus, *, replicas: int = 1) -> Metadata:
    """The cluster records as a client process uses them.

    Deletes schedule the images service's collector, and a namespace is deleted only once no
    node holds its blobs or snapshots.
    """
    nodes = BusNodes(bus)
    holders = {
        "blobs": NodeHolder(nodes, BusNode.blob_namespaces),
        "snapshots": NodeHolder(nodes, BusNode.snapshot_namespaces),
    }
    return await Metadata.open(
        bus.nc, replicas=replicas, collector=CollectorClient(bus), holders=holders
    )
