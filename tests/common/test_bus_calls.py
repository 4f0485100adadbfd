"""Unary calls over a real nats-server: round trip, errors, deadlines, no responders, garbage."""

import asyncio

import pytest

from flotilla.common import errdefs, headers
from flotilla.common.bus import Bus, ServiceHost

from .echo_service import ECHO, LOCAL, MEET, RAISE, SLEEP, Echo, Reply

pytestmark = pytest.mark.usefixtures("echo")


async def test_round_trip_carries_namespace_in_a_header(bus: Bus) -> None:
    reply = await bus.call(ECHO, Echo(text="hi"), namespace="k8s.io")
    assert reply == Reply(text="hi@k8s.io")


async def test_missing_namespace_is_invalid_argument(bus: Bus) -> None:
    with pytest.raises(errdefs.InvalidArgument, match="namespace is required"):
        await bus.call(ECHO, Echo(text="hi"))


async def test_node_local_method_is_addressed_by_node(bus: Bus) -> None:
    assert (await bus.call(LOCAL, Echo(text="x"), namespace="n")).text == "x@n"
    with pytest.raises(errdefs.Unavailable):
        await bus.call(LOCAL, Echo(text="x"), namespace="n", node="elsewhere")


@pytest.mark.parametrize("name", sorted(errdefs.KINDS))
async def test_every_error_class_survives_the_trip(bus: Bus, name: str) -> None:
    with pytest.raises(errdefs.ErrdefsError) as caught:
        await bus.call(RAISE, Echo(text=name), namespace="n")
    assert type(caught.value) is errdefs.KINDS[name].cls
    assert str(caught.value) == f"{name} raised on purpose"


async def test_foreign_exception_is_internal_without_its_repr(bus: Bus) -> None:
    with pytest.raises(errdefs.Internal) as caught:
        await bus.call(RAISE, Echo(text="foreign"), namespace="n")
    assert "shadow" not in str(caught.value)
    assert "RuntimeError" in str(caught.value)


async def test_caller_deadline_expires_as_deadline_exceeded(bus: Bus) -> None:
    with pytest.raises(errdefs.DeadlineExceeded, match=r"no reply within 0\.3s"):
        await bus.call(SLEEP, Echo(delay=5), namespace="n", timeout=0.3)


async def test_server_stops_work_at_the_callers_deadline(bus: Bus, server_bus: Bus) -> None:
    # Ask with a raw request so we can read the server's own answer after the deadline.
    hdrs = {headers.TIMEOUT_MS: "200", headers.NAMESPACE: "n"}
    from flotilla.common.bus.methods import encode

    msg = await bus.nc.request(SLEEP.subject(), encode(Echo(delay=5)), timeout=3, headers=hdrs)
    assert isinstance(headers.error_from(msg.headers), errdefs.DeadlineExceeded)


async def test_no_responders_is_unavailable(bus: Bus) -> None:
    from flotilla.common.bus import Unary

    nobody = Unary("nobody", "home", Echo, Reply)
    with pytest.raises(errdefs.Unavailable, match="no service answers"):
        await bus.call(nobody, Echo(), namespace="n", timeout=2)


@pytest.mark.parametrize(
    "garbage", [b"\xff\xfe\x00garbage", b"", b"\x92\x01\x02", b"\xde\xad\xbe\xef" * 1000]
)
async def test_garbage_gets_invalid_argument_and_service_stays_up(bus: Bus, garbage: bytes) -> None:
    msg = await bus.nc.request(ECHO.subject(), garbage, timeout=2, headers={headers.NAMESPACE: "n"})
    error = headers.error_from(msg.headers)
    assert isinstance(error, errdefs.InvalidArgument)
    assert "malformed echo.echo request" in str(error)
    assert (await bus.call(ECHO, Echo(text="still"), namespace="n")).text == "still@n"


async def test_wrong_field_type_names_the_field(bus: Bus) -> None:
    from flotilla.common.bus.methods import encode

    msg = await bus.nc.request(
        ECHO.subject(), encode({"text": 42}), timeout=2, headers={headers.NAMESPACE: "n"}
    )
    error = headers.error_from(msg.headers)
    assert isinstance(error, errdefs.InvalidArgument)
    assert "$.text" in str(error)


async def test_requests_are_served_concurrently(bus: Bus) -> None:
    # Each handler waits until all 20 are inside at once: served one at a time, they deadlock.
    calls = (bus.call(MEET, Echo(count=20), namespace="n", timeout=5) for _ in range(20))
    assert len(await asyncio.gather(*calls)) == 20


async def test_stop_lets_in_flight_requests_finish(bus: Bus, echo: ServiceHost) -> None:
    call = asyncio.create_task(bus.call(SLEEP, Echo(delay=0.5, text="done"), namespace="n"))
    await asyncio.sleep(0.1)
    await echo.stop(grace=5)
    assert (await call).text == "done"
    with pytest.raises(errdefs.Unavailable):
        await bus.call(ECHO, Echo(), namespace="n", timeout=1)
