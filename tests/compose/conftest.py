"""The compose stack for real: Docker's programs, a daemon, the image, the running project.

Every wait is bounded. A missing program fails in one line naming it; a daemon that is not
running is started for the session (and stopped after it); the base image is reused if present.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from flotilla.testkit import free_port

from .stack import Compose, project_name, remove_stale_projects, run

PROGRAMS: Final = {
    "docker": "docker.io",
    "dockerd": "docker.io",
    "docker-compose": "docker-compose",
    "debootstrap": "debootstrap",
}
"""What the stack needs, and the Debian package that provides each."""

DAEMON_WITHIN: Final = 60.0


@pytest.fixture(scope="session")
def docker_programs() -> None:
    for program, package in PROGRAMS.items():
        if shutil.which(program) is None:
            pytest.fail(f"{program}: not found on PATH (Debian package {package})", pytrace=False)


def _daemon_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _wait_for_daemon(daemon: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + DAEMON_WITHIN
    while not _daemon_answers():
        if daemon.poll() is not None or time.monotonic() > deadline:
            why = "exited" if daemon.returncode is not None else f"not up in {DAEMON_WITHIN:g} s"
            tail = log.read_text(errors="replace")[-2000:]
            pytest.fail(f"dockerd {why}; its log ends:\n{tail}", pytrace=False)
        time.sleep(0.5)


def _stop(daemon: subprocess.Popen[bytes]) -> None:
    daemon.send_signal(signal.SIGTERM)
    try:
        daemon.wait(30)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait(10)


@pytest.fixture(scope="session")
def docker_daemon(
    docker_programs: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """A Docker daemon that answers: the running one, or one started here and stopped after."""
    if _daemon_answers():
        yield
        return
    log = tmp_path_factory.mktemp("dockerd") / "dockerd.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            ["dockerd"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_for_daemon(daemon, log)
        yield
    finally:
        _stop(daemon)


@pytest.fixture(scope="session")
def flotilla_image(docker_daemon: None) -> None:
    """The image from this checkout (docker/build.sh; the base image is kept if present)."""
    run(["docker/build.sh"], timeout=900, env=dict(os.environ, PYTHON=sys.executable))


@pytest.fixture(scope="module")
def stack(flotilla_image: None) -> Iterator[Compose]:
    """The compose file up under a project name of its own, NATS on a free host port."""
    remove_stale_projects()
    port = free_port()
    compose = Compose(
        project=project_name(),
        nats_url=f"nats://127.0.0.1:{port}",
        env=dict(os.environ, NATS_PUBLISH=f"127.0.0.1:{port}"),
    )
    try:
        compose("up", "--detach", timeout=300)
        yield compose
    finally:
        compose.down()
