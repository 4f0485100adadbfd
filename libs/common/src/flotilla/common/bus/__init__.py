"""Typed request/reply, item streams and byte streams over NATS, with errdefs errors and traces.

Public names are re-exported here; the modules behind them are implementation detail.
"""

from flotilla.common.bus.client import DEFAULT_TIMEOUT, Bus, connect
from flotilla.common.bus.context import Context
from flotilla.common.bus.discovery import QUEUE_GROUP, discover
from flotilla.common.bus.methods import (
    Empty,
    Items,
    Method,
    ServiceApi,
    Sink,
    Source,
    Unary,
    Wire,
)
from flotilla.common.bus.server import MetricsText, ServiceHost, metrics_method

__all__ = [
    "DEFAULT_TIMEOUT",
    "QUEUE_GROUP",
    "Bus",
    "Context",
    "Empty",
    "Items",
    "Method",
    "MetricsText",
    "ServiceApi",
    "ServiceHost",
    "Sink",
    "Source",
    "Unary",
    "Wire",
    "connect",
    "discover",
    "metrics_method",
]
