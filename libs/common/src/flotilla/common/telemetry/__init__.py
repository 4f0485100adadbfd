"""Structured logs, OpenTelemetry traces across NATS hops, Prometheus metrics."""
