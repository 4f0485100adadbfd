from __future__ import annotations

import hashlib

import pytest

from flotilla.common import digests, namespaces
from flotilla.common.digests import Digest
from flotilla.common.errdefs import InvalidArgument

SHA256_EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_parse_valid() -> None:
    assert digests.parse(SHA256_EMPTY) == Digest("sha256", SHA256_EMPTY[7:])
    assert str(digests.parse(SHA256_EMPTY)) == SHA256_EMPTY
    sha512 = "sha512:" + hashlib.sha512(b"").hexdigest()
    assert digests.validate(sha512) == sha512


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "sha256",
        "sha256:",
        ":" + "a" * 64,
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "sha256:" + "A" * 64,
        "sha256:" + "g" * 64,
        "sha256:" + "a" * 63 + "\n",
        "sha512:" + "a" * 64,
        "md5:" + "a" * 32,
        "SHA256:" + "a" * 64,
        " sha256:" + "a" * 64,
    ],
)
def test_parse_rejects_and_names_the_value(bad: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid digest") as caught:
        digests.parse(bad)
    assert repr(bad) in str(caught.value)


def test_long_bad_values_are_cut() -> None:
    with pytest.raises(InvalidArgument) as caught:
        digests.parse("x" * 10_000)
    assert len(str(caught.value)) < 300


def test_hasher_and_digest_of() -> None:
    assert digests.digest_of(b"") == SHA256_EMPTY
    hashed = digests.hasher("sha512")
    hashed.update(b"abc")
    assert str(Digest.of(hashed)) == "sha512:" + hashlib.sha512(b"abc").hexdigest()
    with pytest.raises(InvalidArgument):
        digests.hasher("md5")


@pytest.mark.parametrize(
    "name", ["default", "k8s.io", "moby", "a", "A-b_c.d", "x" * 76, "1.2.3", "buildkit_history"]
)
def test_valid_namespaces(name: str) -> None:
    assert namespaces.validate(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "x" * 77, "-a", "a-", "a..b", "a/b", "a b", "ns\n", "ünï", ".hidden", "a__b", "a:b"],
)
def test_invalid_namespaces(name: str) -> None:
    with pytest.raises(InvalidArgument, match="namespace"):
        namespaces.validate(name)
