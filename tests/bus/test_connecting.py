"""Ferry connects to a NATS that requires a token, a user and password, or TLS with a private CA —
and a wrong credential is refused at once with a reason, not retried forever."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sandbox.localstack import NatsServer
from shared.bus.connecting import BusSettings, connect
from shared.contracts.errors import PermanentError, TemporaryError


def _secured(tmp_path: Path, *args: str) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "secured", extra_args=args).start()
    yield server
    server.stop()


@pytest.fixture
def token_server(tmp_path: Path) -> Iterator[NatsServer]:
    yield from _secured(tmp_path, "--auth", "s3cret-token-value")


@pytest.fixture
def user_server(tmp_path: Path) -> Iterator[NatsServer]:
    yield from _secured(tmp_path, "--user", "ferry", "--pass", "ferry-password")


def _issue(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A private CA and a server certificate for 127.0.0.1 signed by it."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ferry-test-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nats")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


async def test_a_token_protected_nats_accepts_the_token_and_refuses_another(token_server: NatsServer) -> None:
    nc = await connect(BusSettings(url=token_server.url, token="s3cret-token-value"))
    assert nc.is_connected
    await nc.close()
    with pytest.raises(PermanentError, match="refused Ferry's credentials"):
        await connect(BusSettings(url=token_server.url, token="wrong"), max_reconnects=0)


async def test_user_and_password_auth(user_server: NatsServer) -> None:
    nc = await connect(BusSettings(url=user_server.url, user="ferry", password="ferry-password"))
    assert nc.is_connected
    await nc.close()
    with pytest.raises(PermanentError):
        await connect(BusSettings(url=user_server.url, user="ferry", password="nope"), max_reconnects=0)


async def test_tls_with_a_private_ca(tmp_path: Path) -> None:
    ca, cert, key = _issue(tmp_path)
    for server in _secured(tmp_path, "--tls", "--tlscert", str(cert), "--tlskey", str(key)):
        nc = await connect(BusSettings(url=server.url, tls_ca=str(ca)))
        assert nc.is_connected
        js = nc.jetstream()
        assert (await js.account_info()).streams == 0
        await nc.close()


async def test_a_missing_creds_file_is_named(nats_server: NatsServer) -> None:
    with pytest.raises(PermanentError, match="creds file '/nonexistent/ferry.creds' does not exist"):
        await connect(BusSettings(url=nats_server.url, creds="/nonexistent/ferry.creds"))


async def test_an_unreachable_server_is_a_temporary_failure(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "gone").start()
    url = server.url
    server.stop()
    with pytest.raises(TemporaryError, match="NATS"):
        await connect(BusSettings(url=url, connect_timeout=1), max_reconnects=0, within=5)
