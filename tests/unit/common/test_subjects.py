import pytest

from flotilla.common import errdefs
from flotilla.common.subjects import event_subject, method_subject, topic_of


def test_method_subjects() -> None:
    assert method_subject("content", "info") == "flotilla.v1.content.info"
    assert method_subject("tasks", "create", "node-1") == "flotilla.v1.node.node-1.tasks.create"


@pytest.mark.parametrize("bad", ["k8s.io", "a b", "", "*", ">"])
def test_identifiers_never_become_subject_tokens(bad: str) -> None:
    with pytest.raises(errdefs.InvalidArgument):
        method_subject("content", "info", bad)


def test_event_topics_map_both_ways() -> None:
    assert event_subject("/tasks/exit") == "flotilla.events.tasks.exit"
    assert topic_of("flotilla.events.tasks.exit") == "/tasks/exit"
    with pytest.raises(errdefs.InvalidArgument):
        event_subject("/")
