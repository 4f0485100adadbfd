"""Flotilla's shared frame: errors, subjects, bus, config, telemetry and the service runtime."""

__version__ = "0.1.0"
