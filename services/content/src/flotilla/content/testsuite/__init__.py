"""The content store conformance suite: the same cases for every :class:`Store` implementation.

Subclass :class:`ContentSuite` in a test module, under a name pytest collects (``Test...``),
and provide its fixtures:

- ``store`` (required): a fresh, empty :class:`~flotilla.content.store.Store`.
- ``events`` (required): an ``EventLog`` (:mod:`flotilla.testkit.suite`) showing what that
  store published (``RecordedEvents`` wraps ``flotilla.testkit.events.RecordingPublisher``).
- ``restart`` (optional): a :data:`Restart` that closes the store and returns a new one over
  the same state; without it, the restart cases are skipped.
- ``namespace``, ``other_namespace`` (optional): two distinct namespace names.

The cases use nothing but the Store Protocol and the events, so they run unchanged against
the local store and against a proxy talking to a real service::

    class TestLocalContent(ContentSuite):
        @pytest.fixture
        async def store(self, tmp_path: Path) -> AsyncIterator[Store]: ...

The 1 GiB case is marked ``slow``.
"""

from flotilla.content.testsuite.blobs import BlobCases
from flotilla.content.testsuite.ingest import IngestCases
from flotilla.content.testsuite.support import (
    EventLog,
    RecordedEvents,
    Restart,
    SuiteFixtures,
    commit_blob,
    make_blob,
)

__all__ = [
    "BlobCases",
    "ContentSuite",
    "EventLog",
    "IngestCases",
    "RecordedEvents",
    "Restart",
    "commit_blob",
    "make_blob",
]


class ContentSuite(SuiteFixtures, IngestCases, BlobCases):
    """Every content conformance case; see the module docstring for the fixtures to provide."""
