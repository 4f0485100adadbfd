"""Per-endpoint request counts, errors and latency, rendered in Prometheus text format."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

__all__ = ["EndpointMetrics"]

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class EndpointMetrics:
    """One registry per service host (no process-global state), labelled by endpoint."""

    def __init__(self, service: str, node: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._host = (service, node)
        self._bound: dict[str, tuple[Counter, Histogram]] = {}
        common = ["service", "node"]
        self._requests = Counter(
            "flotilla_requests", "Requests handled", [*common, "endpoint"], registry=self.registry
        )
        self._errors = Counter(
            "flotilla_request_errors",
            "Requests that ended in an error, by errdefs class",
            [*common, "endpoint", "error_class"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "flotilla_request_duration_seconds",
            "Time to handle a request",
            [*common, "endpoint"],
            buckets=_BUCKETS,
            registry=self.registry,
        )

    def observe(self, endpoint: str, seconds: float, error_class: str | None) -> None:
        """Record one handled request."""
        requests, latency = self._bound.get(endpoint) or self._bind(endpoint)
        requests.inc()
        latency.observe(seconds)
        if error_class is not None:
            self._errors.labels(*self._host, endpoint, error_class).inc()

    def _bind(self, endpoint: str) -> tuple[Counter, Histogram]:
        # labels() takes a lock and hashes the label values: do it once per endpoint.
        bound = (
            self._requests.labels(*self._host, endpoint),
            self._latency.labels(*self._host, endpoint),
        )
        self._bound[endpoint] = bound
        return bound

    def render(self) -> str:
        """The registry in Prometheus text exposition format."""
        return generate_latest(self.registry).decode()
