"""``flotilla content``: containerd's ``ctr content`` over a node's content service."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Final

from flotilla.cli.labels import label_pairs, relabelled
from flotilla.common.bus import Bus
from flotilla.content.proxy import ContentProxy
from flotilla.content.store import Info

__all__ = ["add_content_commands", "run_content"]

_READ: Final = 8 << 20


def add_content_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``content ls|info|get|ingest|rm|label``."""
    content = commands.add_parser("content", help="the node's content store (as ctr content)")
    content.add_argument("-n", "--namespace", default="default")
    content.add_argument("--node", help="whose content store (default: this node)")
    verbs = content.add_subparsers(dest="verb", required=True)
    verbs.add_parser("ls", help="list blobs").add_argument("filters", nargs="*")
    verbs.add_parser("info", help="one blob's info").add_argument("digest")
    verbs.add_parser("get", help="write a blob to stdout").add_argument("digest")
    ingest = verbs.add_parser("ingest", help="store stdin as a blob")
    ingest.add_argument("ref")
    ingest.add_argument("--expected-size", type=int, default=0)
    ingest.add_argument("--expected-digest", default="")
    verbs.add_parser("rm", help="remove blobs").add_argument("digests", nargs="+")
    label = verbs.add_parser("label", help="set (k=v) or remove (k=) labels")
    label.add_argument("digest")
    label.add_argument("labels", nargs="+")


def _line(info: Info) -> str:
    labels = ",".join(f"{k}={v}" for k, v in sorted(info.labels.items()))
    return f"{info.digest}\t{info.size}\t{info.created_at:%Y-%m-%dT%H:%M:%SZ}\t{labels}"


async def _ingest(store: ContentProxy, ns: str, args: argparse.Namespace) -> str:
    expected = args.expected_digest or None
    async with await store.writer(ns, args.ref, args.expected_size, expected) as writer:
        if writer.offset:
            await asyncio.to_thread(sys.stdin.buffer.read, writer.offset)  # resume
        await writer.copy_from(_stdin_chunks())
        return await writer.commit(args.expected_size, expected)


async def _stdin_chunks() -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(sys.stdin.buffer.read, _READ):
        yield chunk


async def _get(store: ContentProxy, ns: str, digest: str) -> None:
    async with await store.reader_at(ns, digest) as reader:
        async for chunk in reader.chunks():
            sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()


async def _label(store: ContentProxy, ns: str, digest: str, pairs: list[str]) -> Info:
    info = await store.info(ns, digest)
    updates = label_pairs(pairs)
    labels = relabelled(info.labels, updates)
    paths = [f"labels.{key}" for key in updates]
    return await store.update(ns, Info(digest=digest, labels=labels), paths)


async def run_content(bus: Bus, args: argparse.Namespace) -> None:
    """Run one ``content`` verb."""
    store, ns = ContentProxy(bus, node=args.node), args.namespace
    if args.verb == "ls":
        print("DIGEST\tSIZE\tCREATED\tLABELS")
        async for info in store.walk(ns, args.filters):
            print(_line(info))
    elif args.verb == "info":
        print(_line(await store.info(ns, args.digest)))
    elif args.verb == "get":
        await _get(store, ns, args.digest)
    elif args.verb == "ingest":
        print(await _ingest(store, ns, args))
    elif args.verb == "rm":
        for digest in args.digests:
            await store.delete(ns, digest)
            print(digest)
    else:
        print(_line(await _label(store, ns, args.digest, args.labels)))
