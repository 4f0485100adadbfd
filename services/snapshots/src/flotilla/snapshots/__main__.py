"""Composition root of the snapshots service (``python -m flotilla.snapshots``).

Adapters (the JetStream relay of the events, the node's content service over the bus), then
the core (the node's records in ``<root>/snapshots/metadata.db``, the ``overlayfs``
snapshotter where a probe mount works and ``native`` always, under
``<root>/snapshots/<name>``; the layer applier and comparer, whose temporary mount points and
files go in ``<root>/snapshots/diff``), then the endpoints. Everything with a lifetime goes on
``stack``.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from pathlib import Path

from flotilla.common import errdefs, runtime
from flotilla.common.bus import Bus, ServiceHost
from flotilla.common.config import Config
from flotilla.common.events.jetstream import JetStreamSink, ensure_events_stream
from flotilla.common.events.relay import Relay
from flotilla.common.mounts import unmount
from flotilla.content.proxy import ContentProxy
from flotilla.snapshots import api, native, overlay
from flotilla.snapshots.config import SnapshotsConfig
from flotilla.snapshots.diff.apply import LayerApplier
from flotilla.snapshots.diff.compare import LayerComparer
from flotilla.snapshots.layout import Layout
from flotilla.snapshots.local import LocalSnapshotter, NodeSnapshots
from flotilla.snapshots.native import NativeLayout
from flotilla.snapshots.overlay import OverlayLayout
from flotilla.snapshots.service import SnapshotsService
from flotilla.snapshots.snapshotter import Snapshotter

__all__ = ["build", "main"]

log = logging.getLogger(__name__)

KNOWN = (overlay.NAME, native.NAME)
DESCRIPTION = "containerd snapshotters: overlayfs and a native copy fallback, and the diff service"


async def _layouts(root: Path) -> list[Layout]:
    """Native always; overlayfs first, when a real overlay mount works under its root."""
    try:
        await asyncio.to_thread(_probe, root / overlay.NAME)
    except errdefs.Unavailable as error:
        log.warning("overlayfs snapshotter not loaded", extra={"error": str(error)})
        return [NativeLayout()]
    return [OverlayLayout(), NativeLayout()]


def _probe(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    overlay.probe(root)


async def _snapshotters(
    node: NodeSnapshots, root: Path, stack: AsyncExitStack
) -> dict[str, Snapshotter]:
    loaded: dict[str, Snapshotter] = {}
    for layout in await _layouts(root):
        snapshotter = await LocalSnapshotter.open(node, root / layout.name, layout)
        stack.push_async_callback(snapshotter.close)
        loaded[layout.name] = snapshotter
    return loaded


def _clean_work_dir(work_dir: Path) -> None:
    """Remove what a killed apply or diff left in ``work_dir``: mount points, layer files.

    Each entry is unmounted first (detached, so a busy mount goes too), and a directory is
    only ``rmdir``-ed: whatever it still holds is never deleted through a mount.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    for entry in work_dir.iterdir():
        try:
            if entry.is_dir() and not entry.is_symlink():
                unmount(entry, lazy=True)
                entry.rmdir()
            else:
                entry.unlink()
        except (OSError, errdefs.ErrdefsError) as error:
            log.warning("diff leftover kept", extra={"path": str(entry), "error": str(error)})


def _settings(config: Config) -> SnapshotsConfig:
    settings = config.section("snapshots", SnapshotsConfig)
    if settings.default not in KNOWN:
        raise errdefs.InvalidArgument(
            f"config: [snapshots] default: snapshotter {settings.default} is not one of"
            f" {', '.join(KNOWN)}"
        )
    return settings


def _default(settings: SnapshotsConfig, loaded: dict[str, Snapshotter]) -> str:
    """The configured default, or native where overlayfs did not load."""
    if settings.default in loaded:
        return settings.default
    fallback = next(iter(loaded))
    log.warning(
        "default snapshotter not loaded",
        extra={"configured": settings.default, "default": fallback},
    )
    return fallback


async def build(config: Config, bus: Bus, stack: AsyncExitStack) -> ServiceHost:
    """Wire the snapshots service for ``config`` on ``bus``."""
    settings = _settings(config)
    await ensure_events_stream(bus.nc)
    root = config.root_dir / "snapshots"
    await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
    relay = Relay(root / "metadata.db", JetStreamSink(bus.nc))
    await stack.enter_async_context(relay)
    node = NodeSnapshots(root / "metadata.db", relay)
    await node.open()
    stack.push_async_callback(node.close)
    loaded = await _snapshotters(node, root, stack)
    work_dir = root / "diff"
    await asyncio.to_thread(_clean_work_dir, work_dir)
    content = ContentProxy(bus)  # same node: layers are read by path, never over the bus
    applier = LayerApplier(
        content.local_path,
        ingest_path=content.ingest_path,
        follow_idle=settings.follow_idle,
        max_size=settings.max_layer_size,
        work_dir=work_dir,
    )
    stack.callback(applier.close)
    comparer = LayerComparer(content, work_dir)
    host = runtime.new_host(config, bus, api.API, DESCRIPTION)
    SnapshotsService(loaded, _default(settings, loaded), applier, comparer).register(host)
    return host


def main() -> None:
    """Run the snapshots service until SIGTERM."""
    runtime.main("snapshots", build)


if __name__ == "__main__":
    main()
