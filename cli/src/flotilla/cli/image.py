"""``flotilla image``: containerd's ``ctr images`` over a node's images service.

Pulls, pushes, imports and exports run on the node's images service (the bytes go to and from
that node's content store and disk); listing, tagging, labelling and removing work on the
cluster's image records, whose deletes schedule the collector.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flotilla.cli.labels import label_pairs
from flotilla.cli.snapshot import human_size
from flotilla.common import errdefs
from flotilla.common.bus import Bus
from flotilla.common.config import Config
from flotilla.content.helpers import read_blob
from flotilla.content.proxy import ContentProxy
from flotilla.images import api, oci, platforms
from flotilla.images.config import ImagesConfig
from flotilla.images.holders import open_metadata
from flotilla.images.proxy import ImagesProxy
from flotilla.images.pull.plan import select_manifests
from flotilla.images.pull.progress import BlobProgress
from flotilla.metadata import Image, Metadata

__all__ = ["add_image_commands", "run_image"]


@dataclass
class Node:
    """What the verbs act on: one namespace of one node, and the cluster's image records."""

    bus: Bus
    namespace: str
    node: str | None
    replicas: int = 1
    _metadata: Metadata | None = field(default=None, repr=False)

    @property
    def images(self) -> ImagesProxy:
        """The node's images service."""
        return ImagesProxy(self.bus)

    @property
    def content(self) -> ContentProxy:
        """The node's content store."""
        return ContentProxy(self.bus, node=self.node)

    async def records(self) -> Metadata:
        """The cluster's records, opened on first use (deletes schedule the collector)."""
        if self._metadata is None:
            self._metadata = await open_metadata(self.bus, replicas=self.replicas)
        return self._metadata


Verb = Callable[[Node, argparse.Namespace], Awaitable[None]]


def add_image_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``image pull|push|import|export|ls|tag|rm|label``."""
    image = commands.add_parser(
        "image", aliases=["images"], help="the node's images (as ctr images)"
    )
    image.add_argument("-n", "--namespace", default="default")
    image.add_argument("--node", help="whose images service and content (default: this node)")
    verbs = image.add_subparsers(dest="verb", required=True)
    _add_pull(verbs)
    _add_push(verbs)
    _add_import(verbs)
    _add_export(verbs)
    _add_records(verbs)


def _add_registry(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plain-http", action="store_true", help="the registry speaks HTTP")
    parser.add_argument("--skip-verify", action="store_true", help="trust any TLS certificate")
    parser.add_argument(
        "-u", "--user", default="", help="USER[:SECRET] (no SECRET: read from stdin)"
    )


def _add_platforms(parser: argparse.ArgumentParser, *, every: bool = True) -> None:
    parser.add_argument(
        "--platform", action="append", default=[], help="os/arch[/variant] (repeatable)"
    )
    if every:
        parser.add_argument("--all-platforms", action="store_true", help="every platform")


def _add_unpack(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--snapshotter", default="", help="unpack into (default: the node's)")
    parser.add_argument("--no-unpack", action="store_true", help="fetch only, do not unpack")


def _add_pull(verbs: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    pull = verbs.add_parser("pull", help="pull an image from a registry")
    pull.add_argument("ref")
    _add_platforms(pull)
    _add_registry(pull)
    _add_unpack(pull)
    pull.set_defaults(run=_pull)


def _add_push(verbs: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    push = verbs.add_parser("push", help="push an image to a registry")
    push.add_argument("name")
    push.add_argument("ref", nargs="?", default="", help="where to (default: NAME)")
    _add_platforms(push, every=False)
    _add_registry(push)
    push.add_argument("--chunk-size", type=int, default=0, help="upload in chunks of N bytes")
    push.set_defaults(run=_push)


def _add_import(verbs: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    imp = verbs.add_parser("import", help="import images from a tarball on the node")
    imp.add_argument("tarball", type=Path)
    imp.add_argument("--base-name", default="", help="names entries that carry only a tag")
    _add_platforms(imp)
    _add_unpack(imp)
    imp.set_defaults(run=_import)


def _add_export(verbs: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    export = verbs.add_parser("export", help="export images to a tarball on the node")
    export.add_argument("out", type=Path)
    export.add_argument("names", nargs="+")
    _add_platforms(export, every=False)
    export.add_argument(
        "--skip-manifest-json", action="store_true", help="no manifest.json for docker load"
    )
    export.set_defaults(run=_export)


def _add_records(verbs: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    ls = verbs.add_parser("ls", aliases=["list"], help="list images")
    ls.add_argument("filters", nargs="*")
    ls.add_argument("-q", "--quiet", action="store_true", help="names only")
    ls.set_defaults(run=_ls)
    tag = verbs.add_parser("tag", help="name SRC's target DST too")
    tag.add_argument("source")
    tag.add_argument("targets", nargs="+")
    tag.add_argument("--force", action="store_true", help="replace an existing DST")
    tag.set_defaults(run=_tag)
    rm = verbs.add_parser("rm", aliases=["remove", "delete", "del"], help="remove images")
    rm.add_argument("names", nargs="+")
    rm.add_argument("--sync", action="store_true", help="wait until the collector has run")
    rm.set_defaults(run=_rm)
    label = verbs.add_parser("label", help="set (k=v) or remove (k=) labels")
    label.add_argument("name")
    label.add_argument("labels", nargs="*")
    label.set_defaults(run=_label)


# Registries: credentials and progress.


def _read_secret() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("Password: ")
    return sys.stdin.readline().rstrip("\r\n")


async def _credentials(user: str) -> tuple[str, str]:
    """``USER:SECRET`` split; a missing secret is read from stdin (asked for on a terminal)."""
    if not user:
        return "", ""
    name, sep, secret = user.partition(":")
    if not sep:
        secret = await asyncio.to_thread(_read_secret)
    return name, secret


def _short(digest: str) -> str:
    return digest.partition(":")[2][:12] or digest


def _printer() -> Callable[[BlobProgress], None]:
    """Prints a line each time a blob changes state (byte counts alone are not news)."""
    states: dict[str, str] = {}

    def show(report: BlobProgress) -> None:
        if states.get(report.digest) == report.state:
            return
        states[report.digest] = report.state
        line = f"{_short(report.digest)} {report.state} {report.offset}/{report.total}"
        print(line, flush=True)

    return show


async def _pull(node: Node, args: argparse.Namespace) -> None:
    username, secret = await _credentials(args.user)
    request = api.PullRequest(
        reference=args.ref,
        platforms=tuple(args.platform),
        all_platforms=args.all_platforms,
        unpack=not args.no_unpack,
        snapshotter=args.snapshotter,
        plain_http=args.plain_http,
        skip_verify=args.skip_verify,
        username=username,
        secret=secret,
    )
    pulled = await node.images.pull(node.namespace, request, node=node.node, progress=_printer())
    print(f"pulled {pulled.name} {pulled.target.digest}")


async def _push(node: Node, args: argparse.Namespace) -> None:
    username, secret = await _credentials(args.user)
    request = api.PushRequest(
        name=args.name,
        reference=args.ref,
        platforms=tuple(args.platform),
        plain_http=args.plain_http,
        skip_verify=args.skip_verify,
        username=username,
        secret=secret,
        chunk_size=args.chunk_size,
    )
    pushed = await node.images.push(node.namespace, request, node=node.node, progress=_printer())
    print(f"pushed {pushed.reference} {pushed.target.digest}")


# Tarballs: the service reads and writes them on its node, which is this one.


async def _import(node: Node, args: argparse.Namespace) -> None:
    request = api.ImportRequest(
        path=str(args.tarball.resolve()),
        base_name=args.base_name,
        platforms=tuple(args.platform),
        all_platforms=args.all_platforms,
        unpack=not args.no_unpack,
        snapshotter=args.snapshotter,
    )
    result = await node.images.import_archive(node.namespace, request, node=node.node)
    for image in result.images:
        print(f"{image.name} {image.target.digest}")


async def _export(node: Node, args: argparse.Namespace) -> None:
    request = api.ExportRequest(
        path=str(args.out.resolve()),
        names=tuple(args.names),
        platforms=tuple(args.platform),
        docker_manifest=not args.skip_manifest_json,
    )
    await node.images.export_archive(node.namespace, request, node=node.node)


# Records.


def _table(rows: Iterable[Sequence[str]]) -> str:
    """Columns padded to their widest cell plus one space, as ctr's tabwriter prints them."""
    rows = list(rows)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = (" ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)


async def _size(node: Node, desc: oci.Descriptor) -> int:
    """The image's size for this node's platform, as containerd's ``Image.Size`` counts it."""
    data = await read_blob(node.content, node.namespace, desc.digest)
    if oci.is_index(desc.media_type):
        index = oci.decode_index(data, desc)
        best = select_manifests(index, desc, [platforms.only(platforms.default())])[0]
        return desc.size + await _size(node, best)
    manifest = oci.decode_manifest(data, desc)
    return desc.size + manifest.config.size + sum(layer.size for layer in manifest.layers)


async def _platforms(node: Node, desc: oci.Descriptor) -> set[str]:
    """Its platforms as containerd's ``images.Platforms``: an index's, else the config's."""
    data = await read_blob(node.content, node.namespace, desc.digest)
    if oci.is_index(desc.media_type):
        found: set[str] = set()
        for child in oci.decode_index(data, desc).manifests:
            if child.platform is None:
                found |= await _platforms(node, child)
            elif "unknown" not in (child.platform.os, child.platform.architecture):
                found.add(str(child.platform.spec()))
        return found
    manifest = oci.decode_manifest(data, desc)
    config_data = await read_blob(node.content, node.namespace, manifest.config.digest)
    config = oci.decode_config(config_data, manifest.config, len(manifest.layers))
    return {str(platforms.normalize(platforms.Platform(config.os, config.architecture)))}


async def _or_dash(found: Awaitable[str]) -> str:
    """What ctr prints when an image's blobs are missing or unreadable: ``-``."""
    try:
        return await found
    except errdefs.ErrdefsError:
        return "-"


async def _row(node: Node, image: Image) -> tuple[str, ...]:
    desc = oci.descriptor_of(image.target)

    async def size() -> str:
        return human_size(await _size(node, desc))

    async def specs() -> str:
        return ",".join(sorted(await _platforms(node, desc))) or "-"

    labels = ",".join(f"{k}={v}" for k, v in sorted(image.labels.items())) or "-"
    return (
        image.name,
        desc.media_type,
        desc.digest,
        await _or_dash(size()),
        await _or_dash(specs()),
        labels,
    )


async def _ls(node: Node, args: argparse.Namespace) -> None:
    records = await node.records()
    found = [image async for image in records.images.list(node.namespace, args.filters)]
    found.sort(key=lambda image: image.name)
    if args.quiet:
        for image in found:
            print(image.name)
        return
    rows: list[tuple[str, ...]] = [("REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS")]
    rows += [await _row(node, image) for image in found]
    print(_table(rows))


async def _tag(node: Node, args: argparse.Namespace) -> None:
    records = await node.records()
    source = await records.images.get(node.namespace, args.source)
    for target in args.targets:
        image = Image(name=target, target=source.target, labels=source.labels)
        try:
            await records.images.create(node.namespace, image)
        except errdefs.AlreadyExists:
            if not args.force:
                raise
            # One write: the name never stops naming an image, as a delete then create would.
            await records.images.update(node.namespace, image, ["target", "labels"])
        print(target)


async def _rm(node: Node, args: argparse.Namespace) -> None:
    records = await node.records()
    last = len(args.names) - 1
    for i, name in enumerate(args.names):
        # ctr waits for the collector once, after the last delete.
        await records.images.delete(node.namespace, name, sync=args.sync and i == last)
        print(name)


async def _label(node: Node, args: argparse.Namespace) -> None:
    records = await node.records()
    updates = label_pairs(args.labels)
    image = await records.images.get(node.namespace, args.name)
    if updates:
        wanted = {k: v for k, v in updates.items() if v}
        request = Image(name=args.name, target=image.target, labels=wanted)
        paths = [f"labels.{key}" for key in updates]
        image = await records.images.update(node.namespace, request, paths)
    print(",".join(f"{k}={v}" for k, v in sorted(image.labels.items())))


async def run_image(bus: Bus, config: Config, args: argparse.Namespace) -> None:
    """Run one ``image`` verb."""
    replicas = config.section("images", ImagesConfig).replicas
    node = Node(bus, args.namespace, args.node, replicas)
    run: Verb = args.run
    await run(node, args)
