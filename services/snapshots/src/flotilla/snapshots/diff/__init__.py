"""containerd's diff service for one node: apply layers onto mounts, and compute layers.

The ports are in :mod:`flotilla.snapshots.diff.differ`; ``apply`` unpacks a layer from the
node's content store onto a snapshot's mounts, ``compare`` writes the changes between two
mounts' trees into the content store as a layer.
"""
