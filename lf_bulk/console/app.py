"""`create_console`: the console's Starlette application, from a `ConsoleConfig`."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from lf_bulk.console.security import SecurityMiddleware
from lf_bulk.console.state import ConsoleState
from lf_bulk.engine import EngineOptions
from lf_bulk.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8770
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
STATIC_DIR = Path(__file__).resolve().parent / "static"


@dataclass(frozen=True)
class ConsoleConfig:
    """What a console serves and how. `report_dir`: the folder under which each of its jobs
    writes its reports (default `<home>/console/reports`). `host` is the address it is bound to
    (the Host header of every request is checked against it on loopback); `tls`: the browser
    reaches it over https (its own certificate, or a proxy that terminates TLS), so the cookie
    is `Secure`."""

    settings: Settings
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    report_dir: Path | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    tls: bool = False
    engine: EngineOptions = field(default_factory=EngineOptions)
    """How the console's runs are driven (polls, timeouts): the CLI's defaults."""


def page_routes() -> list[BaseRoute]:
    from lf_bulk.console import finance, home, newjob, reconcile_page, runs_pages

    routes: list[BaseRoute] = []
    for module in (home, runs_pages, newjob, reconcile_page, finance):
        routes.extend(module.routes)
    return routes


async def not_found(request: Request, exc: Exception) -> Response:
    from lf_bulk.console.templating import render

    context = {"title": "Not found", "message": "There is no such page here.", "advice": "",
               "back": "/"}  # fmt: skip
    return render(request, "error.html", context, status_code=404)


async def not_allowed(request: Request, exc: Exception) -> Response:
    from lf_bulk.console.templating import render

    context = {"title": "Not allowed", "message": "This page does not take that request.",
               "advice": "", "back": "/"}  # fmt: skip
    return render(request, "error.html", context, status_code=405)


async def server_error(request: Request, exc: Exception) -> Response:
    """A bug: the page says so plainly; the log has the detail, the page never a traceback."""
    from lf_bulk.console.templating import error_response

    log.error("console page %s failed", request.url.path, exc_info=exc)
    return error_response(request, exc, back="/")


def create_console(config: ConsoleConfig) -> Starlette:
    """The console's application; its API session (and the embedded sandbox, on `--env sandbox`)
    opens on first use and closes when the application shuts down (or `state.close()`)."""
    state = ConsoleState(config)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            state.close()

    routes = [
        *page_routes(),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: not_found, 405: not_allowed, Exception: server_error},
    )
    app.state.console = state
    app.add_middleware(
        SecurityMiddleware,
        token=config.token,
        csrf_secret=state.csrf_secret,
        max_body_bytes=config.max_upload_bytes + FORM_OVERHEAD_BYTES,
        host=config.host,
        port=config.port,
        secure_cookie=config.tls,
    )
    return app


# Room for a form's other fields and the multipart framing around an upload of the full size.
FORM_OVERHEAD_BYTES = 64 * 1024
