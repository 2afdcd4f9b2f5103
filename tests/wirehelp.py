"""A hostile API for wire-layer tests: a real HTTP server on 127.0.0.1 that answers canned bytes.

    with hostile_api({"/mall/bundle-groups/bundles": Canned(body=b'{...}')}) as api:
        invoke(["--env", "uat", "--base-url", api.base_url, ...])
        api.paths  # the raw request paths it received, in order

A route matches when the request path (without the query) ends with its key; an unmatched
request gets a canonical `1001` envelope.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PARTNER = "P000270"


@dataclass(frozen=True)
class Canned:
    body: bytes
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})


@dataclass
class HostileApi:
    base_url: str
    paths: list[str]

    def cli_args(self, home: str) -> list[str]:
        return [
            "--env",
            "uat",
            "--base-url",
            self.base_url,
            "--partner-code",
            PARTNER,
            "--home",
            home,
            "--no-progress",
        ]


@contextmanager
def hostile_api(routes: Mapping[str, Canned]) -> Iterator[HostileApi]:
    paths: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            paths.append(self.path)
            route = self.path.split("?", 1)[0]
            canned = next(
                (c for suffix, c in routes.items() if route.endswith(suffix)),
                Canned(b'{"code":"1001","message":"no such route","data":null}'),
            )
            self.send_response(canned.status)
            for name, value in canned.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(canned.body)))
            self.end_headers()
            self.wfile.write(canned.body)

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield HostileApi(f"http://127.0.0.1:{server.server_address[1]}", paths)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
