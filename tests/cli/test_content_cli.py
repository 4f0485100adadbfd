"""``flotilla content`` against a real content service, as ``ctr content`` is used."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flotilla.common import digests
from flotilla.common.bus import Bus
from flotilla.testkit.services import ServiceProcess, run_cli


@pytest.fixture
async def env(tmp_path: Path, nats_url: str, bus: Bus) -> AsyncIterator[dict[str, str]]:
    env = {
        "FLOTILLA_ROOT": str(tmp_path / "root"),
        "FLOTILLA_NATS__URLS": nats_url,
        "FLOTILLA_NODE_ID": "cli-node",
        "FLOTILLA_LOG_LEVEL": "warning",
    }
    service = ServiceProcess("content", env)
    await service.start(bus)
    yield {**os.environ, **env}
    await service.stop()


async def flotilla(env: dict[str, str], *args: str, stdin: bytes = b"") -> tuple[int, bytes, str]:
    return await run_cli(env, "content", *args, stdin=stdin)


async def test_ingest_list_label_get_remove(env: dict[str, str]) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    digest = digests.digest_of(data)
    code, out, err = await flotilla(
        env, "ingest", "upload-1", "--expected-digest", digest, stdin=data
    )
    assert (code, out.decode().strip()) == (0, digest), err
    code, out, _ = await flotilla(env, "label", digest, "containerd.io/gc.root=now")
    assert "containerd.io/gc.root=now" in out.decode()
    code, out, _ = await flotilla(env, "ls", 'labels."containerd.io/gc.root"==now')
    assert digest in out.decode()
    code, out, _ = await flotilla(env, "get", digest)
    assert out == data
    code, out, _ = await flotilla(env, "-n", "elsewhere", "ls")
    assert digest not in out.decode()
    assert (await flotilla(env, "rm", digest))[0] == 0
    code, _, err = await flotilla(env, "get", digest)
    assert code == 1
    assert err.startswith("flotilla: NotFound:")


async def test_wrong_digest_is_refused_and_the_ingest_kept(env: dict[str, str]) -> None:
    code, _, err = await flotilla(
        env, "ingest", "bad", "--expected-digest", "sha256:" + "0" * 64, stdin=b"hello"
    )
    assert code == 1
    assert err.startswith("flotilla: FailedPrecondition:")
