"""The images service's section of the node's configuration (``[images]``)."""

from __future__ import annotations

from flotilla.common.config import Section

__all__ = ["ImagesConfig"]


class ImagesConfig(Section, frozen=True):
    """The images service and the cluster records it keeps.

    Attributes:
        replicas: copies of each record bucket when it is first made (1 on one node; 3 when
            NATS runs as a cluster of three or more).
        gc_debounce: seconds without a delete before the collection deletes asked for runs.
        gc_lock_ttl: seconds the collector's cluster lock outlives a collector that vanished.
        hosts_dir: registry hosts in containerd's ``certs.d/<host>/hosts.toml`` layout.
        docker_config: a Docker ``config.json`` with registry credentials.
        downloads: layers one pull downloads at once.
    """

    replicas: int = 1
    gc_debounce: float = 1.0
    gc_lock_ttl: float = 15.0
    hosts_dir: str = "/etc/flotilla/certs.d"
    docker_config: str = "/root/.docker/config.json"
    downloads: int = 3
