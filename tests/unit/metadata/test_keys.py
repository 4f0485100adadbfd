"""Keys from user strings: one token each, reversible, never colliding, never a wildcard."""

from __future__ import annotations

import re

import pytest

from flotilla.common import errdefs
from flotilla.metadata import keys
from flotilla.metadata.leases import expired
from flotilla.metadata.records import Lease

NAMES = ["k8s.io", "a=b", "a=3Db", "*", ">", "a b", "ünï/cødé:tag", "plain-name_1", "..", "=="]
TOKEN = re.compile(r"[A-Za-z0-9_=-]+")


@pytest.mark.parametrize("name", NAMES)
def test_a_name_is_one_safe_token_and_comes_back(name: str) -> None:
    token = keys.escape(name)
    assert TOKEN.fullmatch(token)
    assert keys.unescape(token) == name


def test_distinct_names_never_share_a_token() -> None:
    assert len({keys.escape(name) for name in NAMES}) == len(NAMES)


def test_join_and_split() -> None:
    key = keys.join("k8s.io", "docker.io/library/busybox:latest")
    assert key.count(".") == 1
    assert keys.split(key) == ["k8s.io", "docker.io/library/busybox:latest"]


def test_an_empty_name_is_refused() -> None:
    with pytest.raises(errdefs.InvalidArgument):
        keys.escape("")


@pytest.mark.parametrize(
    ("label", "is_expired"),
    [
        ("2000-01-01T00:00:00Z", True),
        ("2999-01-01T00:00:00Z", False),
        ("2000-01-01T00:00:00+02:00", True),
        ("not a time", False),
        ("", False),
    ],
)
def test_lease_expiry(label: str, is_expired: bool) -> None:
    from datetime import UTC, datetime

    labels = {"containerd.io/gc.expire": label} if label else {}
    assert expired(Lease(id="l", labels=labels), datetime.now(UTC)) is is_expired
