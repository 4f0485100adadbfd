"""WWW-Authenticate challenges as containerd's auth.ParseAuthHeader reads them."""

from __future__ import annotations

from flotilla.images.remotes.challenge import Challenge, parse_challenges


def test_docker_hub_bearer() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull"'
    )
    assert parse_challenges([header]) == [
        Challenge(
            "bearer",
            {
                "realm": "https://auth.docker.io/token",
                "service": "registry.docker.io",
                "scope": "repository:library/busybox:pull",
            },
        )
    ]


def test_basic_and_bearer_bearer_first() -> None:
    found = parse_challenges(['Basic realm="Registry Realm"', 'Bearer realm="https://t/x"'])
    assert [c.scheme for c in found] == ["bearer", "basic"]
    assert found[1].params == {"realm": "Registry Realm"}


def test_several_challenges_in_one_value() -> None:
    found = parse_challenges(['Basic realm="a", Bearer realm="https://t", service=s'])
    assert found == [
        Challenge("bearer", {"realm": "https://t", "service": "s"}),
        Challenge("basic", {"realm": "a"}),
    ]


def test_case_escapes_spaces_and_unknown_schemes() -> None:
    found = parse_challenges(
        [
            'Digest realm="x", nonce="y"',
            'BEARER  Realm = "a \\"quoted\\" realm" ,  Error="invalid_token"',
            "Negotiate",
        ]
    )
    assert found == [Challenge("bearer", {"realm": 'a "quoted" realm', "error": "invalid_token"})]


def test_malformed_values() -> None:
    assert parse_challenges([""]) == []
    assert parse_challenges(["Basic"]) == [Challenge("basic", {})]
    # An unterminated quote ends parsing; what came before stays.
    assert parse_challenges(['Bearer realm="https://t", scope="oops']) == [
        Challenge("bearer", {"realm": "https://t"})
    ]
