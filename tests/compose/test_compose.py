"""docker-compose.yml and the Dockerfile for real: build, up, healthy, a blob, privileges, down.

The per-node services (content, snapshots, images, tasks) answer as node-1; the cluster-wide
gateway as its container. The tests run in file order on one module-wide stack;
the last takes it down and checks Docker keeps nothing of it.
"""

from __future__ import annotations

import hashlib
import os

import pytest

from .stack import NODE, REPO, Compose, wait_healthy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

PER_NODE = ("content", "snapshots", "images", "tasks")
CLUSTER = ("gateway",)


def test_every_service_is_healthy_where_it_belongs(stack: Compose) -> None:
    rows = wait_healthy(stack, PER_NODE + CLUSTER)
    nodes = {row["SERVICE"]: row["NODE"] for row in rows}
    assert sorted(nodes) == sorted(PER_NODE + CLUSTER)
    assert all(nodes[service] == NODE for service in PER_NODE), nodes
    assert all(nodes[service] != NODE for service in CLUSTER), nodes


def test_a_blob_goes_in_and_comes_back(stack: Compose) -> None:
    wait_healthy(stack, ("content",))
    data = os.urandom(5 * 1024 * 1024 + 3)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    ingest = stack.flotilla(
        "content", "ingest", "compose-1", "--expected-digest", digest, stdin=data
    )
    assert (ingest.returncode, ingest.stdout.decode().strip()) == (0, digest), ingest.stderr
    got = stack.flotilla("content", "get", digest)
    assert got.returncode == 0, got.stderr
    assert got.stdout == data


def test_snapshots_mounts_overlayfs_on_the_node_root(stack: Compose) -> None:
    script = (REPO / "tests/compose/overlay_check.sh").read_bytes()
    done = stack("exec", "-T", "snapshots", "sh", "-s", stdin=script)
    assert done.stdout.decode().split() == ["lower", "upper"]


def test_tasks_runs_a_container_with_runc(stack: Compose) -> None:
    script = (REPO / "tests/compose/runc_check.sh").read_bytes()
    done = stack("exec", "-T", "tasks", "sh", "-s", stdin=script)
    assert done.stdout.decode().strip() == "runc ran pid 1"


def test_down_leaves_no_container_volume_or_network(stack: Compose) -> None:
    before = stack.leftovers()
    assert all(before.values()), before  # the filter does see the project while it is up
    stack.down()
    assert stack.leftovers() == {"containers": [], "volumes": [], "networks": []}
