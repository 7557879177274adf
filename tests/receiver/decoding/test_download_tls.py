"""download() over https: the certificate is checked against the link's host name although the
connection goes to a pre-checked address, and https never downgrades to http."""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from receiver.decoding.download import DownloadError, DownloadPolicy, DownloadRefused, download
from tests.servers import free_port

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402


def self_signed(directory: Path, host: str) -> tuple[Path, Path]:
    """A certificate for `host` (its own authority) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / f"{host}.pem", directory / f"{host}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


async def host(request: Request) -> Response:
    return PlainTextResponse(request.headers["host"])


async def downgrade(request: Request) -> Response:
    return RedirectResponse(f"http://localhost:{request.url.port}/host", status_code=302)


app = Starlette(routes=[Route("/host", host), Route("/downgrade", downgrade)])


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """An https server on loopback with a certificate for `localhost`; yields port and CA."""
    cert_file, key_file = self_signed(tmp_path_factory.mktemp("tls"), "localhost")
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        ssl_certfile=str(cert_file),
        ssl_keyfile=str(key_file),
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield port, cert_file
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def test_verifies_the_certificate_for_the_links_host_name(
    tls_server: tuple[int, Path], tmp_path: Path
) -> None:
    port, ca = tls_server
    policy = DownloadPolicy(allow_private=True, ca_file=ca)

    download(f"https://localhost:{port}/host", tmp_path / "x", policy)

    assert (tmp_path / "x").read_text() == f"localhost:{port}"


def test_a_certificate_for_another_name_fails(tls_server: tuple[int, Path], tmp_path: Path) -> None:
    port, ca = tls_server
    policy = DownloadPolicy(allow_private=True, ca_file=ca, retries=0)

    with pytest.raises(DownloadError, match="CERTIFICATE_VERIFY_FAILED"):
        download(f"https://127.0.0.1:{port}/host", tmp_path / "x", policy)


def test_an_untrusted_certificate_fails(tls_server: tuple[int, Path], tmp_path: Path) -> None:
    port, _ = tls_server
    policy = DownloadPolicy(allow_private=True, retries=0)

    with pytest.raises(DownloadError, match="CERTIFICATE_VERIFY_FAILED"):
        download(f"https://localhost:{port}/host", tmp_path / "x", policy)


def test_refuses_a_redirect_from_https_to_http_even_when_http_is_allowed(
    tls_server: tuple[int, Path], tmp_path: Path
) -> None:
    port, ca = tls_server
    policy = DownloadPolicy(allow_private=True, allow_insecure=True, ca_file=ca)

    with pytest.raises(DownloadRefused, match="from https to http"):
        download(f"https://localhost:{port}/downgrade", tmp_path / "x", policy)
