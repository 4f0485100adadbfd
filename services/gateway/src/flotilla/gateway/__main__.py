"""Entry point of the gateway service (``python -m flotilla.gateway``).

Only discovery and metrics are served until the service's own endpoints land; its composition
root (``build``) arrives with them.
"""

from flotilla.common import runtime

if __name__ == "__main__":
    runtime.main_bare(
        "gateway",
        "containerd's gRPC API and an HTTP/JSON API over the bus",
    )
