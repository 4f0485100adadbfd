"""Composition root of the snapshots service (``python -m flotilla.snapshots``).

Only discovery and metrics are served until the service's own endpoints land.
"""

from flotilla.common import runtime

build = runtime.bare_builder(
    "snapshots",
    "containerd snapshotters: overlayfs and a native copy fallback, and the diff service",
)


def main() -> None:
    """Run the snapshots service until SIGTERM."""
    runtime.main("snapshots", build)


if __name__ == "__main__":
    main()
