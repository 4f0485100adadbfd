"""containerd's event filters over envelopes, and the subjects a subscription can narrow to.

Fields, as containerd's ``Envelope`` adaptor: ``topic``, ``namespace``, and ``event.<field>``
(a string or boolean field of the event, or a value in one of its maps, e.g.
``event.labels."a.b"``). As in containerd, an empty string counts as absent.

Narrowing: JetStream filters by subject, and a subject carries only the topic. When every
alternative of the filter pins an exact topic (``topic=="/tasks/exit"``), the consumer reads
only those subjects; otherwise it reads every event, and the filter decides client-side. The
filter always runs client-side too, so narrowing only ever saves work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import msgspec

from flotilla.common.errdefs import InvalidArgument
from flotilla.common.events.envelope import Envelope
from flotilla.common.filters import Adaptor, All, Any, Filter, Operator
from flotilla.common.subjects import EVENTS_PREFIX, event_subject

__all__ = ["ALL_EVENTS", "adapt_envelope", "subjects_for"]

ALL_EVENTS: Final = f"{EVENTS_PREFIX}.>"
_TOPIC: Final = ("topic",)


def subjects_for(matcher: Filter) -> list[str]:
    """The fewest subjects that hold every event ``matcher`` can match."""
    alternatives = matcher.filters if isinstance(matcher, Any) else (matcher,)
    subjects: set[str] = set()
    for alternative in alternatives:
        topic = _exact_topic(alternative)
        if topic is None:
            return [ALL_EVENTS]
        try:
            subjects.add(event_subject(topic))
        except InvalidArgument:
            continue  # no event has a topic that cannot be a subject: matches nothing
    return sorted(subjects) or [ALL_EVENTS]


def _exact_topic(alternative: Filter) -> str | None:
    if not isinstance(alternative, All):
        return None
    for selector in alternative.selectors:
        if selector.fieldpath == _TOPIC and selector.operator is Operator.EQUAL:
            return selector.value
    return None


def adapt_envelope(envelope: Envelope) -> Adaptor:
    """The envelope as containerd's filters see it; the event is decoded only if asked."""
    return _EnvelopeAdaptor(envelope)


class _EnvelopeAdaptor:
    def __init__(self, envelope: Envelope) -> None:
        self._envelope = envelope
        self._event: object = None
        self._decoded = False

    def __call__(self, fieldpath: Sequence[str]) -> str | None:
        if not fieldpath:
            return None
        head, rest = fieldpath[0], fieldpath[1:]
        if head == "topic" and not rest:
            return self._envelope.topic or None
        if head == "namespace" and not rest:
            return self._envelope.namespace or None
        if head == "event" and rest:
            return _field(self._payload(), rest)
        return None

    def _payload(self) -> object:
        if not self._decoded:
            self._decoded = True
            try:
                self._event = msgspec.msgpack.decode(self._envelope.event)
            except msgspec.DecodeError:
                self._event = None  # a malformed event has no fields
        return self._event


def _field(value: object, fieldpath: Sequence[str]) -> str | None:
    for name in fieldpath:
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value or None
    return None
