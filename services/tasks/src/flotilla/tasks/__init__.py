"""Flotilla's tasks service: node-local task service: runs containers with runc."""
