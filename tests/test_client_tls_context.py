"""Clients share the certificate authorities they verify servers with, loaded once per store."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from lf_bulk import client as client_module
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
    default = client_module._tls_verification(True, True)
    bundle = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")
    if not bundle.is_file():
        pytest.skip("no system certificate bundle to point SSL_CERT_FILE at")
    copy = tmp_path / "ca.pem"
    copy.write_bytes(bundle.read_bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(copy))
    other = client_module._tls_verification(True, True)
    assert other is not default
    assert client_module._tls_verification(False, True) is False
