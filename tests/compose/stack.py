"""Driving the repository's compose file: commands with bounds, the project, the CLI on it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

REPO: Final = Path(__file__).resolve().parents[2]
NODE: Final = "node-1"
"""The node id of the compose file's per-node services."""

HEALTHY_WITHIN: Final = 90.0
PROJECT_PREFIX: Final = "flotilla-test-"
PROJECT_LABEL: Final = "com.docker.compose.project"


def run(
    args: Sequence[str],
    *,
    timeout: float,
    env: dict[str, str] | None = None,
    stdin: bytes = b"",
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """Run a command to completion within ``timeout``; with ``check``, fail on a bad status."""
    try:
        done = subprocess.run(
            list(args), input=stdin, capture_output=True, env=env, cwd=REPO, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(args)}: still running after {timeout:g} s", pytrace=False)
    if check and done.returncode != 0:
        pytest.fail(
            f"{' '.join(args)}: exit status {done.returncode}\n{done.stderr.decode()[-4000:]}",
            pytrace=False,
        )
    return done


def project_name() -> str:
    """A project name of its own, carrying this process's pid for :func:`remove_stale_projects`."""
    return f"{PROJECT_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _stale(project: str) -> bool:
    pid, _, _ = project.removeprefix(PROJECT_PREFIX).partition("-")
    return project.startswith(PROJECT_PREFIX) and pid.isdigit() and not _alive(int(pid))


def remove_stale_projects() -> None:
    """Remove what test runs killed before their teardown left behind (their process is gone).

    Containers first (they hold the networks and volumes), then networks, then volumes.
    """
    kinds = {
        "container": (["ps", "-a"], "{{.ID}}", ["rm", "--force", "--volumes"]),
        "network": (["network", "ls"], "{{.ID}}", ["network", "rm"]),
        "volume": (["volume", "ls"], "{{.Name}}", ["volume", "rm", "--force"]),
    }
    for ls, field, rm in kinds.values():
        form = f'{field} {{{{.Label "{PROJECT_LABEL}"}}}}'
        listed = run(
            ["docker", *ls, "--filter", f"label={PROJECT_LABEL}", "--format", form], timeout=30
        )
        lines = (line.split() for line in listed.stdout.decode().splitlines())
        stale = [fields[0] for fields in lines if len(fields) == 2 and _stale(fields[1])]
        if stale:
            run(["docker", *rm, *stale], timeout=120)


@dataclass
class Compose:
    """One docker-compose project of the repository's compose file, and the CLI against it."""

    project: str
    nats_url: str
    env: dict[str, str]

    def __call__(
        self, *args: str, timeout: float = 120, check: bool = True, stdin: bytes = b""
    ) -> subprocess.CompletedProcess[bytes]:
        command = ["docker-compose", "-p", self.project, "-f", str(REPO / "docker-compose.yml")]
        return run([*command, *args], timeout=timeout, env=self.env, stdin=stdin, check=check)

    def flotilla(self, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        """The host's ``flotilla`` on this stack's NATS, as a client that says it is on node-1.

        It shares the node's id, not its disk, so the content proxy finds no ingest file here
        and sends the bytes over NATS.
        """
        env = dict(os.environ, FLOTILLA_NATS__URLS=self.nats_url, FLOTILLA_NODE_ID=NODE)
        command = [sys.executable, "-m", "flotilla.cli", *args]
        return run(command, timeout=60, env=env, stdin=stdin, check=False)

    def status(self) -> list[dict[str, str]]:
        """``flotilla status`` as rows keyed by column; empty while it cannot answer."""
        done = self.flotilla("status")
        if done.returncode != 0:
            return []
        header, *lines = done.stdout.decode().splitlines()
        columns = header.split()
        return [dict(zip(columns, line.split(), strict=False)) for line in lines]

    def logs(self) -> str:
        return self("logs", "--no-color", "--tail", "20", check=False).stdout.decode()

    def down(self) -> None:
        self("down", "--volumes", "--remove-orphans", "--timeout", "20")

    def leftovers(self) -> dict[str, list[str]]:
        """This project's containers, volumes and networks that Docker still has."""
        label = f"label={PROJECT_LABEL}={self.project}"
        kinds = {
            "containers": ["ps", "-a"],
            "volumes": ["volume", "ls"],
            "networks": ["network", "ls"],
        }
        return {
            kind: run(["docker", *ls, "-q", "--filter", label], timeout=30).stdout.decode().split()
            for kind, ls in kinds.items()
        }


def wait_healthy(compose: Compose, services: Sequence[str]) -> list[dict[str, str]]:
    """The status rows once every one of ``services`` answers healthy (fails after a bound)."""
    deadline = time.monotonic() + HEALTHY_WITHIN
    while True:
        rows = compose.status()
        healthy = {row["SERVICE"] for row in rows if row.get("HEALTH") == "healthy"}
        if healthy >= set(services):
            return rows
        if time.monotonic() > deadline:
            table = "\n".join(" ".join(row.values()) for row in rows) or "(no answer)"
            pytest.fail(
                f"not every service healthy within {HEALTHY_WITHIN:g} s:\n{table}\n"
                f"{compose.logs()}",
                pytrace=False,
            )
        time.sleep(1)
