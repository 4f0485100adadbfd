"""Registry host configuration: containerd's certs.d/<host>/hosts.toml, read into endpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from flotilla.common.errdefs import InvalidArgument
from flotilla.images.remotes.hosts import ALL_CAPABILITIES, RegistryHost, hosts_for


def write(root: Path, directory: str, text: str) -> Path:
    d = root / directory
    d.mkdir(parents=True, exist_ok=True)
    (d / "hosts.toml").write_text(text)
    return d


def test_no_config_docker_hub() -> None:
    assert hosts_for("docker.io", None) == [RegistryHost("registry-1.docker.io")]


def test_no_config_custom_host_and_port(tmp_path: Path) -> None:
    assert hosts_for("quay.io", tmp_path) == [RegistryHost("quay.io")]
    [h] = hosts_for("myregistry.io:5000", tmp_path / "missing")
    assert h == RegistryHost("myregistry.io:5000", "https", "/v2", ALL_CAPABILITIES)
    assert not h.skip_verify
    assert not h.http_fallback


def test_mirrors_in_file_order_then_server(tmp_path: Path) -> None:
    write(
        tmp_path,
        "docker.io",
        """
server = "https://registry-1.docker.io"

[host."https://public-mirror.example.com"]
  capabilities = ["pull"]
[host."https://docker-mirror.internal"]
  capabilities = ["pull", "Resolve"]
[host."https://public-mirror.example.com".header]
  x-late = "still the first mirror"
""",
    )
    hosts = hosts_for("docker.io", tmp_path)
    assert [(h.scheme, h.host, h.path) for h in hosts] == [
        ("https", "public-mirror.example.com", "/v2"),
        ("https", "docker-mirror.internal", "/v2"),
        ("https", "registry-1.docker.io", "/v2"),
    ]
    assert [h.capabilities for h in hosts] == [
        frozenset({"pull"}),
        frozenset({"pull", "resolve"}),
        ALL_CAPABILITIES,
    ]
    assert hosts[0].headers == {"x-late": ("still the first mirror",)}


def test_without_server_the_registry_comes_last(tmp_path: Path) -> None:
    write(tmp_path, "docker.io", '[host."mirror.local:5000"]\ncapabilities = ["pull", "resolve"]\n')
    hosts = hosts_for("docker.io", tmp_path)
    assert [(h.scheme, h.host) for h in hosts] == [
        ("https", "mirror.local:5000"),
        ("https", "registry-1.docker.io"),
    ]


def test_server_override_with_path(tmp_path: Path) -> None:
    write(tmp_path, "ghcr.io", 'server = "https://proxy.example.com/ghcr/"\n')
    [h] = hosts_for("ghcr.io", tmp_path)
    assert (h.scheme, h.host, h.path) == ("https", "proxy.example.com", "/ghcr/v2")


def test_override_path(tmp_path: Path) -> None:
    write(
        tmp_path,
        "example.com",
        '[host."https://odd.example.com/api/registry"]\noverride_path = true\n',
    )
    mirror, server = hosts_for("example.com", tmp_path)
    assert (mirror.host, mirror.path, mirror.override_path) == (
        "odd.example.com",
        "/api/registry",
        True,
    )
    assert (server.host, server.path, server.override_path) == ("example.com", "/v2", False)


def test_plain_http() -> None:
    assert hosts_for("reg.local:5000", None, plain_http=True) == [
        RegistryHost("reg.local:5000", "http")
    ]
    # Docker Hub is https whatever the caller asks.
    assert hosts_for("docker.io", None, plain_http=True)[0].scheme == "https"


def test_http_with_tls_settings_tries_https_first() -> None:
    [h] = hosts_for("reg.local:5000", None, plain_http=True, skip_verify=True)
    assert (h.scheme, h.http_fallback, h.skip_verify) == ("https", True, True)
    [h] = hosts_for("reg.local:80", None, plain_http=True, skip_verify=True)
    assert (h.scheme, h.http_fallback) == ("http", False)


@pytest.mark.parametrize(
    ("registry", "scheme", "fallback", "skip"),
    [
        ("localhost:5000", "https", True, True),
        ("127.0.0.1:5000", "https", True, True),
        ("[::1]:5000", "https", True, True),
        ("localhost", "https", False, True),
        ("localhost:443", "https", False, True),
        ("localhost:80", "http", False, False),
    ],
)
def test_localhost_defaults(registry: str, scheme: str, fallback: bool, skip: bool) -> None:
    [h] = hosts_for(registry, None)
    assert (h.host, h.scheme, h.http_fallback, h.skip_verify) == (registry, scheme, fallback, skip)


def test_localhost_with_plain_http_is_plain() -> None:
    [h] = hosts_for("localhost:5000", None, plain_http=True)
    assert (h.scheme, h.http_fallback, h.skip_verify) == ("http", False, False)


def test_skip_verify(tmp_path: Path) -> None:
    write(
        tmp_path,
        "docker.io",
        """
server = "https://registry-1.docker.io"
[host."http://192.168.31.250:5000"]
  capabilities = ["pull", "resolve", "push"]
  skip_verify = true
[host."https://strict.example.com"]
  skip_verify = false
""",
    )
    insecure, strict, server = hosts_for("docker.io", tmp_path, skip_verify=True)
    assert (insecure.scheme, insecure.skip_verify, insecure.http_fallback) == ("https", True, True)
    assert not strict.skip_verify  # the file wins over the caller's default
    assert server.skip_verify
    assert not hosts_for("docker.io", tmp_path)[2].skip_verify


def test_ca_as_string_and_list(tmp_path: Path) -> None:
    d = write(
        tmp_path,
        "example.com",
        """
ca = "root.pem"
[host."https://a.example.com"]
  ca = ["a.pem", "/etc/certs/special.pem"]
""",
    )
    a, server = hosts_for("example.com", tmp_path)
    assert a.ca == (d / "a.pem", Path("/etc/certs/special.pem"))
    assert server.ca == (d / "root.pem",)
    assert server.host == "example.com"


def test_client_cert_forms(tmp_path: Path) -> None:
    d = write(
        tmp_path,
        "example.com",
        """
[host."https://one.example.com"]
  client = "client.pem"
[host."https://list.example.com"]
  client = ["c1.pem", "/etc/certs/c2.pem"]
[host."https://pairs.example.com"]
  client = [["/etc/certs/client.cert", "client.key"], ["/etc/certs/client.pem", ""]]
""",
    )
    one, many, pairs, _ = hosts_for("example.com", tmp_path)
    assert one.client_certs == ((d / "client.pem", None),)
    assert many.client_certs == ((d / "c1.pem", None), (Path("/etc/certs/c2.pem"), None))
    assert pairs.client_certs == (
        (Path("/etc/certs/client.cert"), d / "client.key"),
        (Path("/etc/certs/client.pem"), None),
    )


def test_headers_string_and_list(tmp_path: Path) -> None:
    write(
        tmp_path,
        "example.com",
        """
[header]
  x-custom-1 = "custom header"
  x-custom-2 = ["part a", "part b"]
""",
    )
    [h] = hosts_for("example.com", tmp_path)
    assert h.headers == {"x-custom-1": ("custom header",), "x-custom-2": ("part a", "part b")}


def test_port_directory_forms(tmp_path: Path) -> None:
    write(tmp_path, "reg.local:5000", 'server = "https://colon.example.com"\n')
    assert hosts_for("reg.local:5000", tmp_path)[0].host == "colon.example.com"
    write(tmp_path, "reg.local_5000_", 'server = "https://underscore.example.com"\n')
    assert hosts_for("reg.local:5000", tmp_path)[0].host == "underscore.example.com"


def test_default_directory_fallback(tmp_path: Path) -> None:
    write(tmp_path, "_default", '[host."https://registry.example.com"]\ncapabilities = ["pull"]\n')
    write(tmp_path, "quay.io", 'server = "https://quay.example.com"\n')
    mirror, server = hosts_for("ghcr.io", tmp_path)
    assert (mirror.host, mirror.capabilities) == ("registry.example.com", frozenset({"pull"}))
    assert server == RegistryHost("ghcr.io")
    assert [h.host for h in hosts_for("quay.io", tmp_path)] == ["quay.example.com"]


def test_directory_without_hosts_toml_uses_docker_cert_files(tmp_path: Path) -> None:
    d = tmp_path / "example.com"
    d.mkdir()
    for name in ("ca.crt", "client.cert", "client.key", "other.cert"):
        (d / name).write_text("")
    (tmp_path / "_default").mkdir()
    write(tmp_path, "_default", '[host."https://ignored.example.com"]\n')
    [h] = hosts_for("example.com", tmp_path)
    assert h.host == "example.com"
    assert h.ca == (d / "ca.crt",)
    assert h.client_certs == ((d / "client.cert", d / "client.key"), (d / "other.cert", None))


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("server = [", "hosts.toml"),
        ("server = 5", "server"),
        ("skip_verify = 'yes'", "skip_verify"),
        ('[host."https://m"]\ncapabilities = ["pull", "fly"]', 'host."https://m".capabilities'),
        ('[host."https://m"]\ncapabilities = "pull"', 'host."https://m".capabilities'),
        ('[host."https://m"]\nca = 1', 'host."https://m".ca'),
        ('client = [["a"]]', "client"),
        ("[header]\nx = 1", "header.x"),
        ('server = "ftp://m"', "server"),
        ("host = 1", "host"),
    ],
)
def test_malformed_file(tmp_path: Path, text: str, key: str) -> None:
    d = write(tmp_path, "example.com", text)
    with pytest.raises(InvalidArgument) as err:
        hosts_for("example.com", tmp_path)
    assert str(d / "hosts.toml") in str(err.value)
    assert key in str(err.value)


@pytest.mark.parametrize("registry", ["", "..", "a/b"])
def test_bad_registry_name(tmp_path: Path, registry: str) -> None:
    with pytest.raises(InvalidArgument):
        hosts_for(registry, tmp_path)
