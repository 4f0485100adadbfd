from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from flotilla.testkit.fixtures import (
    SMALL_LARGE_SIZE,
    containerd,
    image_cache,
    images,
    published_images,
    registry,
)

__all__ = [
    "SMALL_LARGE_SIZE",
    "containerd",
    "image_cache",
    "images",
    "published_images",
    "registry",
    "requires_root",
]

# `bench.*` lives at the repo root, outside every distribution.
REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

requires_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
