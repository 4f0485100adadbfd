"""ADR-32 discovery: $SRV.PING, INFO and STATS answered in nats.micro's shapes."""

import json

import pytest

from flotilla.common.bus import Bus, ServiceHost

from .echo_service import ECHO, Echo


@pytest.mark.parametrize("subject", ["$SRV.PING", "$SRV.PING.flotilla-echo"])
async def test_ping(bus: Bus, echo: ServiceHost, subject: str) -> None:
    reply = json.loads((await bus.nc.request(subject, b"", timeout=2)).data)
    assert reply["type"] == "io.nats.micro.v1.ping_response"
    assert reply["name"] == "flotilla-echo"
    assert reply["version"] == "1.2.3"
    assert reply["metadata"]["node"] == "test-node"


async def test_info_lists_endpoints_with_queue_group(bus: Bus, echo: ServiceHost) -> None:
    reply = json.loads((await bus.nc.request("$SRV.INFO.flotilla-echo", b"", timeout=2)).data)
    subjects = {e["subject"]: e["queue_group"] for e in reply["endpoints"]}
    assert subjects["flotilla.v1.echo.echo"] == "q"
    assert "flotilla.v1.node.test-node.echo.metrics" in subjects


async def test_stats_count_requests_and_errors(bus: Bus, echo: ServiceHost) -> None:
    await bus.call(ECHO, Echo(text="a"), namespace="n")
    with pytest.raises(Exception):  # noqa: B017, PT011 - any error: no namespace
        await bus.call(ECHO, Echo(text="a"))
    reply = json.loads(
        (await bus.nc.request(f"$SRV.STATS.flotilla-echo.{echo.discovery.id}", b"", timeout=2)).data
    )
    (stats,) = [e for e in reply["endpoints"] if e["name"] == "echo"]
    assert stats["num_requests"] == 2
    assert stats["num_errors"] == 1
    assert stats["last_error"].startswith("InvalidArgument")
