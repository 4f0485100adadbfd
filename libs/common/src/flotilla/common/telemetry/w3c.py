"""W3C trace context headers, written and read directly in the common case.

OpenTelemetry's default propagators (``tracecontext``, then ``baggage``) take microseconds per
request through their generic carrier interface. While they are this process's propagators, a
context holding nothing but a span without tracestate is written as the one ``traceparent``
header they would write, and a request whose only trace header is a plain version-00
``traceparent`` is read as they would read it. Anything else goes through the propagators.
"""

from __future__ import annotations

import os
import re
from typing import Final

from opentelemetry import context, propagate, trace
from opentelemetry.environment_variables import OTEL_PROPAGATORS

__all__ = ["TRACEPARENT", "is_default", "read", "write"]

TRACEPARENT: Final = "traceparent"
_PLAIN: Final = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")

# The propagators OpenTelemetry loaded at import: the default pair unless the environment
# named others.
_DEFAULT: Final = None if os.environ.get(OTEL_PROPAGATORS) else propagate.get_global_textmap()


def is_default() -> bool:
    """Whether this process propagates with OpenTelemetry's default W3C propagators."""
    return _DEFAULT is not None and propagate.get_global_textmap() is _DEFAULT


def write(current: context.Context) -> str | None:
    """The ``traceparent`` that is all ``current`` propagates, or None to ask the propagators."""
    if len(current) != 1:  # more than a span: baggage, or something unknown
        return None
    found = trace.get_current_span(current).get_span_context()
    if not found.is_valid or found.trace_state:
        return None
    return f"00-{found.trace_id:032x}-{found.span_id:016x}-{found.trace_flags:02x}"


def read(headers: dict[str, str]) -> context.Context | None:
    """The context a plain ``traceparent`` (and no other trace header) carries, or None."""
    value = headers.get(TRACEPARENT)
    if value is None or "tracestate" in headers or "baggage" in headers:
        return None
    match = _PLAIN.fullmatch(value)
    if match is None:
        return None
    trace_id, span_id = int(match[1], 16), int(match[2], 16)
    if not trace_id or not span_id:
        return None  # invalid: the propagators decide what that means
    received = trace.SpanContext(
        trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(int(match[3], 16))
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(received), context.Context())
