"""One list of Debian packages (tools/debian-packages) for `make run`, `make test` and CI."""

from __future__ import annotations

from flotilla.testkit.programs import PACKAGES

from .packages import REPO, packages

# What the tests run (containerd, runc, registry, skopeo, busybox, mounts, namespaces), what the
# venv needs, and what the compose test runs (docker, dockerd, docker-compose, debootstrap).
FOR_TESTS = (
    "make", "python3", "python3-venv", "python3-dev", "gcc", "runc", "busybox-static",
    "docker-registry", "containerd", "skopeo", "iproute2", "util-linux",
    "docker.io", "docker-compose", "debootstrap",
)  # fmt: skip


def test_the_list_has_what_the_tests_need() -> None:
    names = [package.name for package in packages()]
    assert sorted(set(names)) == sorted(names), "a package is listed twice"
    assert set(FOR_TESTS) <= set(names)
    assert {package.used_by for package in packages()} == {"run", "test"}


def test_make_run_needs_the_venv_and_runc_but_not_the_test_tools() -> None:
    run = {package.name for package in packages() if package.used_by == "run"}
    assert {"python3", "python3-venv", "runc", "make"} <= run
    assert not run & {"containerd", "skopeo", "docker-registry", "docker.io"}


def test_every_program_the_kit_names_comes_from_a_listed_package() -> None:
    listed = {program: package.name for package in packages() for program in package.programs}
    assert {program: listed.get(program) for program in PACKAGES} == PACKAGES


def test_ci_installs_nothing_itself() -> None:
    script = (REPO / ".ci" / "run").read_text()
    assert "apt-get" not in script
    assert not [name for name in FOR_TESTS if f" {name}" in script and name != "make"]
    assert script.rstrip().endswith("exec make test")
