"""LocalStore's events are rows of its own database, written in the change's transaction."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from flotilla.common import digests, errdefs
from flotilla.common.events.envelope import decode_envelope
from flotilla.common.events.outbox import Outbox
from flotilla.common.events.relay import Relay
from flotilla.content.events import ContentCreate, ContentDelete
from flotilla.content.helpers import write_blob
from flotilla.content.local import LocalStore
from flotilla.testkit.events import RecordingSink

NS = "unit"


def outbox_events(root: Path) -> list[tuple[str, str, object]]:
    outbox = Outbox(LocalStore.database(root))
    try:
        envelopes = [decode_envelope(row.envelope) for row in outbox.pending(100).rows]
    finally:
        outbox.close()
    decoder = msgspec.msgpack.Decoder(ContentCreate | ContentDelete)
    return [(e.namespace, e.topic, decoder.decode(e.event)) for e in envelopes]


async def test_commit_and_delete_stage_their_events_in_the_store_database(tmp_path: Path) -> None:
    root = tmp_path / "content"
    idle = Relay(LocalStore.database(root), RecordingSink())  # never started: rows stay
    async with LocalStore(root, idle) as store:
        digest = await write_blob(store, NS, "r", b"staged")
        await store.delete(NS, digest)
    assert outbox_events(root) == [
        (NS, "/content/create", ContentCreate(digest=digest, size=6)),
        (NS, "/content/delete", ContentDelete(digest=digest)),
    ]


async def test_an_event_that_cannot_be_staged_fails_the_commit_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    root = tmp_path / "content"
    elsewhere = Relay(tmp_path / "elsewhere.db", RecordingSink())
    async with LocalStore(root, elsewhere) as store:
        with pytest.raises(errdefs.FailedPrecondition, match="staged outside"):
            await write_blob(store, NS, "r", b"orphan")
        with pytest.raises(errdefs.NotFound):
            await store.info(NS, digests.digest_of(b"orphan"))
        assert (await store.status(NS, "r")).offset == len(b"orphan")  # kept for a retry
    assert [path for path in (root / "blobs").rglob("*") if path.is_file()] == []
    assert outbox_events(root) == []
