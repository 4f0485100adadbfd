"""Pull and import: an image from a registry (or a tarball) into overlayfs snapshots, vs containerd.

Each case runs both sides on the same image, one after the other, every run cold:

- *pull busybox* (1 layer) and *pull large* (8 layers, 200 MiB; 16 MiB with ``--quick``) from
  the run's local registry (plain HTTP): ``ctr images pull --plain-http`` (containerd 1.6's
  ``ctr`` fetches every blob into containerd, then unpacks the layers into overlayfs one after
  another) vs ``ImagesProxy.pull`` (the node's images service: layers downloaded in parallel,
  each unpacked into overlayfs while it downloads).
- *fetch large*: the same without the unpack, to tell download from unpack: ``ctr content
  fetch --plain-http`` vs ``ImagesProxy.pull`` with ``unpack=False``.
- *import large*: the image as an OCI tarball on disk: ``ctr images import`` (unpacks by
  default) vs ``ImagesProxy.import_archive``.

Each tool runs with its defaults otherwise (``ctr`` downloads every layer at once, Flotilla's
images service three at a time).

Every run starts from nothing: it goes into a namespace of its own. containerd's content
store and Flotilla's both keep blobs per namespace (the private containerd runs with
``content_sharing_policy = "isolated"``, Flotilla's store is isolated by design), and
snapshots are per namespace on both, so a new namespace fetches and unpacks everything
again. Every pull checks this: the registry process must have read at least all the image's
blob bytes during it (``rchar`` of its ``/proc/<pid>/io``), or the benchmark fails. Before each
run, dirty pages are written back and the page cache is dropped (the registry's files, the
tarball, the stores), and ``ctr`` itself is read back in (its cold start is not the pull).
Nothing is deleted between runs: on ext4 without a journal (this machine's root) every new
file scans the inodes freed in the last 30 seconds, so each run would pay for the cleanup of
the one before.

After the measured rounds, one more cold pull of each image on each side is printed (not a
result) to show where the time goes: ``ctr``'s own fetch and unpack times, and the moments
Flotilla's progress reports arrived (manifest, config and first layer requested, first extract,
last layer downloaded and done, manifest stored, returned). A layer's "done" is reported when
its blob is committed and when its unpack ends, but a second "done" within 0.1 s of the first
is dropped by the progress throttle, so the unpack may end up to 0.1 s after the mark.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bench.harness import FULL_LARGE_SIZE, QUICK_LARGE_SIZE, BenchContext, Measurement, Result, abab

from flotilla.images import api
from flotilla.images.proxy import ImagesProxy
from flotilla.images.pull.progress import BlobProgress, ProgressSink, State
from flotilla.testkit import BuiltImage, Containerd, LocalRegistry, export_oci_tar
from flotilla.testkit.layout import read_json

MIB = 1 << 20
SNAPSHOTTER = "overlayfs"
IMPORT_NAME = "bench.flotilla.io/large:import"
LAYER = "image.layer"  # in the test images' OCI layer media types
_namespaces = (f"bench-pull-{n}" for n in itertools.count())

Action = Callable[[str], Awaitable[object]]
"""One run of one side, into the namespace it is given."""


@dataclass(frozen=True)
class Case:
    """One case: what each side runs, and the registry bytes each run must read (0: none)."""

    name: str
    containerd: Action
    flotilla: Action
    fetched: int = 0
    rounds: int = 5


def drop_caches() -> None:
    """Write dirty pages back, then drop the page cache, dentries and inodes (blocking)."""
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def blob_bytes(image: BuiltImage) -> int:
    """The bytes of the image's manifest, config and layers: what a pull must download."""
    manifest = read_json(image.layout, image.descriptor)
    layers: list[int] = [layer["size"] for layer in manifest["layers"]]
    config: int = manifest["config"]["size"]
    return image.descriptor.size + config + sum(layers)


def read_bytes(pid: int) -> int:
    """``rchar`` of process ``pid``: every byte it read, from files and sockets alike."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == "rchar":
            return int(value)
    raise RuntimeError(f"/proc/{pid}/io has no rchar")


def _ctr_pull(ctd: Containerd, ref: str) -> Action:
    async def pull(namespace: str) -> None:
        args = ("images", "pull", "--plain-http", "--snapshotter", SNAPSHOTTER, ref)
        await ctd.ctr(*args, namespace=namespace)

    return pull


def _ctr_fetch(ctd: Containerd, ref: str) -> Action:
    async def fetch(namespace: str) -> None:
        await ctd.ctr("content", "fetch", "--plain-http", ref, namespace=namespace)

    return fetch


def _ctr_import(ctd: Containerd, tarball: Path) -> Action:
    async def import_(namespace: str) -> None:
        args = ("images", "import", "--snapshotter", SNAPSHOTTER, str(tarball))
        await ctd.ctr(*args, namespace=namespace)

    return import_


class Pull(Protocol):
    """A Flotilla pull into a namespace, its progress reported to ``progress`` if given."""

    async def __call__(self, namespace: str, progress: ProgressSink | None = None) -> None: ...


def _pull(images: ImagesProxy, ref: str, *, unpack: bool = True) -> Pull:
    request = api.PullRequest(
        reference=ref, plain_http=True, unpack=unpack, snapshotter=SNAPSHOTTER
    )

    async def pull(namespace: str, progress: ProgressSink | None = None) -> None:
        result = await images.pull(namespace, request, progress=progress)
        if unpack and len(result.chain_ids) != 1:
            raise RuntimeError(f"flotilla: {ref} pulled into {result.chain_ids} snapshots")

    return pull


def _import(images: ImagesProxy, tarball: Path) -> Action:
    request = api.ImportRequest(path=str(tarball), snapshotter=SNAPSHOTTER)

    async def import_(namespace: str) -> None:
        (imported,) = (await images.import_archive(namespace, request)).images
        if imported.name != IMPORT_NAME or len(imported.chain_ids) != 1:
            raise RuntimeError(f"flotilla: the import recorded {imported}")

    return import_


class Rounds:
    """Runs the cases' sides, each in a new namespace after a cache drop."""

    def __init__(self, ctx: BenchContext, ctd: Containerd, registry: LocalRegistry) -> None:
        self.ctx, self.ctd, self.registry = ctx, ctd, registry
        self.namespace = ""

    async def reset(self) -> None:
        """A new namespace, the page cache dropped, and ``ctr`` read back in."""
        self.namespace = next(_namespaces)
        await asyncio.to_thread(drop_caches)
        await self.ctd.ctr("version")

    def side(self, who: str, action: Action, fetched: int) -> Measurement:
        """One run of ``action`` in ms; fails if the registry served less than ``fetched``."""

        async def measure() -> float:
            before = read_bytes(self.registry.process.pid)
            start = time.perf_counter()
            await action(self.namespace)
            elapsed = (time.perf_counter() - start) * 1000.0
            served = read_bytes(self.registry.process.pid) - before
            if served < fetched:
                raise RuntimeError(
                    f"{who}: the registry served {served} bytes of {fetched} in namespace "
                    f"{self.namespace}: not a cold pull"
                )
            return elapsed

        return measure

    async def measure(self, case: Case) -> Result:
        """Both sides of ``case``, A B A B, one warm-up round discarded."""
        base, ours = await abab(
            self.side("containerd", case.containerd, case.fetched),
            self.side("flotilla", case.flotilla, case.fetched),
            rounds=self.ctx.rounds(case.rounds),
            reset=self.reset,
        )
        return Result(case.name, "ms", "containerd", base, ours, higher_is_better=False)


@dataclass
class Timeline:
    """When each progress report of one pull arrived, in ms since the pull started."""

    start: float = field(default_factory=time.perf_counter)
    seen: list[tuple[float, BlobProgress]] = field(default_factory=list)

    def record(self, report: BlobProgress) -> None:
        """A progress sink."""
        self.seen.append(((time.perf_counter() - self.start) * 1000.0, report))

    def first(self, state: State, kind: str = LAYER) -> float:
        """When a blob whose media type holds ``kind`` first reached ``state`` (NaN: never)."""
        return min(self._times(state, kind), default=float("nan"))

    def last(self, state: State, kind: str = LAYER) -> float:
        """When the last blob whose media type holds ``kind`` reached ``state`` (NaN: never)."""
        return max(self._times(state, kind), default=float("nan"))

    def _times(self, state: State, kind: str) -> list[float]:
        return [t for t, p in self.seen if p.state is state and kind in p.media_type]

    def downloaded(self) -> int:
        """Layers that were downloaded (not found in the store)."""
        return len(
            {p.digest for _, p in self.seen if p.state is State.VERIFYING}
            - {p.digest for _, p in self.seen if p.state is State.EXISTS}
        )


async def breakdown(rounds: Rounds, name: str, pull: Pull) -> str:
    """One more cold Flotilla pull, with progress: where its time went, as one line."""
    await rounds.reset()
    timeline = Timeline()
    await pull(rounds.namespace, timeline.record)
    total = (time.perf_counter() - timeline.start) * 1000.0
    marks = {
        "manifest request": timeline.first(State.DOWNLOADING, "manifest"),
        "config request": timeline.first(State.DOWNLOADING, "config"),
        "first layer request": timeline.first(State.DOWNLOADING),
        "first extract": timeline.first(State.EXTRACTING),
        "last layer downloaded": timeline.last(State.VERIFYING),
        "last layer done": timeline.last(State.DONE),
        "manifest stored": timeline.last(State.DONE, "manifest"),
        "returned": total,
    }
    text = ", ".join(f"{what} {ms:.0f}" for what, ms in marks.items())
    return f"{name}, flotilla, ms after the call ({timeline.downloaded()} layers fetched): {text}"


_CTR_FETCHED = re.compile(r"^elapsed: ([0-9.]+) s", re.MULTILINE)
_CTR_UNPACKED = re.compile(r"^done: ([0-9.]+)(ms|s|µs)\s*$", re.MULTILINE)
_GO_UNITS = {"s": 1000.0, "ms": 1.0, "µs": 0.001}


async def ctr_breakdown(rounds: Rounds, name: str, ref: str) -> str:
    """One more cold ``ctr images pull``: its own fetch and unpack times, as one line."""
    await rounds.reset()
    start = time.perf_counter()
    args = ("images", "pull", "--plain-http", "--snapshotter", SNAPSHOTTER, ref)
    out = await rounds.ctd.ctr(*args, namespace=rounds.namespace)
    total = (time.perf_counter() - start) * 1000.0
    fetched, unpacked = _CTR_FETCHED.findall(out), _CTR_UNPACKED.findall(out)
    fetch_ms = float(fetched[-1]) * 1000.0 if fetched else float("nan")
    unpack_ms = sum(float(value) * _GO_UNITS[unit] for value, unit in unpacked)
    return (
        f"{name}, containerd, ms: fetch {fetch_ms:.0f} (ctr's 'elapsed', 0.1 s steps), "
        f"then unpack {unpack_ms:.0f} (ctr's 'done'), returned {total:.0f}"
    )


async def run(ctx: BenchContext) -> list[Result]:
    """Cold pulls (busybox, large), fetch-only and tarball import of large: ms per run."""
    size = QUICK_LARGE_SIZE if ctx.quick else FULL_LARGE_SIZE
    published, ctd = await ctx.images(), await ctx.containerd()
    node, registry = await ctx.flotilla(), await ctx.registry()
    images = ImagesProxy(node.bus)
    busybox, large = published.images.busybox, published.images.large
    tarball = await export_oci_tar(large, ctx.workdir / "pull-import.tar", image_name=IMPORT_NAME)
    small_ref, large_ref = published.ref("busybox"), published.ref("large")
    label = f"large {size // MIB} MiB (8 layers)"
    pulls = {"pull busybox (1 layer)": small_ref, f"pull {label}": large_ref}
    cases = [
        Case(
            "pull busybox (1 layer), overlayfs, cold",
            _ctr_pull(ctd, small_ref),
            _pull(images, small_ref),
            blob_bytes(busybox),
            rounds=10,
        ),
        Case(
            f"pull {label}, overlayfs, cold",
            _ctr_pull(ctd, large_ref),
            _pull(images, large_ref),
            blob_bytes(large),
        ),
        Case(
            f"fetch {label}, no unpack, cold",
            _ctr_fetch(ctd, large_ref),
            _pull(images, large_ref, unpack=False),
            blob_bytes(large),
        ),
        Case(
            f"import {label} tarball, overlayfs, cold",
            _ctr_import(ctd, tarball),
            _import(images, tarball),
        ),
    ]
    rounds = Rounds(ctx, ctd, registry)
    results = [await rounds.measure(case) for case in cases]
    for name, ref in pulls.items():
        print(await ctr_breakdown(rounds, name, ref), file=sys.stderr, flush=True)
        print(await breakdown(rounds, name, _pull(images, ref)), file=sys.stderr, flush=True)
    return results
