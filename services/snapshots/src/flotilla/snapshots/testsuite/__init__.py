"""The snapshotter conformance suite: containerd's snapshotter testsuite, for every implementation.

Subclass :class:`SnapshotterSuite` in a test module, under a name pytest collects
(``Test...``), and provide its fixtures:

- ``snapshotter`` (required): a fresh, empty :class:`~flotilla.snapshots.snapshotter.Snapshotter`.
- ``events`` (required): an ``EventLog`` (:mod:`flotilla.testkit.suite`) showing what it
  published.
- ``restart`` (optional): closes the snapshotter and returns a new one over the same state;
  without it, the restart cases are skipped.
- ``namespace``, ``other_namespace`` (optional): two distinct namespace names.

The cases use the Protocol, the events and real mounts (they need root), so they run
unchanged against the local snapshotters and through a proxy to a real service. The 128-layer
case is marked ``slow``.
"""

from flotilla.snapshots.testsuite.lifecycle import LifecycleCases
from flotilla.snapshots.testsuite.records import RecordCases
from flotilla.snapshots.testsuite.support import SuiteFixtures, mounted
from flotilla.snapshots.testsuite.trees import TreeCases

__all__ = ["LifecycleCases", "RecordCases", "SnapshotterSuite", "TreeCases", "mounted"]


class SnapshotterSuite(SuiteFixtures, LifecycleCases, RecordCases, TreeCases):
    """Every snapshotter conformance case; see the module docstring for the fixtures."""
