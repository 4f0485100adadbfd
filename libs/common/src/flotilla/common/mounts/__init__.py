"""Mounts as containerd describes them, and mounting them on Linux.

A :class:`Mount` is containerd's ``types.Mount`` (type, source, target, options): what a
snapshotter answers, so any caller on the node can mount a snapshot knowing nothing of the
snapshotter that made it. :func:`mount_all` / :func:`unmount` / :func:`temp_mount` put them
on a directory (:mod:`flotilla.common.mounts.linux`).
"""

from flotilla.common.mounts.linux import mount_all, temp_mount, unmount, unmount_all
from flotilla.common.mounts.types import Mount, lower_dirs, option_value, read_only

__all__ = [
    "Mount",
    "lower_dirs",
    "mount_all",
    "option_value",
    "read_only",
    "temp_mount",
    "unmount",
    "unmount_all",
]
