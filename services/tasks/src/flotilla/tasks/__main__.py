"""Composition root of the tasks service (``python -m flotilla.tasks``).

Only discovery and metrics are served until the service's own endpoints land.
"""

from flotilla.common import runtime

build = runtime.bare_builder("tasks", "node-local task service: runs containers with runc")


def main() -> None:
    """Run the tasks service until SIGTERM."""
    runtime.main("tasks", build)


if __name__ == "__main__":
    main()
