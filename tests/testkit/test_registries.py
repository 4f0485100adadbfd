from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import aiohttp
import pytest

from flotilla.testkit import (
    BuiltImage,
    FaultyRegistry,
    ImageSet,
    LocalRegistry,
    PublishedImages,
    faulty_registry,
    local_registry,
    push_image,
)
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
faulty = kit.faulty

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


# The faulty proxy.


def _layer(image: BuiltImage) -> tuple[str, bytes]:
    """The digest and bytes of ``image``'s largest layer."""
    blobs = image.layout / "blobs" / "sha256"
    manifest = json.loads((blobs / image.descriptor.digest.split(":")[1]).read_text())
    layer = max(manifest["layers"], key=lambda d: d["size"])
    return layer["digest"], (blobs / layer["digest"].split(":")[1]).read_bytes()


def _blob_url(proxy: FaultyRegistry, repo: str, digest: str) -> str:
    return f"{proxy.url}/v2/{repo}/blobs/{digest}"


async def _read_all(resp: aiohttp.ClientResponse) -> bytes:
    return await resp.content.read()


async def test_faulty_proxy_forwards_pushes_and_pulls(
    faulty: FaultyRegistry, registry: LocalRegistry, images: ImageSet
) -> None:
    ref = await push_image(images.busybox, faulty.host, repo="via/proxy")
    assert ref.startswith(faulty.host)
    assert await registry.manifest_digest("via/proxy", "latest") == images.busybox.digest
    digest, data = _layer(images.busybox)
    async with aiohttp.ClientSession() as http:
        async with http.get(_blob_url(faulty, "via/proxy", digest)) as resp:
            assert resp.status == 200
            assert await _read_all(resp) == data
        async with http.head(_blob_url(faulty, "via/proxy", digest)) as resp:
            assert resp.status == 200
            assert resp.content_length == len(data)
    methods = {method for method, _, _ in faulty.requests}
    assert {"POST", "PUT", "HEAD", "GET"} <= methods
    assert faulty.ranges[digest] == [None]


async def test_corrupt_flips_one_byte(
    faulty: FaultyRegistry, published_images: PublishedImages
) -> None:
    digest, data = _layer(published_images.images.busybox)
    faulty.corrupt(digest)
    async with (
        aiohttp.ClientSession() as http,
        http.get(_blob_url(faulty, "busybox", digest)) as resp,
    ):
        body = await _read_all(resp)
    assert len(body) == len(data)
    middle = len(data) // 2  # the byte it flips; all the others are the blob's
    assert body[middle] != data[middle]
    assert body[:middle] == data[:middle]
    assert body[middle + 1 :] == data[middle + 1 :]
    assert hashlib.sha256(body).hexdigest() != digest.split(":")[1]


async def test_truncate_sends_full_length_then_closes(
    faulty: FaultyRegistry, published_images: PublishedImages
) -> None:
    digest, data = _layer(published_images.images.busybox)
    faulty.truncate(digest, 1000)
    for _ in range(2):  # every time
        async with (
            aiohttp.ClientSession() as http,
            http.get(_blob_url(faulty, "busybox", digest)) as resp,
        ):
            assert resp.content_length == len(data)
            got = b""
            with pytest.raises(aiohttp.ClientPayloadError):
                async for chunk in resp.content.iter_any():
                    got += chunk
        assert got == data[:1000]


async def test_drop_after_then_resume_with_range(
    faulty: FaultyRegistry, published_images: PublishedImages
) -> None:
    digest, data = _layer(published_images.images.busybox)
    faulty.drop_after(digest, 5000, times=2)
    url = _blob_url(faulty, "busybox", digest)
    got = b""
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            headers = {"Range": f"bytes={len(got)}-"} if got else {}
            async with http.get(url, headers=headers) as resp:
                with pytest.raises(aiohttp.ClientPayloadError):
                    async for chunk in resp.content.iter_any():
                        got += chunk
        async with http.get(url, headers={"Range": f"bytes={len(got)}-"}) as resp:
            assert resp.status == 206
            got += await _read_all(resp)
    assert got == data
    assert faulty.ranges[digest] == [None, "bytes=5000-", "bytes=10000-"]


async def test_giant_manifest_has_the_size_type_and_digest(
    faulty: FaultyRegistry, published_images: PublishedImages
) -> None:
    size = 5 << 20
    faulty.giant_manifest("huge", size)
    url = f"{faulty.url}/v2/busybox/manifests/huge"
    async with aiohttp.ClientSession() as http:
        async with http.head(url) as resp:
            assert resp.status == 200
            assert resp.content_length == size
            digest = resp.headers["Docker-Content-Digest"]
        async with http.get(url, headers={"Accept": MANIFEST_ACCEPT}) as resp:
            assert resp.headers["Content-Type"] == "application/vnd.oci.image.manifest.v1+json"
            body = await _read_all(resp)
        # Other tags are the registry's own.
        latest = f"{faulty.url}/v2/busybox/manifests/latest"
        async with http.get(latest, headers={"Accept": MANIFEST_ACCEPT}) as resp:
            assert resp.status == 200
            assert resp.content_length is not None
            assert resp.content_length < 10_000
    assert len(body) == size
    assert json.loads(body)["schemaVersion"] == 2
    assert digest == f"sha256:{hashlib.sha256(body).hexdigest()}"


async def test_redirected_blobs_come_from_the_blob_host_without_credentials(
    auth_registry: AuthRegistry,
) -> None:
    digest, data = _layer(auth_registry.published.images.busybox)
    async with faulty_registry(auth_registry.registry.url) as proxy:
        proxy.redirect_blobs(True)
        url = _blob_url(proxy, "busybox", digest)
        auth = {"Authorization": basic_auth(*auth_registry.credentials)}
        async with aiohttp.ClientSession() as http:
            async with http.get(url, headers=auth, allow_redirects=False) as resp:
                assert resp.status == 307
                location = resp.headers["Location"]
            assert location.startswith(f"http://{proxy.blob_host}/")
            # aiohttp drops Authorization when a redirect changes the origin.
            async with http.get(url, headers=auth) as resp:
                assert resp.status == 200
                assert await _read_all(resp) == data
    assert proxy.redirected_headers
    assert all("Authorization" not in headers for headers in proxy.redirected_headers)
    assert "Authorization" in proxy.requests[-1].headers


async def test_require_basic_guards_the_proxy_not_the_blob_host(
    faulty: FaultyRegistry, published_images: PublishedImages
) -> None:
    digest, data = _layer(published_images.images.busybox)
    faulty.require_basic("proxy-user", "pw")
    faulty.redirect_blobs(True)
    url = _blob_url(faulty, "busybox", digest)
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Basic realm=")
        wrong = {"Authorization": basic_auth("proxy-user", "nope")}
        async with http.get(url, headers=wrong) as resp:
            assert resp.status == 401
        right = {"Authorization": basic_auth("proxy-user", "pw")}
        async with http.get(url, headers=right) as resp:
            assert resp.status == 200
            assert await _read_all(resp) == data
    assert [h.get("Authorization") for _, _, h in faulty.requests] == [
        None,
        wrong["Authorization"],
        right["Authorization"],
    ]
    assert len(faulty.redirected_headers) == 1
    assert "Authorization" not in faulty.redirected_headers[0]


async def test_skopeo_copies_through_the_proxy_and_sees_corruption(
    faulty: FaultyRegistry, published_images: PublishedImages, tmp_path: Path
) -> None:
    busybox = published_images.images.busybox
    digest, _ = _layer(busybox)
    src = f"docker://{faulty.host}/busybox:latest"
    args = ("skopeo", "--insecure-policy", "copy", "--quiet", "--src-tls-verify=false", src)
    await run(*args, f"oci:{tmp_path / 'good'}:latest")
    faulty.corrupt(digest)
    with pytest.raises(CommandError, match=r"[Dd]igest"):
        await run(*args, f"oci:{tmp_path / 'bad'}:latest")


async def test_proxy_logs_in_upstream_with_its_credentials(auth_registry: AuthRegistry) -> None:
    async with faulty_registry(
        auth_registry.registry.url, credentials=auth_registry.credentials
    ) as proxy:
        raw = await run(
            "skopeo", "inspect", "--raw", "--tls-verify=false",
            f"docker://{proxy.host}/busybox:latest",
        )  # fmt: skip
    assert json.loads(raw)["schemaVersion"] == 2
    assert all("Authorization" not in headers for _, _, headers in proxy.requests)


async def test_token_flow_and_push_pass_through_the_proxy(
    token_registry: AuthRegistry, images: ImageSet
) -> None:
    async with faulty_registry(token_registry.registry.url) as proxy:
        ref = await push_image(
            images.busybox, proxy.host, repo="again/busybox", creds=token_registry.credentials
        )
    assert ref == f"{proxy.host}/again/busybox:latest"
    digest = await token_registry.registry.manifest_digest("again/busybox", "latest")
    assert digest == images.busybox.digest
    assert any(h.get("Authorization", "").startswith("Bearer ") for _, _, h in proxy.requests)
    assert token_registry.token_server is not None
    assert token_registry.token_server.requests


async def test_manifest_faults_by_digest_hit_tag_and_digest_gets(
    faulty: FaultyRegistry, published_images: PublishedImages
) -> None:
    busybox = published_images.images.busybox
    blobs = busybox.layout / "blobs" / "sha256"
    manifest = (blobs / busybox.digest.split(":")[1]).read_bytes()
    faulty.truncate(busybox.digest, 10)
    headers = {"Accept": MANIFEST_ACCEPT}
    async with aiohttp.ClientSession() as http:
        for reference in ("latest", busybox.digest):
            url = f"{faulty.url}/v2/busybox/manifests/{reference}"
            async with http.head(url, headers=headers) as resp:
                assert resp.content_length == len(manifest)
            async with http.get(url, headers=headers) as resp:
                assert resp.content_length == len(manifest)
                with pytest.raises(aiohttp.ClientPayloadError):
                    await resp.read()
        faulty.reset()
        async with http.get(f"{faulty.url}/v2/busybox/manifests/latest", headers=headers) as r:
            assert await r.read() == manifest


async def test_fail_answers_matching_requests_with_an_error_then_forwards(
    faulty: FaultyRegistry, published_images: PublishedImages
) -> None:
    digest, data = _layer(published_images.images.busybox)
    faulty.fail(r"/blobs/sha256:", 503, method="GET", times=2)
    url = _blob_url(faulty, "busybox", digest)
    async with aiohttp.ClientSession() as http:
        async with http.head(url) as resp:
            assert resp.status == 200  # HEAD is not GET
        statuses = []
        for _ in range(3):
            async with http.get(url) as resp:
                statuses.append(resp.status)
                body = await resp.read()
    assert statuses == [503, 503, 200]
    assert body == data
    assert faulty.ranges[digest] == [None]  # the failed GETs never reached the registry


async def test_scopes_joined_with_spaces_count_as_several() -> None:
    async with token_server({"u": "p"}) as ts, aiohttp.ClientSession() as http:
        params = {"service": ts.service, "scope": "repository:a:pull repository:b:pull,push"}
        auth = {"Authorization": basic_auth("u", "p")}
        async with http.get(ts.realm, params=params, headers=auth) as resp:
            token = (await resp.json())["token"]
    assert ts.requests[0].scopes == ("repository:a:pull", "repository:b:pull,push")
    assert _claims(token)["access"] == [
        {"type": "repository", "name": "a", "actions": ["pull"]},
        {"type": "repository", "name": "b", "actions": ["pull", "push"]},
    ]


async def test_without_oauth_a_post_gets_405(token_registry: AuthRegistry) -> None:
    ts = token_registry.token_server
    assert ts is not None
    ts.oauth = False
    form = {"grant_type": "password", "username": "flotilla", "password": "secret"}
    async with aiohttp.ClientSession() as http, http.post(ts.realm, data=form) as resp:
        assert resp.status == 405
    assert [(r.method, r.status) for r in ts.requests] == [("POST", 405)]


async def test_expired_tokens_are_refused_by_the_registry(token_registry: AuthRegistry) -> None:
    reg, ts = token_registry.registry, token_registry.token_server
    assert ts is not None
    url, accept = f"{reg.url}/v2/busybox/manifests/latest", {"Accept": MANIFEST_ACCEPT}
    ts.ttl = -120  # past the registry's 60 s of leeway
    assert (await reg.get(url, headers=accept)).status == 401
    ts.ttl = 300
    assert (await reg.get(url, headers=accept)).status == 200
