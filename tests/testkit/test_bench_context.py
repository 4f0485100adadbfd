from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from bench.harness import BenchContext

from .conftest import requires_root


@pytest.mark.root
@requires_root
async def test_context_fixtures_start_once_and_stop_with_the_stack(
    tmp_path: Path, image_cache: Path
) -> None:
    async with AsyncExitStack() as stack:
        ctx = BenchContext(quick=True, workdir=tmp_path, stack=stack, cache_dir=image_cache)
        published = await ctx.images()
        registry = await ctx.registry()
        assert await ctx.images() is published
        assert published.host == registry.host
        for name in ("busybox", "large", "multiarch"):
            digest = await registry.manifest_digest(name, "latest")
            assert digest == getattr(published.images, name).digest
        ctd = await ctx.containerd()
        await ctd.ctr("images", "pull", "--plain-http", published.ref("large"), namespace="b")
    assert not registry.directory.exists()
    assert not ctd.directory.exists()
