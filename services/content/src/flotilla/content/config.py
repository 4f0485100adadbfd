"""The content service's section of the node's configuration (``[content]``)."""

from __future__ import annotations

from flotilla.common.bus.sessions import DEFAULT_MAX_PER_CALLER, DEFAULT_MAX_SESSIONS
from flotilla.common.config import Section

__all__ = ["ContentConfig"]


class ContentConfig(Section, frozen=True):
    """The content service.

    Attributes:
        session_lease: seconds an idle writer or reader session is kept before it is closed
            (its ingest kept, its ref unlocked), so a vanished caller never holds a ref.
        max_sessions: writer (and, separately, reader) sessions open at once; each holds
            file descriptors.
        max_sessions_per_caller: of those, what one caller may hold.
    """

    session_lease: float = 30.0
    max_sessions: int = DEFAULT_MAX_SESSIONS
    max_sessions_per_caller: int = DEFAULT_MAX_PER_CALLER
