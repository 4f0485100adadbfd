"""The same-node writer's side: writing into the ingest's file and reporting progress."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flotilla.content import convert
from flotilla.content.proxy_file import REPORT_EVERY, IngestFile, copy_reporting


async def chunks_of(*sizes: int) -> AsyncIterator[bytes]:
    for index, size in enumerate(sizes):
        yield bytes([index]) * size


class Service:
    """Stands in for the content service's ``written``: records reports, one at a time."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.reports: list[int] = []
        self.in_flight = 0
        self.fail_at = fail_at

    async def report(self, end: int) -> int:
        self.in_flight += 1
        assert self.in_flight == 1, "reports overlap"
        await asyncio.sleep(0.001)
        self.in_flight -= 1
        if end == self.fail_at:
            raise RuntimeError("service went away")
        self.reports.append(end)
        return end


def test_reachable_only_when_it_is_the_very_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_bytes(b"12345")
    found = data.stat()
    named = convert.file_id((found.st_dev, found.st_ino))
    assert IngestFile.reachable(str(data), named) is not None
    assert IngestFile.reachable("", named) is None
    assert IngestFile.reachable(str(tmp_path / "elsewhere"), named) is None  # another disk
    other = tmp_path / "other"
    other.write_bytes(b"12345")
    assert IngestFile.reachable(str(other), named) is None  # a file at that path, not this one


async def test_copies_into_the_file_and_reports_as_it_goes(tmp_path: Path) -> None:
    (tmp_path / "data").write_bytes(b"head")
    file = IngestFile(tmp_path / "data")
    service = Service()
    sizes = (REPORT_EVERY - 1, 2, REPORT_EVERY, 5)
    end = await copy_reporting(file, chunks_of(*sizes), 4, service.report)
    file.close()
    assert end == 4 + sum(sizes)
    assert service.reports == [4 + REPORT_EVERY + 1, 4 + 2 * REPORT_EVERY + 1, end]
    written = (tmp_path / "data").read_bytes()
    assert written[:4] == b"head"
    assert len(written) == end
    assert written[-5:] == bytes([3]) * 5


async def test_nothing_to_copy_reports_nothing(tmp_path: Path) -> None:
    file = IngestFile(tmp_path / "data")
    service = Service()
    assert await copy_reporting(file, chunks_of(), 7, service.report) == 7
    assert service.reports == []


async def test_a_failed_report_stops_the_copy(tmp_path: Path) -> None:
    (tmp_path / "data").touch()
    file = IngestFile(tmp_path / "data")
    service = Service(fail_at=REPORT_EVERY)
    with pytest.raises(RuntimeError, match="went away"):
        await copy_reporting(file, chunks_of(REPORT_EVERY, 1, 1), 0, service.report)
    file.close()
