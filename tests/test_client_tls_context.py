"""Clients share the certificate authorities they verify servers with, loaded once per store."""

from __future__ import annotations

import contextlib
import http.server
import shutil
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from httphelp import self_signed_certificate

from lf_bulk import doctor, tls
from lf_bulk.client import LinksfieldClient


def _verification(made: LinksfieldClient) -> object:
    transport = made._http._transport
    return transport._pool._ssl_context  # type: ignore[attr-defined]


def test_clients_of_one_process_share_one_tls_context() -> None:
    first = LinksfieldClient("https://api.test/topup", "P000270")
    second = LinksfieldClient("https://api.test/topup", "P000270")
    try:
        shared = _verification(first)
        assert isinstance(shared, ssl.SSLContext)
        assert shared.verify_mode == ssl.CERT_REQUIRED and shared.check_hostname
        assert _verification(second) is shared
    finally:
        first.close()
        second.close()


def test_another_certificate_store_gets_its_own_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = tls.tls_verification(True, True)
    bundle = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")
    if not bundle.is_file():
        pytest.skip("no system certificate bundle to point SSL_CERT_FILE at")
    copy = tmp_path / "ca.pem"
    copy.write_bytes(bundle.read_bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(copy))
    other = tls.tls_verification(True, True)
    assert other is not default
    assert tls.tls_verification(False, True) is False


@contextlib.contextmanager
def _https_server(tmp_path: Path) -> Iterator[str]:
    """A plain HTTPS server on 127.0.0.1 with a self-signed certificate; yields its URL."""
    cert, key = self_signed_certificate(tmp_path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_doctors_clock_check_verifies_tls_as_the_client_does(tmp_path: Path) -> None:
    with _https_server(tmp_path) as url:
        unverified = LinksfieldClient(url, "P000270", verify_tls=False)
        verified = LinksfieldClient(url, "P000270")
        try:
            read = doctor._clock(unverified)
            refused = doctor._clock(verified)
        finally:
            unverified.close()
            verified.close()
    # The handler answers HEAD with 501, and every answer carries the server's Date.
    assert read.passed and "local clock is" in read.detail
    assert not refused.passed and "ConnectError" in refused.detail
