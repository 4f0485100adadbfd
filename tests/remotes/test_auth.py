"""Basic and bearer authentication against real registries, credentials from config.json."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import aiohttp
import pytest

from flotilla.common.errdefs import Unauthenticated
from flotilla.images import oci
from flotilla.images.reference import parse
from flotilla.images.remotes import Registries
from flotilla.testkit.fixtures import AUTH_PASSWORD, AUTH_USER, AuthRegistry


async def pull_busybox(registries: Registries, reg: AuthRegistry) -> bytes:
    r = registries.repository(parse(reg.ref("busybox")))
    desc = await r.resolve("latest")
    manifest = oci.decode_manifest(await r.fetch_document(desc), desc)
    await r.fetch_document(manifest.config)
    async with r.fetch(manifest.layers[0]) as chunks:
        return b"".join([c async for c in chunks])


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def docker_config(path: Path, host: str, entry: dict[str, str]) -> Path:
    path.write_text(json.dumps({"auths": {host: entry}}))
    return path


async def test_basic_auth(auth_registry: AuthRegistry, tmp_path: Path) -> None:
    client = Registries(credentials={auth_registry.host: auth_registry.credentials})
    try:
        assert await pull_busybox(client, auth_registry)
    finally:
        await client.close()
    auth = b64(f"{AUTH_USER}:{AUTH_PASSWORD}")
    config = docker_config(tmp_path / "config.json", f"http://{auth_registry.host}", {"auth": auth})
    client = Registries(docker_config=config)
    try:
        assert await pull_busybox(client, auth_registry)
    finally:
        await client.close()


async def test_basic_auth_refusals(auth_registry: AuthRegistry) -> None:
    host = auth_registry.host
    anonymous = Registries()
    wrong = Registries(credentials={host: (AUTH_USER, "wrong")})
    try:
        with pytest.raises(
            Unauthenticated,
            match=rf"^registry {host}: manifest busybox:latest: authentication required "
            r"\(no credentials\)$",
        ):
            await pull_busybox(anonymous, auth_registry)
        with pytest.raises(Unauthenticated, match=f"credentials of {AUTH_USER} refused"):
            await pull_busybox(wrong, auth_registry)
    finally:
        await anonymous.close()
        await wrong.close()


async def test_bearer_token_scoped_and_cached(token_registry: AuthRegistry) -> None:
    ts = token_registry.token_server
    assert ts is not None
    client = Registries(credentials={token_registry.host: token_registry.credentials})
    try:
        await pull_busybox(client, token_registry)
        await pull_busybox(client, token_registry)
    finally:
        await client.close()
    assert len(ts.requests) == 1  # one token served every request of both pulls
    [seen] = ts.requests
    assert (seen.user, seen.basic, seen.method) == (AUTH_USER, True, "GET")
    assert seen.scopes == ("repository:busybox:pull",)
    assert seen.service == ts.service


async def test_bearer_refusals(token_registry: AuthRegistry) -> None:
    ts = token_registry.token_server
    assert ts is not None
    host = token_registry.host
    anonymous = Registries()
    wrong = Registries(credentials={host: (AUTH_USER, "wrong")})
    try:
        with pytest.raises(Unauthenticated, match=r"refused anonymous access"):
            await pull_busybox(anonymous, token_registry)
        with pytest.raises(
            Unauthenticated, match=rf"token server .* refused the credentials of {AUTH_USER}"
        ):
            await pull_busybox(wrong, token_registry)
    finally:
        await anonymous.close()
        await wrong.close()
    assert [r.status for r in ts.requests] == [401, 401]


async def test_identity_token_from_config(token_registry: AuthRegistry, tmp_path: Path) -> None:
    ts = token_registry.token_server
    assert ts is not None
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            ts.realm,
            params={"service": ts.service, "offline_token": "true"},
            headers={"Authorization": "Basic " + b64(f"{AUTH_USER}:{AUTH_PASSWORD}")},
        ) as resp,
    ):
        refresh = (await resp.json())["refresh_token"]
    ts.requests.clear()
    config = docker_config(
        tmp_path / "config.json",
        token_registry.host,
        {"auth": b64("<token>:"), "identitytoken": refresh},
    )
    client = Registries(docker_config=config)
    try:
        await pull_busybox(client, token_registry)
    finally:
        await client.close()
    [seen] = ts.requests
    assert (seen.method, seen.grant_type, seen.user) == ("POST", "refresh_token", AUTH_USER)


async def test_repository_credentials(auth_registry: AuthRegistry) -> None:
    host = auth_registry.host
    client = Registries(credentials={host: (AUTH_USER, "wrong")})
    try:
        own = client.repository(
            parse(auth_registry.ref("busybox")), credentials=(AUTH_USER, AUTH_PASSWORD)
        )
        assert await own.resolve("latest")
        # The process's credentials still serve other repositories, and are still wrong.
        with pytest.raises(Unauthenticated, match=f"credentials of {AUTH_USER} refused"):
            await pull_busybox(client, auth_registry)
        wrong = client.repository(parse(auth_registry.ref("busybox")), credentials=("x", "y"))
        with pytest.raises(Unauthenticated, match="credentials of x refused"):
            await wrong.resolve("latest")
    finally:
        await client.close()
