"""Flotilla's snapshots service.

containerd snapshotters (overlayfs and a native copy fallback) and the diff service.
"""
