"""A NATS server restart mid-traffic: callers see Unavailable/DeadlineExceeded, then recover."""

import asyncio
from pathlib import Path

import pytest

from flotilla.common import errdefs
from flotilla.common.bus import connect
from flotilla.common.natsserver import EmbeddedNats

from .echo_service import DIGEST, ECHO, GENERATE, Echo, EchoHandlers, echo_host


async def test_traffic_survives_a_nats_server_restart(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "nats")
    await server.start()
    service = await connect([server.url], node="n1", name="svc", connect_timeout=5)
    caller = await connect([server.url], node="n1", name="caller", connect_timeout=5)
    outcomes: list[str] = []
    stop = asyncio.Event()

    async def traffic() -> None:
        while not stop.is_set():
            try:
                await caller.call(ECHO, Echo(text="x"), namespace="n", timeout=0.5)
                outcomes.append("ok")
            except (errdefs.Unavailable, errdefs.DeadlineExceeded) as err:
                outcomes.append(type(err).__name__)
                await asyncio.sleep(0.05)

    try:
        async with echo_host(service, EchoHandlers()):
            runner = asyncio.create_task(traffic())
            await asyncio.sleep(0.5)
            before = outcomes.count("ok")
            await server.stop()
            await asyncio.sleep(1.0)
            await server.start()  # same port, same JetStream dir
            async with asyncio.timeout(20):
                while outcomes[-1:] != ["ok"] or outcomes.count("ok") < before + 20:
                    await asyncio.sleep(0.1)
            stop.set()
            await runner
    finally:
        await caller.close()
        await service.close()
        await server.stop()
    assert before > 0
    assert set(outcomes) <= {"ok", "Unavailable", "DeadlineExceeded"}
    assert len(set(outcomes)) > 1, "the outage was never observed"


async def test_a_lost_connection_ends_open_streams_at_once_and_new_ones_work(
    tmp_path: Path,
) -> None:
    server = EmbeddedNats(tmp_path / "nats")
    await server.start()
    service = await connect([server.url], node="n1", name="svc", connect_timeout=5)
    caller = await connect([server.url], node="n1", name="caller", connect_timeout=5)
    try:
        async with echo_host(service, EchoHandlers()):
            download = caller.download(GENERATE, Echo(count=10_000, chunk=64 * 1024))
            upload = caller.open_upload(DIGEST, Echo())
            async with download as chunks, upload as sending:
                await anext(aiter(chunks))
                await sending.send(b"x" * 1024)
                await server.stop()
                async with asyncio.timeout(5):  # not the 30 s idle timeout
                    with pytest.raises(errdefs.Unavailable, match="connection lost"):
                        async for _ in chunks:
                            pass
                    with pytest.raises(errdefs.Unavailable, match="connection lost"):
                        for _ in range(100):
                            await sending.send(b"x" * 1024)
            await server.start()
            async with asyncio.timeout(20):
                while True:
                    try:
                        await caller.call(ECHO, Echo(text="back"), namespace="n", timeout=1)
                        break
                    except (errdefs.Unavailable, errdefs.DeadlineExceeded):
                        await asyncio.sleep(0.1)
            async with caller.download(GENERATE, Echo(count=64, chunk=64 * 1024)) as chunks:
                assert len([chunk async for chunk in chunks]) == 64
            assert caller.budget.available == caller.budget.total
    finally:
        await caller.close()
        await service.close()
        await server.stop()
