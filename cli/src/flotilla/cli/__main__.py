"""``flotilla``: ``up`` runs one node's stack; ``status``, ``metrics``, ``content`` use it."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from flotilla.cli.content import add_content_commands, run_content
from flotilla.cli.image import add_image_commands, run_image
from flotilla.cli.metrics_http import collect_metrics
from flotilla.cli.snapshot import add_snapshot_commands, run_snapshot
from flotilla.cli.status import format_status, status_rows
from flotilla.cli.supervisor import SERVICES, Supervisor
from flotilla.common import config as config_mod
from flotilla.common import errdefs, runtime
from flotilla.common.bus import Bus, connect
from flotilla.common.telemetry.logs import configure_logging

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flotilla", description=__doc__)
    parser.add_argument("--config", type=Path, help="TOML config file (default: $FLOTILLA_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="run the whole stack on this node in the foreground")
    commands.add_parser("status", help="list the services on the bus and their health")
    commands.add_parser("metrics", help="print this node's metrics in Prometheus text format")
    add_content_commands(commands)
    add_snapshot_commands(commands)
    add_image_commands(commands)
    return parser


async def _bus(config: config_mod.Config) -> Bus:
    urls = runtime.nats_urls(config)
    return await connect(urls, node=config.node, name="flotilla-cli", connect_timeout=3)


async def _up(config: config_mod.Config, args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    supervisor = Supervisor(
        config, say=lambda line: print(line, flush=True), config_path=args.config
    )
    await supervisor.run(stop)


async def _status(config: config_mod.Config, _: argparse.Namespace) -> None:
    bus = await _bus(config)
    try:
        print(format_status(await status_rows(bus, SERVICES)))
    finally:
        await bus.close()


async def _metrics(config: config_mod.Config, _: argparse.Namespace) -> None:
    bus = await _bus(config)
    try:
        print(await collect_metrics(bus), end="")
    finally:
        await bus.close()


async def _content(config: config_mod.Config, args: argparse.Namespace) -> None:
    bus = await _bus(config)
    try:
        await run_content(bus, args)
    finally:
        await bus.close()


async def _snapshot(config: config_mod.Config, args: argparse.Namespace) -> None:
    bus = await _bus(config)
    try:
        await run_snapshot(bus, args)
    finally:
        await bus.close()


async def _image(config: config_mod.Config, args: argparse.Namespace) -> None:
    bus = await _bus(config)
    try:
        await run_image(bus, config, args)
    finally:
        await bus.close()


def main(argv: list[str] | None = None) -> None:
    """Run the ``flotilla`` command; errors print as ``flotilla: <Class>: <message>``, exit 1."""
    import uvloop

    args = _parser().parse_args(argv)
    commands = {"up": _up, "status": _status, "metrics": _metrics, "content": _content}
    commands.update(snapshot=_snapshot, snapshots=_snapshot)
    commands.update(image=_image, images=_image)
    try:
        config = config_mod.load(args.config)
        configure_logging("flotilla-cli", config.node, config.log_level)
        uvloop.run(commands[args.command](config, args))
    except errdefs.ErrdefsError as err:
        print(f"flotilla: {type(err).__name__}: {err}", file=sys.stderr)
        raise SystemExit(1) from err


if __name__ == "__main__":
    main()
