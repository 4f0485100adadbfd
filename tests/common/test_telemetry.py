"""Traces cross the NATS hop; metrics render in Prometheus format; logs are JSON lines."""

import json
import logging

from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from flotilla.common.bus import Bus, Empty, ServiceHost, metrics_method
from flotilla.common.telemetry.logs import JsonFormatter

from .echo_service import ECHO, Echo


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
