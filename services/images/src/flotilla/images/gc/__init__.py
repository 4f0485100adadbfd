"""The cluster's garbage collector: mark from the records, sweep every node.

- :mod:`.refs`: what refers to what (containerd's ``gc.ref`` labels, manifests, indexes).
- :mod:`.mark`: the pure mark over records and an inventory of every node's objects.
- :mod:`.ports`: what the collector needs from a node.
- :mod:`.lock`: one collector at a time across the cluster.
- :mod:`.collector`: a collection end to end, and the debounced scheduling after deletes.
- :mod:`.nodes`: the ports over the bus (each node's content and snapshots services).
- :mod:`.client`: how other processes ask for a collection.
"""
