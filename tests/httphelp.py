"""HTTP clients for the suite's own servers, sharing one TLS context per process.

httpx loads the certificate authorities for every client it makes (about 70 ms of CPU here) and
the suite makes hundreds of clients. A client made here verifies an https server exactly as
httpx's default one does; it only loads the authorities once. `test_suite_rules` keeps the
suite's clients coming from here.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx

from lf_bulk.tls import tls_verification


def http_client(**options: Any) -> httpx.Client:
    """`httpx.Client(**options)` with the process's TLS context (the library's own)."""
    return httpx.Client(verify=tls_verification(), **options)


def http_request(
    method: str, url: str, *, timeout: float = 5.0, cookies: dict[str, str] | None = None,
    **options: Any,
) -> httpx.Response:  # fmt: skip
    """`httpx.request(method, url, ...)` with the process's TLS context."""
    with http_client(timeout=timeout, cookies=cookies) as client:
        return client.request(method, url, **options)


def http_get(url: str, **options: Any) -> httpx.Response:
    return http_request("GET", url, **options)


def http_post(url: str, **options: Any) -> httpx.Response:
    return http_request("POST", url, **options)


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (PEM files in `folder`), made by the openssl command."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key
