"""The content service as a real process on real NATS: crashes, vanished callers, bad input."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flotilla.common import digests, errdefs, headers
from flotilla.common.bus import Bus, connect
from flotilla.common.events import Envelope
from flotilla.common.subjects import EVENTS_STREAM, topic_of
from flotilla.content import api
from flotilla.content.events import ContentCreate, ContentDelete
from flotilla.content.proxy import ContentProxy
from flotilla.testkit.services import ServiceProcess

_MAKER = concurrent.futures.ProcessPoolExecutor(1)
NODE = "it-node"
NS = "integration"
MIB = 1 << 20


@pytest.fixture
async def content(tmp_path: Path, nats_url: str) -> AsyncIterator[ServiceProcess]:
    env = {
        "FLOTILLA_ROOT": str(tmp_path / "root"),
        "FLOTILLA_STATE": str(tmp_path / "state"),
        "FLOTILLA_NATS__URLS": nats_url,
        "FLOTILLA_NODE_ID": NODE,
        "FLOTILLA_CONTENT__SESSION_LEASE": "1",
        "FLOTILLA_LOG_LEVEL": "warning",
    }
    service = ServiceProcess("content", env)
    yield service
    await service.kill()


@pytest.fixture
def proxy(bus: Bus) -> ContentProxy:
    """A caller on another node than the service's: every byte rides the bus."""
    return ContentProxy(bus, node=NODE, idle_timeout=3)


@pytest.fixture
async def neighbour(nats_url: str) -> AsyncIterator[ContentProxy]:
    """A caller on the service's node: bytes go straight into the ingest's file."""
    local = await connect([nats_url], node=NODE, name="neighbour", connect_timeout=5)
    yield ContentProxy(local, idle_timeout=3)
    await local.close()


@pytest.fixture(params=["over NATS", "same node"])
def caller(request: pytest.FixtureRequest, proxy: ContentProxy) -> ContentProxy:
    if request.param == "over NATS":
        return proxy
    neighbour: ContentProxy = request.getfixturevalue("neighbour")
    return neighbour


def _blob(size: int, seed: int) -> tuple[bytes, str]:
    data = random.Random(seed).randbytes(size)
    return data, digests.digest_of(data)


async def blob(size: int, seed: int) -> tuple[bytes, str]:
    """Random bytes of ``size`` and their digest, made in another process's time (48 MiB of
    ``randbytes`` holds the GIL for a quarter of a second, a thread would not free the loop)."""
    return await asyncio.get_running_loop().run_in_executor(_MAKER, _blob, size, seed)


async def test_kill_9_mid_write_then_resume(
    content: ServiceProcess, bus: Bus, caller: ContentProxy
) -> None:
    await content.start(bus)
    proxy = caller
    data, digest = await blob(48 * MIB, seed=1)
    writer = await proxy.writer(NS, "crash", len(data), digest)
    assert writer.same_node == proxy.same_node_files

    async def write_all() -> None:
        for start in range(0, len(data), MIB):
            await writer.write(data[start : start + MIB])

    task = asyncio.create_task(write_all())
    while writer.offset < 16 * MIB:
        await asyncio.sleep(0.005)
    await content.kill()
    with pytest.raises((errdefs.Unavailable, errdefs.DeadlineExceeded, errdefs.Canceled)):
        await task

    await content.start(bus)
    with pytest.raises(errdefs.NotFound):
        await proxy.info(NS, digest)  # nothing torn, nothing unverified, is visible
    status = await proxy.status(NS, "crash")
    assert 16 * MIB <= status.offset <= len(data)
    async with await proxy.writer(NS, "crash", len(data), digest) as resumed:
        assert resumed.offset == status.offset
        await resumed.write(memoryview(data)[resumed.offset :])  # type: ignore[arg-type]
        assert await resumed.commit(len(data), digest) == digest
    async with await proxy.reader_at(NS, digest) as reader:
        hasher = hashlib.sha256()  # chunk by chunk: 48 MiB joined and compared holds the loop
        async for chunk in reader.chunks():
            hasher.update(chunk)
    assert f"sha256:{hasher.hexdigest()}" == digest


async def test_a_vanished_writer_releases_its_ref(
    content: ServiceProcess, bus: Bus, nats_url: str
) -> None:
    await content.start(bus)
    data, digest = await blob(3 * MIB, seed=2)
    gone = await connect([nats_url], node="elsewhere", name="doomed", connect_timeout=5)
    doomed = ContentProxy(gone, node=NODE, idle_timeout=1)
    writer = await doomed.writer(NS, "vanish", len(data), digest)
    await writer.write(data[:MIB])
    await gone.nc.close()  # no goodbye: the connection just drops

    survivor = ContentProxy(bus, node=NODE, idle_timeout=3)
    with pytest.raises(errdefs.Unavailable, match="locked"):
        await survivor.writer(NS, "vanish", len(data), digest)
    async with asyncio.timeout(20):
        while True:
            try:
                resumed = await survivor.writer(NS, "vanish", len(data), digest)
                break
            except errdefs.Unavailable:
                await asyncio.sleep(0.2)
    async with resumed:
        assert resumed.offset == MIB
        await resumed.write(data[MIB:])
        assert await resumed.commit(len(data), digest) == digest


async def test_same_node_reader_opens_the_blob_from_disk(
    content: ServiceProcess, bus: Bus, proxy: ContentProxy
) -> None:
    await content.start(bus)
    data, digest = await blob(MIB + 7, seed=3)
    async with await proxy.writer(NS, "local", len(data), digest) as writer:
        await writer.write(data)
        await writer.commit(len(data), digest)
    path = await proxy.local_path(NS, digest)
    assert path.read_bytes() == data
    with pytest.raises(errdefs.NotFound):
        await proxy.local_path("another-namespace", digest)


@pytest.mark.parametrize(
    ("namespace", "error"),
    [("", errdefs.InvalidArgument), ("bad namespace!", errdefs.InvalidArgument)],
)
async def test_bad_namespaces_are_refused(
    content: ServiceProcess, bus: Bus, namespace: str, error: type[Exception]
) -> None:
    await content.start(bus)
    request = api.DigestRequest(digest="sha256:" + "0" * 64)
    with pytest.raises(error):
        await bus.call(api.INFO, request, namespace=namespace, node=NODE)


async def test_wrong_digests_and_garbage_get_clear_errors(
    content: ServiceProcess, bus: Bus, proxy: ContentProxy
) -> None:
    await content.start(bus)
    with pytest.raises(errdefs.InvalidArgument, match="sha256:xyz"):
        await proxy.info(NS, "sha256:xyz")
    with pytest.raises(errdefs.NotFound):
        await proxy.info(NS, "sha256:" + "0" * 64)
    msg = await bus.nc.request(
        api.INFO.subject(NODE), b"\xc1garbage", timeout=5, headers={headers.NAMESPACE: NS}
    )
    assert isinstance(headers.error_from(msg.headers), errdefs.InvalidArgument)
    data, digest = await blob(1000, seed=4)
    async with await proxy.writer(NS, "wrong", len(data)) as writer:
        await writer.write(data)
        with pytest.raises(errdefs.FailedPrecondition, match=digest):
            await writer.commit(len(data), "sha256:" + "1" * 64)
    assert (await proxy.status(NS, "wrong")).offset == len(data)  # nothing lost


async def test_false_same_node_reports_are_refused_and_lose_nothing(
    content: ServiceProcess, bus: Bus, neighbour: ContentProxy
) -> None:
    await content.start(bus)
    local_bus = neighbour.bus
    opened = await local_bus.call(api.WRITER_OPEN, api.WriterOpen(ref="liar"), namespace=NS)
    await asyncio.to_thread(Path(opened.path).write_bytes, b"0123456789")

    async def report(end: int) -> api.IngestStatus:
        request = api.Written(session=opened.session, end=end)
        return await local_bus.call(api.WRITTEN, request, namespace=NS)

    with pytest.raises(errdefs.FailedPrecondition, match=r"reports 11 bytes.*holds 10"):
        await report(11)
    assert (await report(6)).offset == 6
    with pytest.raises(errdefs.OutOfRange, match="before offset 6"):
        await report(5)
    with pytest.raises(errdefs.NotFound):  # another namespace's session: no such session
        await local_bus.call(
            api.WRITTEN, api.Written(session=opened.session, end=10), namespace="other"
        )
    assert (await report(10)).offset == 10


async def test_sigterm_stops_cleanly(content: ServiceProcess, bus: Bus) -> None:
    await content.start(bus)
    assert await content.stop() == 0


async def test_events_are_stored_in_jetstream(
    content: ServiceProcess, bus: Bus, proxy: ContentProxy
) -> None:
    await content.start(bus)
    data, digest = await blob(4096, seed=5)
    async with await proxy.writer(NS, "evented", len(data), digest) as writer:
        await writer.write(data)
        await writer.commit(len(data), digest)
    await proxy.delete(NS, digest)
    js = bus.nc.jetstream()
    for subject, expected in (
        ("flotilla.events.content.create", ContentCreate(digest=digest, size=len(data))),
        ("flotilla.events.content.delete", ContentDelete(digest=digest)),
    ):
        stored = await js.get_last_msg(EVENTS_STREAM, subject)
        envelope = msgspec.msgpack.decode(stored.data, type=Envelope)
        assert (envelope.namespace, envelope.topic) == (NS, topic_of(subject))
        assert msgspec.msgpack.decode(envelope.event, type=type(expected)) == expected


async def test_copy_from_streams_a_whole_blob_and_stops_on_a_source_error(
    content: ServiceProcess, bus: Bus, caller: ContentProxy
) -> None:
    await content.start(bus)
    proxy = caller
    data, digest = await blob(10 * MIB + 3, seed=6)

    async def pieces(fail_after: int | None = None) -> AsyncIterator[bytes]:
        for index, start in enumerate(range(0, len(data), 3 * MIB)):
            if index == fail_after:
                raise errdefs.Canceled("source broke")
            yield data[start : start + 3 * MIB]

    async with await proxy.writer(NS, "copy", len(data), digest) as writer:
        with pytest.raises(errdefs.Canceled, match="source broke"):
            await writer.copy_from(pieces(fail_after=2))
    async with await proxy.writer(NS, "copy", len(data), digest) as writer:
        assert writer.offset == 6 * MIB  # what was sent before the source broke is kept
        await writer.truncate(0)
        await writer.copy_from(pieces())
        assert await writer.commit(len(data), digest) == digest


async def test_a_trace_follows_the_request_into_the_service_process(
    tmp_path: Path, nats_url: str, bus: Bus, spans: InMemorySpanExporter
) -> None:
    trace_file = tmp_path / "spans.jsonl"
    service = ServiceProcess(
        "content",
        {
            "FLOTILLA_ROOT": str(tmp_path / "root"),
            "FLOTILLA_NATS__URLS": nats_url,
            "FLOTILLA_NODE_ID": NODE,
            "FLOTILLA_TELEMETRY__TRACES": "console",
            "FLOTILLA_TELEMETRY__TRACE_FILE": str(trace_file),
        },
    )
    await service.start(bus)
    try:
        tracer = trace.get_tracer("test")
        with tracer.start_as_current_span("user request") as outer, pytest.raises(errdefs.NotFound):
            await ContentProxy(bus, node=NODE).info(NS, "sha256:" + "0" * 64)
    finally:
        await service.stop()
    client = next(s for s in spans.get_finished_spans() if s.name == "content.info")
    remote = [json.loads(line) for line in trace_file.read_text().splitlines()]
    (server,) = [s for s in remote if s["name"] == "content.info"]
    assert server["context"]["trace_id"] == f"0x{outer.get_span_context().trace_id:032x}"
    assert server["parent_id"] == f"0x{client.context.span_id:016x}"
    assert server["kind"] == "SpanKind.SERVER"
    assert server["resource"]["attributes"]["service.name"] == "flotilla-content"
