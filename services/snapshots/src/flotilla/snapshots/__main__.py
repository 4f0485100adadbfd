"""Entry point of the snapshots service (``python -m flotilla.snapshots``).

Only discovery and metrics are served until the service's own endpoints land; its composition
root (``build``) arrives with them.
"""

from flotilla.common import runtime

if __name__ == "__main__":
    runtime.main_bare(
        "snapshots",
        "containerd snapshotters: overlayfs and a native copy fallback, and the diff service",
    )
