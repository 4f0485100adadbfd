from __future__ import annotations

import base64
import json

import aiohttp
import pytest

from flotilla.testkit import ImageSet, local_registry, push_image
from flotilla.testkit import fixtures as kit
from flotilla.testkit._http import request
from flotilla.testkit._proc import CommandError, run
from flotilla.testkit.fixtures import AuthRegistry
from flotilla.testkit.oci import MANIFEST_ACCEPT
from flotilla.testkit.registry import basic_auth
from flotilla.testkit.token_server import token_server

# The kit's registry fixtures, for this module only.
auth_registry = kit.auth_registry
token_registry = kit.token_registry

CREDS = ("flotilla", "secret")


def _claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=="))
    return decoded


def _header(token: str) -> dict[str, object]:
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    return decoded


# Basic auth (htpasswd).


async def test_htpasswd_registry_wants_credentials() -> None:
    async with local_registry(htpasswd={"flotilla": "secret", "other": "pw"}) as reg:
        assert reg.credentials == CREDS
        anonymous = await request("GET", f"{reg.url}/v2/")
        assert anonymous.status == 401
        assert anonymous.headers["www-authenticate"].startswith("Basic realm=")
        good = {"Authorization": basic_auth("other", "pw")}
        assert (await request("GET", f"{reg.url}/v2/", headers=good)).status == 200
        wrong = {"Authorization": basic_auth("flotilla", "nope")}
        assert (await request("GET", f"{reg.url}/v2/", headers=wrong)).status == 401


async def test_push_to_htpasswd_registry_needs_creds(images: ImageSet) -> None:
    async with local_registry(htpasswd={"flotilla": "secret"}) as reg:
        with pytest.raises(CommandError):
            await push_image(images.busybox, reg.host)
        ref = await push_image(images.busybox, reg.host, creds=CREDS)
        assert ref == f"{reg.host}/busybox:latest"
        assert await reg.manifest_digest("busybox", "latest") == images.busybox.digest


async def test_auth_registry_fixture_serves_the_images_to_its_user(
    auth_registry: AuthRegistry,
) -> None:
    assert auth_registry.credentials == CREDS
    for image in auth_registry.published.images:
        assert auth_registry.ref(image.name) == f"{auth_registry.host}/{image.name}:latest"
        digest = await auth_registry.registry.manifest_digest(image.name, "latest")
        assert digest == image.digest
    url = f"{auth_registry.registry.url}/v2/busybox/manifests/latest"
    assert (await request("GET", url, headers={"Accept": MANIFEST_ACCEPT})).status == 401


async def test_skopeo_reads_the_auth_registry_only_with_creds(auth_registry: AuthRegistry) -> None:
    ref = f"docker://{auth_registry.ref('busybox')}"
    with pytest.raises(CommandError):
        await run("skopeo", "inspect", "--raw", "--tls-verify=false", ref)
    user, password = auth_registry.credentials
    raw = await run(
        "skopeo", "inspect", "--raw", "--tls-verify=false", f"--creds={user}:{password}", ref
    )
    assert json.loads(raw)["schemaVersion"] == 2


# Token auth.


async def test_token_flow_challenge_token_then_200(token_registry: AuthRegistry) -> None:
    reg, ts = token_registry.registry, token_registry.token_server
    assert ts is not None
    url = f"{reg.url}/v2/busybox/manifests/latest"
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers={"Accept": MANIFEST_ACCEPT}) as resp:
            assert resp.status == 401
            challenge = resp.headers["WWW-Authenticate"]
        assert challenge.startswith(f'Bearer realm="{ts.realm}"')
        assert f'service="{ts.service}"' in challenge
        assert 'scope="repository:busybox:pull"' in challenge
        params = {"service": ts.service, "scope": "repository:busybox:pull"}
        auth = {"Authorization": basic_auth(*CREDS)}
        async with http.get(ts.realm, params=params, headers=auth) as resp:
            assert resp.status == 200
            token = (await resp.json())["token"]
        headers = {"Accept": MANIFEST_ACCEPT, "Authorization": f"Bearer {token}"}
        async with http.get(url, headers=headers) as resp:
            assert resp.status == 200
            assert (
                resp.headers["Docker-Content-Digest"]
                == token_registry.published.images.busybox.digest
            )
    claims = _claims(token)
    assert claims["iss"] == ts.issuer
    assert claims["aud"] == ts.service
    assert claims["sub"] == "flotilla"
    assert claims["access"] == [{"type": "repository", "name": "busybox", "actions": ["pull"]}]
    assert _header(token)["alg"] == "ES256"
    assert [(r.user, r.scopes, r.basic) for r in ts.requests] == [
        ("flotilla", ("repository:busybox:pull",), True)
    ]


async def test_token_server_refuses_wrong_password_and_anonymous(
    token_registry: AuthRegistry,
) -> None:
    ts = token_registry.token_server
    assert ts is not None
    params = {"service": ts.service, "scope": "repository:busybox:pull"}
    async with aiohttp.ClientSession() as http:
        wrong = {"Authorization": basic_auth("flotilla", "wrong")}
        async with http.get(ts.realm, params=params, headers=wrong) as resp:
            assert resp.status == 401
        async with http.get(ts.realm, params=params) as resp:
            assert resp.status == 401
    assert [(r.user, r.basic, r.status) for r in ts.requests] == [
        (None, True, 401),
        (None, False, 401),
    ]


async def test_a_token_for_pull_does_not_let_a_push_through(
    token_registry: AuthRegistry,
) -> None:
    reg, ts = token_registry.registry, token_registry.token_server
    assert ts is not None
    async with aiohttp.ClientSession() as http:
        params = {"service": ts.service, "scope": "repository:busybox:pull"}
        auth = {"Authorization": basic_auth(*CREDS)}
        async with http.get(ts.realm, params=params, headers=auth) as resp:
            token = (await resp.json())["token"]
        url = f"{reg.url}/v2/busybox/blobs/uploads/"
        async with http.post(url, headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 401
            assert "push" in resp.headers["WWW-Authenticate"]


async def test_anonymous_pull_gets_pull_only() -> None:
    async with token_server({"u": "p"}, anonymous_pull=True) as ts, aiohttp.ClientSession() as http:
        params = {"service": ts.service, "scope": "repository:lib/app:pull,push"}
        async with http.get(ts.realm, params=params) as resp:
            assert resp.status == 200
            token = (await resp.json())["token"]
    assert _claims(token)["access"] == [
        {"type": "repository", "name": "lib/app", "actions": ["pull"]}
    ]
    assert ts.requests[0].user is None
    assert not ts.requests[0].basic


async def test_oauth_password_grant_and_refresh(token_registry: AuthRegistry) -> None:
    reg, ts = token_registry.registry, token_registry.token_server
    assert ts is not None
    form = {
        "grant_type": "password",
        "username": "flotilla",
        "password": "secret",
        "service": ts.service,
        "scope": "repository:busybox:pull repository:large:pull",
        "client_id": "flotilla",
    }
    async with aiohttp.ClientSession() as http:
        async with http.post(ts.realm, data=form) as resp:
            assert resp.status == 200
            body = await resp.json()
        headers = {"Accept": MANIFEST_ACCEPT, "Authorization": f"Bearer {body['access_token']}"}
        async with http.get(f"{reg.url}/v2/large/manifests/latest", headers=headers) as resp:
            assert resp.status == 200
        refresh = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
        async with http.post(ts.realm, data={**refresh, "service": ts.service}) as resp:
            assert resp.status == 200
        async with http.post(ts.realm, data={**form, "password": "wrong"}) as resp:
            assert resp.status == 401
    assert [(r.method, r.grant_type, r.user, r.status) for r in ts.requests] == [
        ("POST", "password", "flotilla", 200),
        ("POST", "refresh_token", "flotilla", 200),
        ("POST", "password", None, 401),
    ]
    assert ts.requests[0].scopes == ("repository:busybox:pull", "repository:large:pull")


async def test_skopeo_pulls_through_the_token_flow(token_registry: AuthRegistry) -> None:
    ts = token_registry.token_server
    assert ts is not None
    ref = f"docker://{token_registry.ref('multiarch')}"
    user, password = token_registry.credentials
    raw = await run(
        "skopeo", "inspect", "--raw", "--tls-verify=false", f"--creds={user}:{password}", ref
    )
    assert json.loads(raw)["manifests"]
    assert any(r.user == "flotilla" and r.basic for r in ts.requests)
