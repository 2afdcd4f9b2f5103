"""Serving a console: until interrupted (`serve`, the command), or in a thread (`running_console`:
tests and demos)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from lf_bulk.console.app import ConsoleConfig, create_console
from lf_bulk.sandbox.server import PromptServer, base_url, bind_socket, served_in_thread

IDLE_TIMEOUT = 5
MAX_CONNECTIONS = 64


def uvicorn_config(
    app: Starlette, certfile: Path | None = None, keyfile: Path | None = None
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        lifespan="on",  # the shutdown closes the API sessions and stops the embedded sandbox
        log_config=None,
        log_level="warning",
        access_log=False,  # a request line would carry the access token
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=IDLE_TIMEOUT,
        timeout_graceful_shutdown=2,
        limit_concurrency=MAX_CONNECTIONS,
        ssl_certfile=str(certfile) if certfile else None,
        ssl_keyfile=str(keyfile) if keyfile else None,
    )


def console_url(host: str, port: int, token: str, *, tls: bool) -> str:
    """The URL to open once: the console's root with its access token."""
    url = base_url(host, port)
    if tls:
        url = url.replace("http://", "https://", 1)
    return f"{url}/?token={token}"


def serve(
    config: ConsoleConfig,
    *,
    certfile: Path | None = None,
    keyfile: Path | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the console until interrupted; `on_ready` gets the URL to open (with the token)."""
    settings_port = config.port
    uv_config = uvicorn_config(create_console(config), certfile, keyfile)
    uv_config.load()  # a bad certificate or key file fails here, before the port is bound
    sock = bind_socket(config.host, settings_port)
    try:
        if on_ready:
            port = sock.getsockname()[1]
            on_ready(console_url(config.host, port, config.token, tls=bool(certfile)))
        uvicorn.Server(uv_config).run(sockets=[sock])
    finally:
        sock.close()


@contextmanager
def running_console(config: ConsoleConfig) -> Iterator[str]:
    """A console served in a daemon thread on `config.host`:`config.port` (0: a free port);
    yields the URL to open (with the token); stopped, its sandbox with it, on exit."""
    server = PromptServer(uvicorn_config(create_console(config)))
    with served_in_thread(
        server, config.host, config.port, name="lf-bulk-console", what="the console",
        join_timeout=10,
    ) as port:  # fmt: skip
        yield console_url(config.host, port, config.token, tls=False)
