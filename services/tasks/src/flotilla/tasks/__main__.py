"""Entry point of the tasks service (``python -m flotilla.tasks``).

Only discovery and metrics are served until the service's own endpoints land; its composition
root (``build``) arrives with them.
"""

from flotilla.common import runtime

if __name__ == "__main__":
    runtime.main_bare(
        "tasks",
        "node-local task service: runs containers with runc",
    )
