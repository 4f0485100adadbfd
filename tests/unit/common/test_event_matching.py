"""containerd's event filters over envelopes, and the subjects a subscription narrows to."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from flotilla.common.events import Event, envelope_for
from flotilla.common.events.matching import ALL_EVENTS, adapt_envelope, subjects_for
from flotilla.common.filters import parse_all


class Exited(Event, frozen=True, kw_only=True, tag="test.Exited"):
    container_id: str
    status: int = 0
    oom: bool = False
    labels: Mapping[str, str] = {}


EXIT = envelope_for(
    "default", "/tasks/exit", Exited(container_id="c1", status=3, labels={"a.b": "x"})
)


@pytest.mark.parametrize(
    ("filters", "subjects"),
    [
        ([], [ALL_EVENTS]),
        ([""], [ALL_EVENTS]),
        (['topic=="/tasks/exit"'], ["flotilla.events.tasks.exit"]),
        (['topic=="/tasks/exit",namespace==default'], ["flotilla.events.tasks.exit"]),
        (
            ['topic=="/tasks/exit"', 'topic=="/content/create"'],
            ["flotilla.events.content.create", "flotilla.events.tasks.exit"],
        ),
        (['topic=="/tasks/exit"', "namespace==default"], [ALL_EVENTS]),
        (['topic~="/tasks/.*"'], [ALL_EVENTS]),
        (['topic!="/tasks/exit"'], [ALL_EVENTS]),
        (["namespace==default"], [ALL_EVENTS]),
        (['topic=="/not a subject"'], [ALL_EVENTS]),
    ],
)
def test_subjects_narrow_only_to_exact_topics(filters: list[str], subjects: list[str]) -> None:
    assert subjects_for(parse_all(filters)) == subjects


@pytest.mark.parametrize(
    ("filters", "matches"),
    [
        ([], True),
        (['topic=="/tasks/exit"'], True),
        (['topic=="/tasks/start"'], False),
        (['topic~="/tasks/.*"'], True),
        (['topic~="^/content/"'], False),
        (["namespace==default"], True),
        (["namespace==other"], False),
        (['topic=="/tasks/exit",namespace==other'], False),
        (['topic=="/tasks/start"', "namespace==default"], True),
        (["event.container_id==c1"], True),
        (["event.container_id!=c1"], False),
        (['event.labels."a.b"==x'], True),
        (["event.labels.missing"], False),
        (["event.oom==false"], True),
        (["event.status"], False),  # numbers are no fields, as in containerd
        (["event.type==test.Exited"], True),
        (["event"], False),
        (["topic.deeper"], False),
    ],
)
def test_filters_see_the_envelope_as_containerd_does(filters: list[str], matches: bool) -> None:
    assert parse_all(filters).match(adapt_envelope(EXIT)) is matches


def test_empty_strings_are_absent() -> None:
    envelope = envelope_for("ns", "/tasks/exit", Exited(container_id=""))
    assert parse_all(["event.container_id"]).match(adapt_envelope(envelope)) is False
