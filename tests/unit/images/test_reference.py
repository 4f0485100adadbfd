"""Image references normalized as Docker and containerd do, and the errors for bad ones."""

from __future__ import annotations

import pytest

from flotilla.common import errdefs
from flotilla.images.reference import Reference, parse

DIGEST = "sha256:" + "e" * 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("me/app", "docker.io/me/app:latest"),
        ("docker.io/busybox", "docker.io/library/busybox:latest"),
        ("index.docker.io/library/busybox", "docker.io/library/busybox:latest"),
        ("localhost/app", "localhost/app:latest"),
        ("localhost:5000/app:v1", "localhost:5000/app:v1"),
        ("127.0.0.1:5000/a/b/c:x", "127.0.0.1:5000/a/b/c:x"),
        ("ghcr.io/o/r", "ghcr.io/o/r:latest"),
        (f"ghcr.io/o/r@{DIGEST}", f"ghcr.io/o/r@{DIGEST}"),
        (f"busybox:1@{DIGEST}", f"docker.io/library/busybox:1@{DIGEST}"),
        ("[::1]:5000/app", "[::1]:5000/app:latest"),
        ("a/b-c__d.e", "docker.io/a/b-c__d.e:latest"),
    ],
)
def test_normalized(text: str, expected: str) -> None:
    assert str(parse(text)) == expected


def test_parts_and_short_forms() -> None:
    ref = parse(f"localhost:5000/team/app:v2@{DIGEST}")
    assert ref == Reference("localhost:5000", "team/app", "v2", DIGEST)
    assert ref.name == "localhost:5000/team/app"
    assert ref.object == DIGEST
    assert parse("busybox").familiar == "busybox:latest"
    assert parse("me/app:1").familiar == "me/app:1"
    assert parse("ghcr.io/o/r:1").familiar == "ghcr.io/o/r:1"
    assert parse("busybox", default_tag=False).tag == ""


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("Busybox", "lowercase"),
        ("me/App:1", "lowercase"),
        ("busybox:", "bad tag"),
        ("busybox:-x", "bad tag"),
        ("busybox:" + "t" * 129, "bad tag"),
        ("busybox@sha256:nothex", "invalid reference format"),
        ("a//b", "invalid reference format"),
        ("a/b/", "invalid reference format"),
        ("-a", "invalid reference format"),
        ("e" * 64, "64-byte hexadecimal"),
        ("x" * 300, "longer than 255"),
        ("bad_host.io:port/a", "invalid reference format"),
        ("my_host.io/a", "bad registry"),
    ],
)
def test_refused(text: str, why: str) -> None:
    with pytest.raises(errdefs.InvalidArgument, match=why):
        parse(text)
