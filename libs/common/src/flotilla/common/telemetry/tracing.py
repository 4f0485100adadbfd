"""Trace context in NATS headers, and the SDK set-up each process does once at start.

The bus only uses the OpenTelemetry *API* (spans, propagation); :func:`configure_tracing` is
called from a process's entry point to install the SDK provider and an exporter.
"""

from __future__ import annotations

import functools
import sys
from typing import IO

from opentelemetry import context, propagate, trace

__all__ = ["configure_tracing", "extract", "inject", "tracer"]

_TRACER_NAME = "flotilla.bus"


@functools.cache
def tracer() -> trace.Tracer:
    """The bus tracer, looked up once.

    Before a provider is installed this is OpenTelemetry's proxy tracer, which delegates to
    the provider once one is set, so caching it is safe (and saves an environment lookup
    per request).
    """
    return trace.get_tracer(_TRACER_NAME)


def inject(headers: dict[str, str]) -> dict[str, str]:
    """Add the current trace context (``traceparent``/``tracestate``) to ``headers``."""
    propagate.inject(headers)
    return headers


def extract(headers: dict[str, str] | None) -> context.Context:
    """The trace context a peer sent in ``headers`` (empty when it sent none)."""
    return propagate.extract(headers or {})


def configure_tracing(service: str, node: str, exporter: str, out: IO[str] | None = None) -> None:
    """Install the SDK tracer provider for this process.

    Args:
        service: ``service.name`` resource attribute, e.g. ``flotilla-content``.
        node: the node id, recorded as ``host.name``.
        exporter: ``none`` (spans are still created and propagated) or ``console`` (one JSON
            document per span, written to ``out`` or stderr).
        out: where the console exporter writes.
    """
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "host.name": node})
    )
    if exporter == "console":
        provider.add_span_processor(
            SimpleSpanProcessor(
                ConsoleSpanExporter(
                    out=out or sys.stderr, formatter=lambda span: span.to_json(indent=None) + "\n"
                )
            )
        )
    trace.set_tracer_provider(provider)
