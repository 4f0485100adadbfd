"""Flotilla's images service: image metadata, pull, push, import and export."""
