"""Entry point of the images service (``python -m flotilla.images``).

Only discovery and metrics are served until the service's own endpoints land; its composition
root (``build``) arrives with them.
"""

from flotilla.common import runtime

if __name__ == "__main__":
    runtime.main_bare(
        "images",
        "image metadata, pull, push, import and export",
    )
