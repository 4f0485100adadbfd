"""Per-endpoint request counts, errors and latency, rendered in Prometheus text format.

Counted in plain numbers on the event loop, and turned into Prometheus samples only when
someone asks for them: prometheus_client's own Counter and Histogram take a lock and walk the
buckets in Python on every observation, several microseconds per request. The families,
names, labels, buckets and ``_created`` samples are exactly what those would render.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

__all__ = ["EndpointMetrics"]

_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30
)  # fmt: skip
_LABELS: Final = ("service", "node", "endpoint")
_REQUESTS: Final = ("flotilla_requests", "Requests handled")
_ERRORS: Final = ("flotilla_request_errors", "Requests that ended in an error, by errdefs class")
_LATENCY: Final = ("flotilla_request_duration_seconds", "Time to handle a request")


class _Endpoint:
    """One endpoint's counts: requests, latency sum and per-bucket counts (not cumulative)."""

    __slots__ = ("buckets", "created", "requests", "seconds")

    def __init__(self) -> None:
        self.created = time.time()
        self.requests = 0
        self.seconds = 0.0
        self.buckets = [0] * (len(_BUCKETS) + 1)  # the last one is +Inf


class _Errors:
    __slots__ = ("count", "created")

    def __init__(self) -> None:
        self.created = time.time()
        self.count = 0


class EndpointMetrics:
    """One registry per service host (no process-global state), labelled by endpoint.

    Observations come from the event loop only; rendering happens there too.
    """

    def __init__(self, service: str, node: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._host = (service, node)
        self._endpoints: dict[str, _Endpoint] = {}
        self._errors: dict[tuple[str, str], _Errors] = {}
        self.registry.register(_Collector(self))

    def observe(self, endpoint: str, seconds: float, error_class: str | None) -> None:
        """Record one handled request."""
        counts = self._endpoints.get(endpoint)
        if counts is None:
            counts = self._endpoints[endpoint] = _Endpoint()
        counts.requests += 1
        counts.seconds += seconds
        counts.buckets[bisect_left(_BUCKETS, seconds)] += 1  # a bucket counts values <= its bound
        if error_class is not None:
            errors = self._errors.get((endpoint, error_class))
            if errors is None:
                errors = self._errors[endpoint, error_class] = _Errors()
            errors.count += 1

    def render(self) -> str:
        """The registry in Prometheus text exposition format."""
        return generate_latest(self.registry).decode()

    def families(self) -> Iterator[Metric]:
        """The three metric families, as prometheus_client's Counter and Histogram make them."""
        requests = CounterMetricFamily(*_REQUESTS, labels=_LABELS)
        errors = CounterMetricFamily(*_ERRORS, labels=(*_LABELS, "error_class"))
        latency = HistogramMetricFamily(*_LATENCY, labels=_LABELS)
        for endpoint, counts in self._endpoints.items():
            labels = (*self._host, endpoint)
            requests.add_metric(labels, float(counts.requests), created=counts.created)
            latency.add_metric(labels, _cumulative(counts.buckets), counts.seconds)
            created = dict(zip(_LABELS, labels, strict=True))
            latency.samples.append(Sample(f"{_LATENCY[0]}_created", created, counts.created))
        for (endpoint, error_class), count in self._errors.items():
            labelled = (*self._host, endpoint, error_class)
            errors.add_metric(labelled, float(count.count), created=count.created)
        return iter((requests, errors, latency))


def _cumulative(buckets: list[int]) -> list[tuple[str, float]]:
    bounds = [*map(floatToGoString, _BUCKETS), "+Inf"]
    total, out = 0, []
    for bound, count in zip(bounds, buckets, strict=True):
        total += count
        out.append((bound, float(total)))
    return out


class _Collector(Collector):
    def __init__(self, metrics: EndpointMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self._metrics.families()
