"""Waiting for services to answer: a silent one is Unavailable naming it, never a traceback."""

from __future__ import annotations

import pytest

from flotilla.cli.health import wait_healthy
from flotilla.common import errdefs
from flotilla.common.bus import Bus


async def test_a_silent_service_is_unavailable_by_name(bus: Bus) -> None:
    with pytest.raises(errdefs.Unavailable, match=r"not healthy within 0.5s: ghost$"):
        await wait_healthy(bus, ["ghost"], bus.node, timeout=0.5)
