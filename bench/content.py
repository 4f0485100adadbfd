"""Content ingest and read-back: a blob through the bus vs ``ctr content ingest``/``get``.

Both sides stream the same incompressible file from disk into a store that hashes, verifies and
commits it, and read it back whole. Each ingest starts cold: the blob is deleted from both
stores first. Ours is measured twice: as a caller on the service's node (requests over the bus,
bytes straight into the ingest's file) and as a caller elsewhere (every byte over NATS).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from bench.harness import BenchContext, Result, abab

from flotilla.common import digests, errdefs
from flotilla.content.proxy import ContentProxy
from flotilla.testkit import Containerd

MB = 1_000_000
MIB = 1 << 20
NAMESPACE = "bench"
_READ = 4 * MIB  # file reads; the stream sends them as max_payload-sized chunks


def _make_blob(path: Path, size: int) -> str:
    hasher = digests.hasher("sha256")
    with path.open("wb") as out:
        for _ in range(size // (8 * MIB)):
            block = os.urandom(8 * MIB)
            hasher.update(block)
            out.write(block)
    return f"sha256:{hasher.hexdigest()}"


async def _ctr(ctd: Containerd, *args: str, stdin: Path | None = None) -> None:
    command = ["ctr", "--address", str(ctd.address), "-n", NAMESPACE, *args]
    with (stdin or Path(os.devnull)).open("rb") as source:
        process = await asyncio.create_subprocess_exec(
            *command, stdin=source, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {err.decode().strip()}")


def _mb_per_s(size: int, action: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[float]]:
    async def measure() -> float:
        start = time.perf_counter()
        await action()
        return size / MB / (time.perf_counter() - start)

    return measure


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as source:
        while chunk := await asyncio.to_thread(source.read, _READ):
            yield chunk


async def _ingest_ours(proxy: ContentProxy, path: Path, size: int, digest: str) -> None:
    async with await proxy.writer(NAMESPACE, f"bench-{digest}", size, digest) as writer:
        await writer.copy_from(_file_chunks(path))
        await writer.commit(size, digest)


async def _read_ours(proxy: ContentProxy, digest: str) -> None:
    async with await proxy.reader_at(NAMESPACE, digest) as reader:
        async for _ in reader.chunks():
            pass


async def run(ctx: BenchContext) -> list[Result]:
    """Ingest (same node, over NATS) and read-back throughput, in MB/s."""
    size = (256 if ctx.quick else 1024) * MIB
    path = ctx.workdir / "blob.bin"
    digest = await asyncio.to_thread(_make_blob, path, size)
    ctd, node = await ctx.containerd(), await ctx.flotilla()
    callers = {
        "same node": ContentProxy(node.bus, node=node.node),
        "over NATS": ContentProxy(node.bus, node=node.node, same_node_files=False),
    }
    proxy = callers["same node"]

    async def reset() -> None:
        await _ctr(ctd, "content", "rm", digest)
        with contextlib.suppress(errdefs.NotFound):  # absent on the first round
            await proxy.delete(NAMESPACE, digest)

    def ingest_ours(store: ContentProxy) -> Callable[[], Awaitable[float]]:
        return _mb_per_s(size, lambda: _ingest_ours(store, path, size, digest))

    theirs = ("content", "ingest", "--expected-size", str(size), "--expected-digest", digest)
    ingest_theirs = _mb_per_s(size, lambda: _ctr(ctd, *theirs, f"bench-{digest}", stdin=path))
    label, rounds = f"{size // MIB} MiB", ctx.rounds(5)
    results = []
    for how, store in callers.items():
        base, ours = await abab(ingest_theirs, ingest_ours(store), rounds=rounds, reset=reset)
        name = f"content ingest {label}, {how}"
        results.append(Result(name, "MB/s", "containerd", base, ours, True))
    await reset()  # both stores hold the blob again for the reads
    await ingest_theirs()
    await ingest_ours(proxy)()
    base, ours = await abab(
        _mb_per_s(size, lambda: _ctr(ctd, "content", "get", digest)),
        _mb_per_s(size, lambda: _read_ours(proxy, digest)),
        rounds=rounds,
    )
    name = f"content read {label}, over NATS"
    results.append(Result(name, "MB/s", "containerd", base, ours, True))
    return results
