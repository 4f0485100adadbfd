"""Platforms parsed, normalized and matched as containerd's ``platforms`` package does."""

from __future__ import annotations

import pytest

from flotilla.common import errdefs
from flotilla.images.platforms import Platform, default, normalize, only, parse


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", "linux/amd64"),
        ("linux/x86_64", "linux/amd64"),
        ("linux/aarch64", "linux/arm64"),
        ("linux/arm64/v8", "linux/arm64"),
        ("linux/arm", "linux/arm/v7"),
        ("linux/armhf", "linux/arm/v7"),
        ("linux/arm/6", "linux/arm/v6"),
        ("arm64", "linux/arm64"),
        ("arm/v6", "linux/arm/v6"),
        ("windows/amd64", "windows/amd64"),
        ("Linux/AMD64", "linux/amd64"),
        ("linux/amd64/v3", "linux/amd64/v3"),
    ],
)
def test_parse(text: str, expected: str) -> None:
    assert str(parse(text)) == expected


def test_an_os_alone_is_this_nodes_architecture() -> None:
    assert parse("linux") == default()
    assert default().os == "linux"


@pytest.mark.parametrize("text", ["", "a/b/c/d", "linux/../x", "linux/amd 64"])
def test_refused(text: str) -> None:
    with pytest.raises(errdefs.InvalidArgument, match="invalid platform"):
        parse(text)


def test_only_ranks_what_a_platform_runs() -> None:
    arm64 = only(parse("linux/arm64"))
    assert [str(p) for p in arm64.platforms] == [
        "linux/arm64", "linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5",
    ]  # fmt: skip
    assert arm64.rank(Platform("linux", "arm", "v7")) == 2
    assert arm64.rank(Platform("linux", "amd64")) is None
    amd64 = only(parse("linux/amd64/v3"))
    assert [str(p) for p in amd64.platforms] == [
        "linux/amd64/v3", "linux/amd64/v2", "linux/amd64", "linux/386",
    ]  # fmt: skip
    assert amd64.match(Platform("linux", "x86_64"))
    assert not amd64.match(Platform("windows", "amd64"))
    assert [str(p) for p in only(parse("linux/arm/v6")).platforms] == [
        "linux/arm/v6", "linux/arm/v5",
    ]  # fmt: skip
    assert normalize(Platform("linux", "amd64", "v1")) == Platform("linux", "amd64")
