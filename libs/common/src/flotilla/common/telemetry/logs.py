"""Structured logs: one JSON object per line, with the trace id when a span is active."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Final

from opentelemetry import trace

__all__ = ["JsonFormatter", "configure_logging"]

# Attributes every LogRecord has; anything else was passed in ``extra=`` and is logged as a field.
_STANDARD: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """Formats a record as a single JSON line."""

    def __init__(self, service: str, node: str) -> None:
        super().__init__()
        self._static = {"service": service, "node": node}

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` with its ``extra`` fields and the active trace id."""
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **self._static,
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = f"{span.trace_id:032x}"
            entry["span_id"] = f"{span.span_id:016x}"
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(service: str, node: str, level: str) -> None:
    """Send this process's logs to stderr as JSON lines at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service, node))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
