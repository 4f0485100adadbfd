"""Registry credentials: the given mapping, then Docker's config.json; token scopes."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from flotilla.common.errdefs import InvalidArgument
from flotilla.images.remotes.auth import basic_header, repository_scope, scope_key
from flotilla.images.remotes.credentials import (
    Credential,
    Credentials,
    host_key,
    load_docker_config,
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def write(path: Path, auths: object) -> Path:
    path.write_text(json.dumps({"auths": auths}))
    return path


def test_host_keys() -> None:
    assert host_key("https://index.docker.io/v1/") == "docker.io"
    assert host_key("registry-1.docker.io") == "docker.io"
    assert host_key("docker.io") == "docker.io"
    assert host_key("http://127.0.0.1:5000") == "127.0.0.1:5000"
    assert host_key("Quay.IO/v2/") == "quay.io"


def test_config_entries(tmp_path: Path) -> None:
    config = write(
        tmp_path / "config.json",
        {
            "https://index.docker.io/v1/": {"auth": b64("hub:pw:with:colons")},
            "127.0.0.1:5000": {"username": "u", "password": "p"},
            "ghcr.io": {"auth": b64("<token>:"), "identitytoken": "refresh"},
            "empty.io": {},
        },
    )
    found = load_docker_config(config)
    assert found == {
        "docker.io": Credential("hub", "pw:with:colons"),
        "127.0.0.1:5000": Credential("u", "p"),
        "ghcr.io": Credential("<token>", "", "refresh"),
    }
    assert "pw" not in repr(found["docker.io"])


def test_lookup_given_wins_and_hub_aliases(tmp_path: Path) -> None:
    config = write(tmp_path / "config.json", {"docker.io": {"auth": b64("a:b")}})
    creds = Credentials({"127.0.0.1:5000": ("x", "y")}, config)
    assert creds.lookup("registry-1.docker.io") == Credential("a", "b")
    assert creds.lookup("127.0.0.1:5000") == Credential("x", "y")
    assert creds.lookup("127.0.0.1:5001") is None
    given = Credentials({"docker.io": ("g", "h")}, config)
    assert given.lookup("registry-1.docker.io") == Credential("g", "h")
    assert Credentials(None, tmp_path / "missing.json").lookup("docker.io") is None


@pytest.mark.parametrize(
    ("auths", "message"),
    [
        ([], "auths must be an object"),
        ({"h": "x"}, r"auths\.h must be an object"),
        ({"h": {"auth": "%%%"}}, r"auths\.h\.auth is not base64"),
        ({"h": {"auth": b64("nocolon")}}, r"auths\.h\.auth is not user:secret"),
        ({"h": {"username": 1}}, r"auths\.h\.username must be a string"),
    ],
)
def test_malformed_config(tmp_path: Path, auths: object, message: str) -> None:
    config = write(tmp_path / "config.json", auths)
    with pytest.raises(InvalidArgument, match=rf"^docker config {config}: {message}"):
        load_docker_config(config)


def test_not_json(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text("{")
    with pytest.raises(InvalidArgument, match="not JSON"):
        Credentials(None, config).lookup("docker.io")


def test_scopes() -> None:
    assert repository_scope("library/busybox") == "repository:library/busybox:pull"
    assert repository_scope("me/app", push=True) == "repository:me/app:pull,push"
    assert scope_key(["repository:b:pull", "repository:a:pull repository:b:pull", ""]) == (
        "repository:a:pull repository:b:pull"
    )
    assert scope_key([]) == ""
    assert basic_header(Credential("u", "p")) == "Basic " + b64("u:p")
