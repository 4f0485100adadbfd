"""Flotilla's gateway service: containerd's gRPC API and an HTTP/JSON API over the bus."""
