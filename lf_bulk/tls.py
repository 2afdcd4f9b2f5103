"""How lf-bulk's HTTP clients verify servers: one TLS context per process and certificate store.

Loading the certificate authorities costs about 90 ms of CPU, and every client (a command may
make several, the console one per job, `doctor` one more, the sandbox's pusher its own) would
load them again.
"""

from __future__ import annotations

import functools
import os
import ssl


def tls_verification(verify_tls: bool = True, trust_env: bool = True) -> ssl.SSLContext | bool:
    """What to give httpx as `verify=`: the process's context for the current store, or False."""
    if not verify_tls:
        return False
    store = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")) if trust_env else None
    return _shared_tls_context(trust_env, store)


@functools.lru_cache(maxsize=8)
def _shared_tls_context(
    trust_env: bool, store: tuple[str | None, str | None] | None
) -> ssl.SSLContext:
    import httpx  # here: `lf-bulk --help` and the commands' help load no HTTP client

    # `store` is part of the key only: httpx reads SSL_CERT_FILE/SSL_CERT_DIR itself.
    return httpx.create_ssl_context(verify=True, trust_env=trust_env)
