"""Composition root of the gateway service (``python -m flotilla.gateway``).

Only discovery and metrics are served until the service's own endpoints land.
"""

from flotilla.common import runtime

build = runtime.bare_builder("gateway", "containerd's gRPC API and an HTTP/JSON API over the bus")


def main() -> None:
    """Run the gateway service until SIGTERM."""
    runtime.main("gateway", build)


if __name__ == "__main__":
    main()
