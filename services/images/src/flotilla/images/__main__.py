"""Composition root of the images service (``python -m flotilla.images``).

Only discovery and metrics are served until the service's own endpoints land.
"""

from flotilla.common import runtime

build = runtime.bare_builder("images", "image metadata, pull, push, import and export")


def main() -> None:
    """Run the images service until SIGTERM."""
    runtime.main("images", build)


if __name__ == "__main__":
    main()
