"""``flotilla snapshot``: containerd's ``ctr snapshots`` over a node's snapshots service."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Final

from flotilla.cli.labels import label_pairs
from flotilla.common.bus import Bus
from flotilla.common.mounts import Mount
from flotilla.snapshots.proxy import SnapshotterProxy
from flotilla.snapshots.snapshotter import Info, Usage

__all__ = ["add_snapshot_commands", "run_snapshot"]

GC_ROOT: Final = "containerd.io/gc.root"
_UNITS: Final = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")

Verb = Callable[[SnapshotterProxy, str, argparse.Namespace], Awaitable[None]]


def add_snapshot_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``snapshot ls|prepare|view|mounts|commit|rm|usage|tree|info|label``."""
    snapshot = commands.add_parser(
        "snapshot", aliases=["snapshots"], help="the node's snapshots (as ctr snapshots)"
    )
    snapshot.add_argument("-n", "--namespace", default="default")
    snapshot.add_argument("--node", help="whose snapshots (default: this node)")
    snapshot.add_argument(
        "--snapshotter", default="", help="overlayfs or native (default: the node's default)"
    )
    verbs = snapshot.add_subparsers(dest="verb", required=True)
    ls = verbs.add_parser("ls", aliases=["list"], help="list snapshots")
    ls.add_argument("filters", nargs="*")
    ls.set_defaults(run=_ls)
    _add_create(verbs, "prepare", "an active snapshot on a committed parent", _prepare)
    _add_create(verbs, "view", "a read-only view of a committed snapshot", _view)
    mounts = verbs.add_parser("mounts", aliases=["m", "mount"], help="print the mount commands")
    mounts.add_argument("target")
    mounts.add_argument("key")
    mounts.set_defaults(run=_mounts)
    commit = verbs.add_parser("commit", help="commit the active snapshot KEY as NAME")
    commit.add_argument("name")
    commit.add_argument("key")
    commit.set_defaults(run=_commit)
    _add_remaining(verbs)


def _add_create(verbs: argparse._SubParsersAction, verb: str, what: str, run: Verb) -> None:  # type: ignore[type-arg]
    parser = verbs.add_parser(verb, help=f"make {what}")
    parser.add_argument("key")
    parser.add_argument("parent", nargs="?", default="")
    parser.add_argument("-t", "--target", default="", help="print the mount commands for it")
    parser.add_argument("--mounts", action="store_true", help="print the mounts as JSON")
    parser.set_defaults(run=run)


def _add_remaining(verbs: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    rm = verbs.add_parser("rm", aliases=["remove", "delete", "del"], help="remove snapshots")
    rm.add_argument("keys", nargs="+")
    rm.set_defaults(run=_rm)
    usage = verbs.add_parser("usage", help="disk used by snapshots' own layers")
    usage.add_argument("keys", nargs="*")
    usage.add_argument("-b", action="store_true", help="sizes in bytes")
    usage.set_defaults(run=_usage)
    verbs.add_parser("tree", help="snapshots as a tree of parents").set_defaults(run=_tree)
    info = verbs.add_parser("info", help="one snapshot's info as JSON")
    info.add_argument("key")
    info.set_defaults(run=_info)
    label = verbs.add_parser("label", help="set (k=v) or remove (k=) labels")
    label.add_argument("key")
    label.add_argument("labels", nargs="*")
    label.set_defaults(run=_label)


def _table(rows: Iterable[Sequence[str]]) -> str:
    """Columns padded to their widest cell plus one space, as ctr's tabwriter prints them."""
    rows = list(rows)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = (
        " ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows
    )
    return "\n".join(line.rstrip() for line in lines)


def human_size(size: int) -> str:
    """``size`` bytes as ctr prints them (``4.0 KiB``)."""
    value, unit = float(size), 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value, unit = value / 1024, unit + 1
    return f"{value:.1f} {_UNITS[unit]}"


def _mount_lines(target: str, mounts: Sequence[Mount]) -> str:
    """``mount`` command lines, as ``ctr snapshots mounts`` prints them."""
    return "\n".join(
        f"mount -t {m.type} {m.source} {_under(target, m.target)} -o {','.join(m.options)}"
        for m in mounts
    )


def _under(target: str, relative: str) -> str:
    return os.path.normpath(os.path.join(target, relative.lstrip("/")))


def _print_mounts(args: argparse.Namespace, mounts: Sequence[Mount]) -> None:
    if args.target:
        print(_mount_lines(args.target, mounts))
    if args.mounts:
        print(json.dumps([_mount_json(m) for m in mounts], indent=4))


def _mount_json(mount: Mount) -> dict[str, object]:
    found: dict[str, object] = {"Type": mount.type, "Source": mount.source}
    if mount.target:
        found["Target"] = mount.target
    found["Options"] = list(mount.options)
    return found


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _ls(snapshots: SnapshotterProxy, ns: str, args: argparse.Namespace) -> None:
    rows = [("KEY", "PARENT", "KIND")]
    rows += [(i.name, i.parent, i.kind.value) async for i in snapshots.walk(ns, args.filters)]
    print(_table(rows))


async def _prepare(snapshots: SnapshotterProxy, ns: str, args: argparse.Namespace) -> None:
    labels = {GC_ROOT: _now()}
    _print_mounts(args, await snapshots.prepare(ns, args.key, args.parent, labels))


async def _view(snapshots: SnapshotterProxy, ns: str, args: argparse.Namespace) -> None:
    _print_mounts(args, await snapshots.view(ns, args.key, args.parent))


async def _mounts(snapshots: SnapshotterProxy, ns: str, args: argparse.Namespace) -> None:
    print(_mount_lines(args.target, await snapshots.mounts(ns, args.key)))


async def _commit(snapshots: SnapshotterProxy, ns: str, args: argparse.Namespace) -> None:
    await snapshots.commit(ns, args.name, args.key, {GC_ROOT: _now()})


async def _rm(snapshots: SnapshotterProxy, ns: str, args: argparse.Namespace) -> None:
    for key in args.keys:
        await snapshots.remove(ns, key)
        print(key)


async def _usage(snapshots: SnapshotterProxy, ns: str, args: argparse.Namespace) -> None:
    keys = args.keys or [info.name async for info in snapshots.walk(ns)]
    rows = [("KEY", "SIZE", "INODES")]
    for key in keys:
        used: Usage = await snapshots.usage(ns, key)
        rows.append((key, str(used.size) if args.b else human_size(used.size), str(used.inodes)))
    print(_table(rows))


async def _tree(snapshots: SnapshotterProxy, ns: str, _: argparse.Namespace) -> None:
    infos = [info async for info in snapshots.walk(ns)]
    names = {info.name for info in infos}
    children: dict[str, list[str]] = {}
    for info in infos:
        children.setdefault(info.parent if info.parent in names else "", []).append(info.name)
    lines: list[str] = []

    def show(name: str, level: int) -> None:
        prefix = "  " * level + ("\\_" if level else "")
        lines.append(f"{prefix} {name}")
        for child in children.get(name, []):
            show(child, level + 1)

    for root in children.get("", []):
        show(root, 0)
    if lines:
        print("\n".join(lines))


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def info_json(info: Info) -> str:
    """``info`` as ``ctr snapshots info`` prints it (Go's field names, four-space indent)."""
    found: dict[str, object] = {"Kind": info.kind.value, "Name": info.name}
    if info.parent:
        found["Parent"] = info.parent
    if info.labels:
        found["Labels"] = dict(info.labels)
    found["Created"] = _time(info.created_at)
    found["Updated"] = _time(info.updated_at)
    return json.dumps(found, indent=4)


async def _info(snapshots: SnapshotterProxy, ns: str, args: argparse.Namespace) -> None:
    print(info_json(await snapshots.stat(ns, args.key)))


async def _label(snapshots: SnapshotterProxy, ns: str, args: argparse.Namespace) -> None:
    updates = label_pairs(args.labels)
    if updates:
        paths = [f"labels.{key}" for key in updates]
        request = Info(
            name=args.key,
            kind=(await snapshots.stat(ns, args.key)).kind,
            labels={k: v for k, v in updates.items() if v},
        )
        info = await snapshots.update(ns, request, paths)
    else:
        info = await snapshots.stat(ns, args.key)
    print(",".join(f"{k}={v}" for k, v in sorted(info.labels.items())))


async def run_snapshot(bus: Bus, args: argparse.Namespace) -> None:
    """Run one ``snapshot`` verb."""
    snapshots = SnapshotterProxy(bus, args.snapshotter, node=args.node)
    run: Verb = args.run
    await run(snapshots, args.namespace, args)
