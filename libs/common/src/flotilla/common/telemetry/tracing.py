"""Trace context in NATS headers, and the SDK set-up each process does once at start.

The bus only uses the OpenTelemetry *API* (spans, propagation); :func:`configure_tracing` is
called from a process's entry point to install the SDK provider and an exporter.
"""

from __future__ import annotations

import functools
import sys
from typing import IO

from opentelemetry import context, propagate, trace

__all__ = ["configure_tracing", "extract", "inject", "span", "tracer"]

_TRACER_NAME = "flotilla.bus"


@functools.cache
def tracer() -> trace.Tracer:
    """The bus tracer, looked up once.

    Before a provider is installed this is OpenTelemetry's proxy tracer, which delegates to
    the provider once one is set, so caching it is safe (and saves an environment lookup
    per request).
    """
    return trace.get_tracer(_TRACER_NAME)


class span:  # noqa: N801 - used like a function: ``with span(...) as current:``
    """Start a span, make it current for the block, end it on the way out.

    A plain class rather than ``start_as_current_span``: this runs on every request, and the
    API's generator-based context managers cost several times more.
    """

    __slots__ = ("_span", "_token")

    def __init__(
        self, name: str, kind: trace.SpanKind, parent: context.Context | None = None
    ) -> None:
        self._span = tracer().start_span(name, context=parent, kind=kind)
        self._token: object = None

    def __enter__(self) -> trace.Span:
        self._token = context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(self, *exc_info: object) -> None:
        context.detach(self._token)  # type: ignore[arg-type]
        self._span.end()


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
