"""Trace context in NATS headers, and the SDK set-up each process does once at start.

The bus only uses the OpenTelemetry *API* (spans, propagation); :func:`configure_tracing` is
called from a process's entry point to install the SDK provider and an exporter.

Spans cost what the installed provider makes them cost, on every request, so :func:`span`
does only the work whose result someone can see:

- no SDK provider installed: the API would create no-op spans that only carry a caller's
  context along; that context is passed through as it is, without the no-op span objects;
- :func:`configure_tracing` with exporter ``none``: nothing is ever exported, so spans are not
  recorded, but each still gets its own ids (as the SDK would give it) so that log lines carry
  trace ids and the trace continues into the services called;
- any other provider (an exporter, a test's in-memory one): real, recorded spans.
"""

from __future__ import annotations

import functools
import sys
from typing import IO, TYPE_CHECKING, Final, Literal

from opentelemetry import context, propagate, trace
from opentelemetry.propagators.textmap import TextMapPropagator

from flotilla.common.telemetry import w3c

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

__all__ = ["configure_tracing", "extract", "inject", "injected", "span", "tracer"]

_TRACER_NAME = "flotilla.bus"

Mode = Literal["pass", "ids", "record"]

_EMPTY: Final = context.Context()
_RANDOM_TRACE_ID: Final = int(getattr(trace.TraceFlags, "RANDOM_TRACE_ID", 0))


@functools.cache
def tracer() -> trace.Tracer:
    """The bus tracer, looked up once.

    Before a provider is installed this is OpenTelemetry's proxy tracer, which delegates to
    the provider once one is set, so caching it is safe (and saves an environment lookup
    per request).
    """
    return trace.get_tracer(_TRACER_NAME)


class _Provider:
    """The provider installed in this process, once there is one (OpenTelemetry sets it once)."""

    installed: trace.TracerProvider | None = None
    mode: Mode = "pass"
    unrecorded: TracerProvider | None = None
    """The provider :func:`configure_tracing` installed with no exporter, if it did."""
    default_sampler = False
    """Whether that provider samples as by default: as the parent did, and every root."""


def mode() -> Mode:
    """How spans are made in this process now (see the module docstring)."""
    if _Provider.installed is None:
        tracer()  # its first lookup loads a provider named in the environment, as the API's does
        # trace.get_tracer_provider() looks at os.environ on every call while no provider is
        # set (microseconds per request): look at the global it guards first.
        if getattr(trace, "_TRACER_PROVIDER", True) is None:
            return "pass"
        provider = trace.get_tracer_provider()
        if isinstance(provider, trace.ProxyTracerProvider):
            return "pass"
        _Provider.installed = provider
        _Provider.mode = _mode_of(provider)
    return _Provider.mode


def _mode_of(provider: trace.TracerProvider) -> Mode:
    if isinstance(provider, trace.NoOpTracerProvider):
        return "pass"
    return "ids" if provider is _Provider.unrecorded else "record"


class _Current:
    """Makes a span current for a block (and ends it on the way out).

    A plain class rather than ``start_as_current_span``: this runs on every request, and the
    API's generator-based context managers cost several times more.
    """

    __slots__ = ("_span", "_token")

    def __init__(self, current: trace.Span) -> None:
        self._span = current
        self._token: object = None

    def __enter__(self) -> trace.Span:
        self._token = context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(self, *exc_info: object) -> None:
        context.detach(self._token)  # type: ignore[arg-type]
        self._span.end()


class _Unchanged:
    """The block runs in the context it already has (no span to add)."""

    __slots__ = ()

    def __enter__(self) -> trace.Span:
        return trace.INVALID_SPAN

    def __exit__(self, *exc_info: object) -> None:
        return None


_UNCHANGED: Final = _Unchanged()


def span(
    name: str, kind: trace.SpanKind, parent: context.Context | None = None
) -> _Current | _Unchanged:
    """A context manager that starts a span, makes it current for the block and ends it.

    Args:
        name: the span's name.
        kind: client, server, ...
        parent: the context to continue (a peer's, from :func:`extract`); the current one
            when None.
    """
    how = mode()
    if how == "pass":
        return _passed_through(parent)
    if how == "ids":
        assert _Provider.unrecorded is not None
        return _Current(_unrecorded_span(_Provider.unrecorded, name, kind, parent))
    return _Current(tracer().start_span(name, context=parent, kind=kind))


def _passed_through(parent: context.Context | None) -> _Current | _Unchanged:
    """What the API's no-op tracer does: the parent's span context becomes current, as it is."""
    if parent is None or (not parent and not context.get_current()):
        return _UNCHANGED  # the current context carries the parent already, or there is none
    received = trace.get_current_span(parent).get_span_context()
    if not received.is_valid and not trace.get_current_span().get_span_context().is_valid:
        return _UNCHANGED
    return _Current(trace.NonRecordingSpan(received))


def _unrecorded_span(
    provider: TracerProvider,
    name: str,
    kind: trace.SpanKind,
    parent: context.Context | None,
) -> trace.Span:
    """The span the SDK would start, with its ids and sampling flags, but never recorded."""
    ids = provider.id_generator
    received = trace.get_current_span(parent).get_span_context()
    if continued := received.is_valid:
        trace_id, random_id = received.trace_id, received.trace_flags & _RANDOM_TRACE_ID
    else:
        trace_id = ids.generate_trace_id()
        random_id = _RANDOM_TRACE_ID if ids.is_trace_id_random() else 0
    if _Provider.default_sampler:  # what ParentBased(ALWAYS_ON) decides, without asking it
        flags = received.trace_flags & trace.TraceFlags.SAMPLED if continued else 1
        state = received.trace_state if continued else None
    else:
        sampling = provider.sampler.should_sample(parent, trace_id, name, kind)
        sampled = sampling.decision.is_sampled()  # type: ignore[no-untyped-call]
        flags = trace.TraceFlags.SAMPLED if sampled else 0
        state = sampling.trace_state
    own = trace.SpanContext(
        trace_id,
        ids.generate_span_id(),
        is_remote=False,
        trace_flags=trace.TraceFlags(flags | random_id),
        trace_state=state,
    )
    return trace.NonRecordingSpan(own)


def inject(headers: dict[str, str]) -> dict[str, str]:
    """Add the current trace context (``traceparent``/``tracestate``) to ``headers``."""
    if current := context.get_current():  # an empty context has nothing to propagate
        _inject(headers, current)
    return headers


def injected(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` with the current trace context added: a copy, or ``headers`` if none.

    For header dicts built once and shared between requests, which must stay unchanged.
    """
    if not (current := context.get_current()):
        return headers
    copy = dict(headers)
    _inject(copy, current)
    return copy


def _inject(headers: dict[str, str], current: context.Context) -> None:
    if w3c.is_default() and (traceparent := w3c.write(current)) is not None:
        headers[w3c.TRACEPARENT] = traceparent
    else:
        propagate.inject(headers, current)


@functools.cache
def _fields(propagator: TextMapPropagator) -> frozenset[str]:
    return frozenset(propagator.fields)


def extract(headers: dict[str, str] | None) -> context.Context:
    """The trace context a peer sent in ``headers`` (empty when it sent none)."""
    if not headers or _fields(propagate.get_global_textmap()).isdisjoint(headers):
        return _EMPTY
    if w3c.is_default() and (received := w3c.read(headers)) is not None:
        return received
    return propagate.extract(headers)


def configure_tracing(service: str, node: str, exporter: str, out: IO[str] | None = None) -> None:
    """Install the SDK tracer provider for this process.

    Args:
        service: ``service.name`` resource attribute, e.g. ``flotilla-content``.
        node: the node id, recorded as ``host.name``.
        exporter: ``none`` (spans get ids and are propagated, but are not recorded: nothing
            would read them) or ``console`` (one JSON document per span, written to ``out``
            or stderr).
        out: where the console exporter writes.
    """
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Tracer, TracerProvider, sampling
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
    elif isinstance(provider.get_tracer(_TRACER_NAME), Tracer):  # not OTEL_SDK_DISABLED
        _Provider.unrecorded = provider
        _Provider.default_sampler = provider.sampler is sampling.DEFAULT_ON
    trace.set_tracer_provider(provider)
