"""The set-up step (`make setup`, run first by `make run` and `make test`) on a fresh clone.

A PATH of shims stands for the machine: links to the real programs (one of them left out), and
dpkg-query and apt-get wrappers that record how they were called (apt-get installs nothing).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .packages import REPO, programs

pytestmark = [pytest.mark.slow, pytest.mark.programs("git", "make", "setpriv")]

NOBODY = 65534


@dataclass(frozen=True)
class Machine:
    """A PATH of shims, and what dpkg-query and apt-get were asked."""

    bin: Path
    log: Path

    @property
    def env(self) -> dict[str, str]:
        return {"PATH": str(self.bin), "LC_ALL": "C"}

    def calls(self, program: str) -> list[str]:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [line.split(" ", 1)[1] for line in lines if line.split(" ", 1)[0] == program]


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    """A directory anyone can read (one case runs as nobody), removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="flotilla-setup-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def clone(workdir: Path) -> Path:
    """A clone of this repository's committed HEAD."""
    subprocess.run(
        ["git", "clone", "--quiet", str(REPO), str(workdir / "flotilla")], check=True, timeout=120
    )
    return workdir / "flotilla"


@pytest.fixture
def machine(workdir: Path, request: pytest.FixtureRequest) -> Callable[..., Machine]:
    """``machine(hide=..., not_installed=..., debian=True)``: a PATH of shims for one run."""

    def build(
        hide: tuple[str, ...] = (), not_installed: tuple[str, ...] = (), debian: bool = True
    ) -> Machine:
        root = workdir / request.node.name.replace("/", "_")
        (root / "bin").mkdir(parents=True)
        log = root / "calls.log"
        log.touch(mode=0o666)
        log.chmod(0o666)
        for program in {*programs("test"), "bash"} - set(hide):
            real = shutil.which(program)
            assert real is not None, f"{program}: the set-up step should have installed it"
            (root / "bin" / program).symlink_to(real)
        if debian:
            _dpkg_query(root / "bin" / "dpkg-query", log, not_installed)
            _script(root / "bin" / "apt-get", f'echo "apt-get $*" >> {log}\nexit 0')
        return Machine(root / "bin", log)

    return build


def _script(path: Path, body: str) -> None:
    path.write_text(f"#!{shutil.which('bash')}\n{body}\n")
    path.chmod(0o755)


def _dpkg_query(path: Path, log: Path, not_installed: tuple[str, ...]) -> None:
    """Records its call; reports the packages in ``not_installed`` as not installed."""
    real = shutil.which("dpkg-query")
    hide = "|".join(not_installed) or "-none-"
    _script(
        path,
        f'echo "dpkg-query $*" >> {log}\n'
        f'{real} "$@" | while read -r status name; do\n'
        f'  case $name in {hide}) echo "un  $name" ;; *) echo "$status  $name" ;; esac\n'
        "done",
    )


def run_setup(
    clone: Path, machine: Machine, target: str = "test", *, user: int | None = None
) -> subprocess.CompletedProcess[str]:
    """`make setup` in the clone, as `make test` (``target="test"``) or `make run` runs it."""
    argv = argv_make(target)
    if user is not None:
        setpriv = str(shutil.which("setpriv"))
        argv = [setpriv, f"--reuid={user}", f"--regid={user}", "--clear-groups", "--", *argv]
    return subprocess.run(
        argv, cwd=clone, env=machine.env, capture_output=True, text=True, timeout=60, check=False
    )


def argv_make(target: str) -> list[str]:
    """``make setup`` for ``target``, with make's absolute path (the shims PATH may hide it)."""
    return [str(shutil.which("make")), "--no-print-directory", "setup", f"SETUP_FOR={target}"]


def said(result: subprocess.CompletedProcess[str]) -> list[str]:
    """What tools/setup said (make adds its own "Error 1" line after it)."""
    return [line for line in result.stderr.splitlines() if line.startswith("flotilla setup:")]


@pytest.mark.parametrize("hidden", ["skopeo", "containerd", "runc", "debootstrap"])
def test_a_program_missing_from_path_is_named_in_one_line(
    clone: Path, machine: Callable[..., Machine], hidden: str
) -> None:
    shims = machine(hide=(hidden,))
    result = run_setup(clone, shims)
    assert result.returncode != 0
    [line] = said(result)
    assert f"{hidden} (package {programs()[hidden]})" in line
    assert "not on PATH" in line
    assert len(shims.calls("dpkg-query")) == 1
    assert not shims.calls("apt-get")


def test_not_debian_names_the_programs_and_the_debian_command(
    clone: Path, machine: Callable[..., Machine]
) -> None:
    result = run_setup(clone, machine(hide=("containerd", "ctr"), debian=False))
    assert result.returncode != 0
    [line] = said(result)
    assert "containerd (package containerd), ctr (package containerd)" in line
    assert "not Debian" in line
    assert line.endswith("apt-get install -y --no-install-recommends containerd)")


def test_not_root_names_the_packages_and_the_command(
    clone: Path, machine: Callable[..., Machine]
) -> None:
    shims = machine(not_installed=("skopeo", "docker-registry"))
    result = run_setup(clone, shims, user=NOBODY if os.geteuid() == 0 else None)
    assert result.returncode != 0
    [line] = said(result)
    assert "missing Debian packages for `make test`: docker-registry skopeo" in line
    assert line.endswith(
        "sudo sh -c 'apt-get update && apt-get install -y --no-install-recommends"
        " docker-registry skopeo'"
    )
    assert not shims.calls("apt-get")


@pytest.mark.skipif(os.geteuid() != 0, reason="installing is for root; the case above is not")
def test_root_installs_only_what_is_missing(clone: Path, machine: Callable[..., Machine]) -> None:
    shims = machine(not_installed=("skopeo",))
    result = run_setup(clone, shims)
    assert result.returncode == 0, result.stderr
    assert shims.calls("apt-get") == [
        "update -qq",
        "install -y -qq --no-install-recommends skopeo",
    ]


def test_make_run_checks_only_its_own_packages(
    clone: Path, machine: Callable[..., Machine]
) -> None:
    shims = machine(hide=("skopeo", "containerd", "docker-registry"))  # test-only programs
    result = run_setup(clone, shims, "run")
    assert result.returncode == 0, result.stderr
    [query] = shims.calls("dpkg-query")
    assert "skopeo" not in query.split()
    assert "runc" in query.split()


@pytest.mark.parametrize("target", ["test", "run"])
def test_make_sets_up_before_anything_else(clone: Path, target: str) -> None:
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", target],
        cwd=clone,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    commands = dry.stdout.splitlines()
    assert commands[0] == f"tools/setup {target}"
    assert sum(line.startswith("tools/setup") for line in commands) == 1
    assert any("-m venv" in line for line in commands)  # a fresh clone: the venv comes next


def test_when_everything_is_there_it_is_one_dpkg_query_and_no_apt_get(
    clone: Path, machine: Callable[..., Machine], record_property: Callable[[str, object], None]
) -> None:
    shims = machine()
    result = run_setup(clone, shims)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert len(shims.calls("dpkg-query")) == 1
    assert shims.calls("apt-get") == []
    # The cost, on this machine's real PATH: the script alone and through make.
    env = {**os.environ, "LC_ALL": "C"}
    script = _median_ms(["tools/setup", "test"], clone, env)
    through_make = _median_ms(argv_make("test"), clone, env)
    record_property("setup_noop_ms", script)
    record_property("make_setup_noop_ms", through_make)
    print(f"set-up step with nothing to do: {script:.1f} ms, {through_make:.1f} ms through make")


def _median_ms(argv: list[str], cwd: Path, env: dict[str, str], runs: int = 20) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True, timeout=60)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)
