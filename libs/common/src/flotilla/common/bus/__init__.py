"""Typed request/reply and byte streams over NATS, with errdefs errors and trace context.

Public names are re-exported here; the modules behind them are implementation detail.
"""

from flotilla.common.bus.client import DEFAULT_TIMEOUT, Bus, connect
from flotilla.common.bus.context import Context
from flotilla.common.bus.discovery import discover
from flotilla.common.bus.methods import Empty, Method
from flotilla.common.bus.server import MetricsText, ServiceHost

__all__ = [
    "DEFAULT_TIMEOUT",
    "Bus",
    "Context",
    "Empty",
    "Method",
    "MetricsText",
    "ServiceHost",
    "connect",
    "discover",
]
