"""Traces cross the NATS hop; metrics render in Prometheus format; logs are JSON lines."""

import json
import logging
import re

import pytest
from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import TraceState
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from flotilla.common import errdefs
from flotilla.common.bus import Bus, Empty, ServiceHost, metrics_method
from flotilla.common.telemetry import tracing
from flotilla.common.telemetry.logs import JsonFormatter
from flotilla.common.telemetry.metrics import EndpointMetrics

from .echo_service import ECHO, RAISE, Echo


async def test_server_span_continues_the_callers_trace(
    bus: Bus, echo: ServiceHost, spans: InMemorySpanExporter
) -> None:
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("outer") as outer:
        await bus.call(ECHO, Echo(text="t"), namespace="n")
    finished = {s.name: s for s in spans.get_finished_spans()}
    client, server = finished["echo.echo"], None
    server = next(s for s in spans.get_finished_spans() if s.kind == trace.SpanKind.SERVER)
    trace_id = outer.get_span_context().trace_id
    assert client.context.trace_id == trace_id
    assert server.context.trace_id == trace_id
    assert server.parent is not None
    assert server.parent.span_id == client.context.span_id


async def test_metrics_count_requests_by_endpoint(bus: Bus, echo: ServiceHost) -> None:
    for _ in range(3):
        await bus.call(ECHO, Echo(text="m"), namespace="n")
    text = (await bus.call(metrics_method("echo"), Empty())).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    totals = [
        s.value
        for s in families["flotilla_requests"].samples
        if s.name.endswith("_total") and s.labels["endpoint"] == "echo"
    ]
    assert totals == [3.0]
    assert "flotilla_request_duration_seconds" in families


def test_log_lines_are_json_with_extra_fields() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    record.digest = "sha256:abc"
    line = json.loads(JsonFormatter("svc", "node-1").format(record))
    assert line["msg"] == "hello you"
    assert line["digest"] == "sha256:abc"
    assert line["service"] == "svc"
    assert line["level"] == "info"


async def test_each_call_carries_its_own_callers_trace(
    bus: Bus, echo: ServiceHost, spans: InMemorySpanExporter
) -> None:
    tracer = trace.get_tracer("test")
    outers = []
    for name in ("first", "second"):
        with tracer.start_as_current_span(name) as outer:
            await bus.call(ECHO, Echo(text=name), namespace="n")
        outers.append(outer.get_span_context().trace_id)
    finished = spans.get_finished_spans()
    servers = [s for s in finished if s.kind == trace.SpanKind.SERVER]
    clients = {s.context.span_id: s for s in finished if s.kind == trace.SpanKind.CLIENT}
    assert [s.context.trace_id for s in servers] == outers
    for server in servers:
        assert server.parent is not None
        assert clients[server.parent.span_id].context.trace_id == server.context.trace_id


async def test_a_failed_call_marks_its_server_span_with_the_error_class(
    bus: Bus, echo: ServiceHost, spans: InMemorySpanExporter
) -> None:
    with pytest.raises(errdefs.NotFound):
        await bus.call(RAISE, Echo(text="NotFound"), namespace="n")
    (server,) = [s for s in spans.get_finished_spans() if s.kind == trace.SpanKind.SERVER]
    assert server.name == "echo.raise"
    assert server.attributes is not None
    assert server.attributes["flotilla.error_class"] == "NotFound"


async def test_metrics_count_errors_by_class_and_time_every_request(
    bus: Bus, echo: ServiceHost
) -> None:
    await bus.call(ECHO, Echo(text="ok"), namespace="n")
    for _ in range(2):
        with pytest.raises(errdefs.NotFound):
            await bus.call(RAISE, Echo(text="NotFound"), namespace="n")
    text = (await bus.call(metrics_method("echo"), Empty())).text
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]

    def value(name: str, **labels: str) -> float:
        (found,) = [
            s.value for s in samples if s.name == name and labels.items() <= s.labels.items()
        ]
        return found

    assert value("flotilla_requests_total", endpoint="raise") == 2
    assert value("flotilla_request_errors_total", endpoint="raise", error_class="NotFound") == 2
    assert value("flotilla_request_duration_seconds_count", endpoint="raise") == 2
    assert value("flotilla_request_duration_seconds_bucket", endpoint="echo", le="+Inf") == 1
    assert not [s for s in samples if s.labels.get("endpoint") == "echo" and "errors" in s.name]


def test_metrics_render_as_prometheus_client_s_own_counters_would() -> None:
    reference = _PrometheusMetrics("svc", "node-1")
    ours = EndpointMetrics("svc", "node-1")
    observations = [
        ("a", 0.0003, None),
        ("a", 0.0005, "NotFound"),  # on a bucket's bound: counted in that bucket
        ("b", 0.07, None),
        ("a", 31.0, "Internal"),  # past the last bound: only in +Inf
        ("b", 0.0, "NotFound"),
        ("a", 2.5, None),
    ]
    for endpoint, seconds, error_class in observations:
        reference.observe(endpoint, seconds, error_class)
        ours.observe(endpoint, seconds, error_class)
    assert _without_created(ours.render()) == _without_created(reference.render())
    assert _without_created(EndpointMetrics("s", "n").render()) == _without_created(
        _PrometheusMetrics("s", "n").render()
    )


_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30
)  # fmt: skip


class _PrometheusMetrics:
    """The metrics as prometheus_client's Counter and Histogram keep them: the reference."""

    def __init__(self, service: str, node: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.host = (service, node)
        labels = ["service", "node", "endpoint"]
        self.requests = Counter(
            "flotilla_requests", "Requests handled", labels, registry=self.registry
        )
        self.errors = Counter(
            "flotilla_request_errors",
            "Requests that ended in an error, by errdefs class",
            [*labels, "error_class"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "flotilla_request_duration_seconds",
            "Time to handle a request",
            labels,
            buckets=_BUCKETS,
            registry=self.registry,
        )

    def observe(self, endpoint: str, seconds: float, error_class: str | None) -> None:
        self.requests.labels(*self.host, endpoint).inc()
        self.latency.labels(*self.host, endpoint).observe(seconds)
        if error_class is not None:
            self.errors.labels(*self.host, endpoint, error_class).inc()

    def render(self) -> str:
        return generate_latest(self.registry).decode()


def _without_created(text: str) -> str:
    """The exposition with the creation times (a clock reading) blanked."""
    return re.sub(r"(_created\{[^}]*\}) \S+", r"\1 T", text)


_PARENT = trace.SpanContext(
    0x0AF7651916CD43DD8448EB211C80319C,
    0xB7AD6B7169203331,
    is_remote=True,
    trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
)


_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _with_span(found: trace.SpanContext) -> otel_context.Context:
    return trace.set_span_in_context(trace.NonRecordingSpan(found), otel_context.Context())


@pytest.mark.parametrize(
    "found",
    [
        _PARENT,
        trace.SpanContext(1, 2, is_remote=False, trace_flags=trace.TraceFlags(0)),
        trace.SpanContext(1, 2, is_remote=False, trace_flags=trace.TraceFlags(3)),
        trace.SpanContext(1, 2, is_remote=False, trace_state=TraceState([("k", "v")])),
    ],
)
def test_trace_headers_are_written_and_read_as_the_propagators_do(
    found: trace.SpanContext,
) -> None:
    expected: dict[str, str] = {}
    propagate.inject(expected, context=_with_span(found))
    token = otel_context.attach(_with_span(found))
    try:
        written = tracing.inject({})
    finally:
        otel_context.detach(token)
    assert written == expected
    read = trace.get_current_span(tracing.extract(written)).get_span_context()
    assert read == trace.get_current_span(propagate.extract(expected)).get_span_context()
    assert read.trace_state == found.trace_state


def test_baggage_and_odd_trace_headers_still_go_through_the_propagators() -> None:
    token = otel_context.attach(baggage.set_baggage("tenant", "t1", _with_span(_PARENT)))
    try:
        written = tracing.inject({})
    finally:
        otel_context.detach(token)
    assert written["baggage"] == "tenant=t1"
    assert baggage.get_baggage("tenant", tracing.extract(written)) == "t1"
    for odd in ("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra", "00-" + "0" * 49):
        headers = {"traceparent": odd}
        ours = trace.get_current_span(tracing.extract(headers)).get_span_context()
        assert ours == trace.get_current_span(propagate.extract(headers)).get_span_context()
    assert tracing.extract({"Flotilla-Namespace": "n"}) == otel_context.Context()


def test_without_a_provider_the_callers_context_passes_through() -> None:
    received = tracing.extract({"traceparent": _TRACEPARENT})
    with tracing._passed_through(received):
        assert trace.get_current_span().get_span_context() == _PARENT
        passed_on = tracing.inject({})
    assert passed_on == {"traceparent": _TRACEPARENT}
    with tracing._passed_through(tracing.extract({})):
        assert not trace.get_current_span().get_span_context().is_valid
        assert tracing.inject({}) == {}


@pytest.mark.parametrize("default_sampler", [True, False])
@pytest.mark.parametrize(
    "parent",
    [
        None,
        _PARENT,
        trace.SpanContext(5, 6, is_remote=True, trace_flags=trace.TraceFlags(0)),
        trace.SpanContext(5, 6, is_remote=False, trace_state=TraceState([("k", "v")])),
    ],
)
def test_unrecorded_spans_get_the_ids_and_flags_the_sdk_would_give(
    monkeypatch: pytest.MonkeyPatch, default_sampler: bool, parent: trace.SpanContext | None
) -> None:
    monkeypatch.setattr(tracing._Provider, "default_sampler", default_sampler)
    provider = TracerProvider()
    parent_context = otel_context.Context() if parent is None else _with_span(parent)
    kind = trace.SpanKind.SERVER
    ours = tracing._unrecorded_span(provider, "s", kind, parent_context).get_span_context()
    sdk = provider.get_tracer("t").start_span("s", parent_context, kind).get_span_context()
    assert ours.is_valid
    assert not tracing._unrecorded_span(provider, "s", kind, parent_context).is_recording()
    assert ours.trace_flags == sdk.trace_flags
    assert ours.trace_state == sdk.trace_state
    if parent is None:
        assert ours.trace_id != sdk.trace_id  # a new trace each time
    else:
        assert ours.trace_id == sdk.trace_id == parent.trace_id
        assert ours.span_id not in (sdk.span_id, parent.span_id)
