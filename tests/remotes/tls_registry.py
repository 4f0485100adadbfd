"""A local registry over TLS: a test CA, a server certificate for 127.0.0.1, client certs."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import shutil
import ssl
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from flotilla.testkit._proc import Process, free_port, start_daemon, stop_process, wait_until
from flotilla.testkit.programs import require
from flotilla.testkit.registry import registry_config


@dataclass(frozen=True)
class TLSRegistry:
    """A registry on ``https://127.0.0.1:PORT``.

    Attributes:
        directory: its config, storage, and the PEM files below.
        port: its port.
        process: the registry process.
        ca: the CA that signed its certificate.
        client_cert: a client certificate and key (in one file) it accepts, if it wants one.
    """

    directory: Path
    port: int
    process: Process
    ca: Path
    client_cert: Path | None

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write(path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer if issuer is not None else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pki(directory: Path, client: bool) -> tuple[Path, Path, Path | None, Path | None]:
    """(CA file, server cert+key file, client CA file, client cert+key file)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = directory / "ca.pem"
    ca.write_bytes(
        _certificate("flotilla test CA", ca_key, None, ca=True).public_bytes(
            serialization.Encoding.PEM
        )
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = directory / "server.pem"
    cert = _certificate("127.0.0.1", server_key, ("flotilla test CA", ca_key), server=True)
    _write(server, server_key, cert)
    if not client:
        return ca, server, None, None
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_pem = directory / "client.pem"
    cert = _certificate("flotilla client", client_key, ("flotilla test CA", ca_key))
    _write(client_pem, client_key, cert)
    return ca, server, ca, client_pem


async def _ready(port: int, ca: Path, client: Path | None) -> bool:
    context = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        context.load_cert_chain(str(client))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    except OSError:
        return False
    writer.close()
    del reader
    return True


@asynccontextmanager
async def tls_registry(*, client_certs: bool = False) -> AsyncIterator[TLSRegistry]:
    """A registry serving TLS with a fresh CA; with ``client_certs``, it demands one."""
    require("docker-registry")
    directory = Path(tempfile.mkdtemp(prefix="flotilla-tls-registry-"))
    try:
        ca, server, client_ca, client = _pki(directory, client_certs)
        port = free_port()
        lines = [
            registry_config(directory / "storage", port).rstrip("\n"),
            "  tls:",
            f"    certificate: {server}",
            f"    key: {server}",
        ]
        if client_ca is not None:
            lines += ["    clientcas:", f"      - {client_ca}"]
        config = directory / "config.yml"
        config.write_text("\n".join(lines) + "\n")
        proc = await start_daemon(
            ["docker-registry", "serve", str(config)], directory / "registry.log"
        )
        try:
            async with asyncio.timeout(20):
                await wait_until(lambda: _ready(port, ca, client), what="TLS registry", proc=proc)
            yield TLSRegistry(directory, port, proc, ca, client)
        finally:
            await stop_process(proc)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
