"""Every NATS subject Flotilla uses is spelled here, and only here.

- cluster services: ``flotilla.v1.<service>.<method>``
- node-local services: ``flotilla.v1.node.<node>.<service>.<method>``
- events: ``flotilla.events.<topic>`` where containerd's ``/tasks/exit`` becomes ``tasks.exit``

Identifiers (namespaces, container ids, digests) never appear in a subject: containerd ids may
contain dots. Only service, method and node names do, and those are checked to be single tokens.
"""

from __future__ import annotations

import re
from typing import Final

from flotilla.common.errdefs import InvalidArgument

__all__ = [
    "EVENTS_PREFIX",
    "EVENTS_STREAM",
    "PREFIX",
    "event_subject",
    "method_subject",
    "topic_of",
]

PREFIX: Final = "flotilla.v1"
EVENTS_PREFIX: Final = "flotilla.events"
EVENTS_STREAM: Final = "FLOTILLA_EVENTS"

_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


def _token(kind: str, value: str) -> str:
    if not _TOKEN.match(value):
        raise InvalidArgument(f"{kind} {value!r} is not a valid subject token")
    return value


def method_subject(service: str, method: str, node: str | None = None) -> str:
    """The subject of ``service.method``, node-local when ``node`` is given."""
    tail = f"{_token('service', service)}.{_token('method', method)}"
    if node is None:
        return f"{PREFIX}.{tail}"
    return f"{PREFIX}.node.{_token('node', node)}.{tail}"


def event_subject(topic: str) -> str:
    """``/content/create`` -> ``flotilla.events.content.create``."""
    parts = [part for part in topic.split("/") if part]
    if not parts:
        raise InvalidArgument(f"event topic {topic!r} is empty")
    return ".".join([EVENTS_PREFIX, *(_token("topic", part) for part in parts)])


def topic_of(subject: str) -> str:
    """``flotilla.events.content.create`` -> ``/content/create``."""
    if not subject.startswith(EVENTS_PREFIX + "."):
        raise InvalidArgument(f"{subject!r} is not an event subject")
    return "/" + subject[len(EVENTS_PREFIX) + 1 :].replace(".", "/")
