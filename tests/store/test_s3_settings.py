"""S3 settings a user gives (CA bundle, insecure, virtual-hosted addressing) reach the real client.

TLS is checked against a real HTTPS endpoint with a certificate from a private CA made for the test,
so each case shows what a user sees: the request goes through, or it fails and says why. Addressing is
checked on the URL botocore is about to send (a ``before-send`` hook answers instead of the network,
since a virtual-hosted name such as ``bucket.localhost`` need not resolve here).
"""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import os
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore
import botocore.awsrequest
import botocore.loaders
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.store import PermanentStoreError, RetryPolicy, S3Settings, S3Store, StoreError
from shared.store.s3 import _data_loader

BODY = b"served over TLS"


@dataclass(frozen=True)
class Endpoint:
    url: str
    ca_bundle: Path  # the CA that signed the endpoint's certificate
    other_ca: Path  # a CA that did not


def _certificate(
    subject: str, key: Any, issuer: x509.Name | None, signer: Any, *, ca: bool
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    """An HTTPS server on 127.0.0.1 whose certificate is signed by a CA no system trusts."""
    folder = tmp_path_factory.mktemp("tls")
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("Ferry test CA", ca_key, None, ca_key, ca=True)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = _certificate("Another CA", other_key, None, other_key, ca=True)
    (folder / "other-ca.pem").write_bytes(other.public_bytes(serialization.Encoding.PEM))
    server = _certificate("127.0.0.1", server_key, ca.subject, ca_key, ca=False)
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(
        server.public_bytes(serialization.Encoding.PEM)
        + server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "server.pem")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    serving = threading.Thread(target=httpd.serve_forever, name="https-endpoint", daemon=True)
    serving.start()
    yield Endpoint(f"https://127.0.0.1:{httpd.server_address[1]}", folder / "ca.pem", folder / "other-ca.pem")
    httpd.shutdown()
    httpd.server_close()
    serving.join()


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data

    def read(self, *_: Any) -> bytes:
        return self.data


def _store(url: str, **settings: Any) -> S3Store:
    return S3Store(S3Settings(bucket="bucket", endpoint=url, access_key="a", secret_key="b",
                              retry=RetryPolicy(attempts=1), **settings))  # fmt: skip


@pytest.mark.parametrize(
    "case, bundle, insecure",
    [
        ("the CA bundle that signed the endpoint's certificate", "ca_bundle", False),
        ("insecure, without a CA bundle", None, True),
        ("insecure, with a CA bundle that did not sign it: insecure wins", "other_ca", True),
    ],
)
@pytest.mark.filterwarnings("ignore:Unverified HTTPS request:urllib3.exceptions.InsecureRequestWarning")
def test_tls_settings_reach_an_endpoint_signed_by_a_private_ca(
    https: Endpoint, case: str, bundle: str | None, insecure: bool
) -> None:
    ca_bundle = str(getattr(https, bundle)) if bundle else None
    store = _store(https.url, ca_bundle=ca_bundle, verify_tls=not insecure)
    try:
        assert store.get("config") == BODY
    finally:
        store.close()


@pytest.mark.parametrize(
    "case, bundle",
    [("verification is on by default", None), ("a CA bundle that did not sign the certificate", "other_ca")],
)
def test_an_endpoint_tls_cannot_verify_is_refused_with_the_reason(
    https: Endpoint, case: str, bundle: str | None
) -> None:
    store = _store(https.url, ca_bundle=str(getattr(https, bundle)) if bundle else None)
    try:
        with pytest.raises(StoreError, match="certificate verify failed"):
            store.get("config")
    finally:
        store.close()


@pytest.mark.parametrize(
    "case, path_style, url",
    [
        ("path style (the default, for SeaweedFS and MinIO)", True, "https://localhost:9443/bucket/config"),
        ("virtual-hosted style", False, "https://bucket.localhost:9443/config"),
    ],
)
def test_the_addressing_style_decides_the_url_of_each_request(case: str, path_style: bool, url: str) -> None:
    store = _store("https://localhost:9443", path_style=path_style)
    sent: list[str] = []

    def answer(request: Any, **_: Any) -> Any:
        sent.append(request.url)
        return botocore.awsrequest.AWSResponse(request.url, 200, {}, _Body(b"answered"))

    store.client.meta.events.register("before-send.s3", answer)
    try:
        assert store.get("config") == b"answered"
    finally:
        store.close()
    assert sent == [url]
    assert store.client.meta.config.s3["addressing_style"] == ("path" if path_style else "virtual")


@pytest.mark.parametrize(
    "case, content",
    [("a CA bundle that does not exist", None), ("a CA bundle that holds no certificate", b"not a PEM\n")],
)
def test_a_bad_ca_bundle_is_a_permanent_error_naming_it(
    tmp_path: Path, case: str, content: bytes | None
) -> None:
    bundle = tmp_path / "s3-ca.pem"
    if content is not None:
        bundle.write_bytes(content)
    with pytest.raises(PermanentStoreError, match=f"CA bundle {bundle}"):
        _store("https://127.0.0.1:9", ca_bundle=str(bundle)).get("config")


@pytest.mark.parametrize(
    "name",
    [
        "endpoints",
        "sdk-default-configuration",
        "s3/2006-03-01/service-2",
        "s3/2006-03-01/endpoint-rule-set-1",
    ],
)
def test_botocore_data_files_parse_to_what_botocore_reads_itself(name: str) -> None:
    """The store reads botocore's data with msgspec (faster start): same content, same key order."""
    path = os.path.join(os.path.dirname(botocore.__file__), "data", name)
    theirs = botocore.loaders.JSONFileLoader().load_file(path)
    ours = _data_loader(None).file_loader.load_file(path)
    assert theirs is not None and json.dumps(ours) == json.dumps(theirs)
    assert _data_loader(None).file_loader.load_file(path + "-absent") is None


def test_the_data_loader_knows_the_services_botocore_knows_and_loads_the_same_models(tmp_path: Path) -> None:
    """It checks one service's directory where botocore lists all 445; STS and SSO stay known (the
    credential chain builds their clients for IRSA and SSO profiles); a model under AWS_DATA_PATH wins."""
    ours, theirs = _data_loader(None), botocore.loaders.create_loader()
    for type_name in ("service-2", "endpoint-rule-set-1"):
        known = ours.list_available_services(type_name)
        assert "s3" in known and "sts" in known and "sso" in known and "no-such-service" not in known
        assert list(known) == theirs.list_available_services(type_name)
        for service in ("s3", "sts"):
            assert json.dumps(ours.load_service_model(service, type_name)) == json.dumps(
                theirs.load_service_model(service, type_name)
            )
    assert "s3" not in ours.list_available_services("waiters-9")
    newer = tmp_path / "s3" / "2099-01-01"
    newer.mkdir(parents=True)
    (newer / "service-2.json").write_text('{"metadata": {"apiVersion": "2099-01-01"}}')
    extended = _data_loader(f"/absent{os.pathsep}{tmp_path}")
    assert extended.load_service_model("s3", "service-2")["metadata"]["apiVersion"] == "2099-01-01"
