"""``flotilla snapshot`` against a real snapshots service, as ``ctr snapshots`` is used."""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flotilla.common.bus import Bus
from flotilla.snapshots.proxy import SnapshotterProxy
from flotilla.snapshots.testsuite import mounted
from flotilla.testkit.services import ServiceProcess, run_cli

pytestmark = pytest.mark.root

NODE = "cli-node"


@pytest.fixture
async def env(tmp_path: Path, nats_url: str, bus: Bus) -> AsyncIterator[dict[str, str]]:
    env = {
        "FLOTILLA_ROOT": str(tmp_path / "root"),
        "FLOTILLA_NATS__URLS": nats_url,
        "FLOTILLA_NODE_ID": NODE,
        "FLOTILLA_LOG_LEVEL": "warning",
    }
    service = ServiceProcess("snapshots", env)
    await service.start(bus)
    yield {**os.environ, **env}
    await service.stop()


async def flotilla(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    code, out, err = await run_cli(env, "snapshot", *args)
    return code, out.decode(), err


async def ok(env: dict[str, str], *args: str) -> str:
    code, out, err = await flotilla(env, *args)
    assert (code, err) == (0, ""), f"{args}: {err}"
    return out


async def test_prepare_write_commit_list_tree_and_remove(
    env: dict[str, str], tmp_path: Path, bus: Bus
) -> None:
    target = tmp_path / "mnt"
    out = await ok(env, "prepare", "base-active", "--target", str(target))
    root = Path(env["FLOTILLA_ROOT"]) / "snapshots" / "overlayfs"
    assert re.fullmatch(rf"mount -t bind {root}/\d+/fs {target} -o rw,rbind\n", out)
    assert await ok(env, "mounts", str(target), "base-active") == out
    mounts = await SnapshotterProxy(bus, node=NODE).mounts("default", "base-active")
    async with mounted(mounts) as tree:
        (tree / "hello").write_bytes(b"\0" * 10_000)

    assert await ok(env, "commit", "base", "base-active") == ""
    assert await ok(env, "prepare", "work", "base") == ""
    assert await ok(env, "view", "look", "base") == ""
    listed = (await ok(env, "ls")).splitlines()
    assert [line.split() for line in listed] == [
        ["KEY", "PARENT", "KIND"],
        ["base", "Committed"],
        ["look", "base", "View"],
        ["work", "base", "Active"],
    ]
    assert (await ok(env, "ls", "kind==active")).splitlines()[1:] == [listed[3]]
    assert await ok(env, "tree") == " base\n  \\_ look\n  \\_ work\n"

    usage = [line.split() for line in (await ok(env, "usage", "base")).splitlines()]
    assert usage[0] == ["KEY", "SIZE", "INODES"]
    assert usage[1][0] == "base"
    assert usage[1][2:] == ["KiB", "2"]  # the tree and its one file
    in_bytes = (await ok(env, "usage", "-b")).splitlines()
    assert len(in_bytes) == 4
    assert int(in_bytes[1].split()[1]) >= 10_000

    assert await ok(env, "rm", "look", "work", "base") == "look\nwork\nbase\n"
    assert (await ok(env, "ls")).splitlines() == ["KEY PARENT KIND"]


async def test_info_and_labels(env: dict[str, str]) -> None:
    await ok(env, "prepare", "a")
    info = json.loads(await ok(env, "info", "a"))
    assert list(info) == ["Kind", "Name", "Labels", "Created", "Updated"]
    assert (info["Kind"], info["Name"]) == ("Active", "a")
    assert list(info["Labels"]) == ["containerd.io/gc.root"]
    assert info["Created"].endswith("Z")

    out = await ok(env, "label", "a", "app=web", "tier=1")
    assert re.fullmatch(r"app=web,containerd\.io/gc\.root=\S+,tier=1\n", out)
    out = await ok(env, "label", "a", "tier=", "containerd.io/gc.root=")
    assert out == "app=web\n"
    assert await ok(env, "label", "a") == "app=web\n"
    assert json.loads(await ok(env, "info", "a"))["Labels"] == {"app": "web"}


async def test_prepare_prints_mounts_as_json(env: dict[str, str]) -> None:
    await ok(env, "prepare", "base-active")
    await ok(env, "commit", "base", "base-active")
    (mount,) = json.loads(await ok(env, "prepare", "child", "base", "--mounts"))
    assert mount["Type"] == "overlay"
    assert any(option.startswith("lowerdir=") for option in mount["Options"])


async def test_namespaces_snapshotters_and_the_alias(env: dict[str, str]) -> None:
    await ok(env, "-n", "elsewhere", "prepare", "theirs")
    await ok(env, "--snapshotter", "native", "prepare", "copied")
    assert "theirs" not in await ok(env, "ls")
    assert "copied" not in await ok(env, "ls")
    assert "theirs" in (await run_cli(env, "snapshots", "-n", "elsewhere", "ls"))[1].decode()
    native = await ok(env, "--snapshotter", "native", "ls")
    assert [line.split() for line in native.splitlines()][1:] == [["copied", "Active"]]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("rm", "missing"), "NotFound: snapshot missing does not exist"),
        (("--snapshotter", "btrfs", "ls"), "InvalidArgument: snapshotter not loaded: btrfs"),
        (("prepare", "x", "nowhere"), "NotFound: parent snapshot nowhere does not exist"),
        (
            ("label", "k", "novalue"),
            "InvalidArgument: label 'novalue': expected key=value (key= removes)",
        ),
    ],
)
async def test_errors_are_one_line(env: dict[str, str], args: tuple[str, ...], error: str) -> None:
    assert await flotilla(env, *args) == (1, "", f"flotilla: {error}\n")
