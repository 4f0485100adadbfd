"""Pushing images from a node's content store to a registry (containerd's ``ctr images push``)."""

from flotilla.images.push.pusher import Pusher, PushOptions
from flotilla.images.push.upload import Target

__all__ = ["PushOptions", "Pusher", "Target"]
