"""The console's gate, in front of every page (pure ASGI, so nothing reaches a page unchecked).

    Host check (loopback) -> static files (no data: no token needed) -> ?token=T sets the cookie
    and redirects without it -> cookie required (401) -> a POST: its body read within the size
    limit (413, counted while it streams) and its `csrf_token` field checked (403) -> the page

Every answer, refusals included, carries the security headers. The token is compared in constant
time and never written to a log or a page; the CSRF token is an HMAC of the cookie's value under
a secret that lives as long as the console process.
"""

from __future__ import annotations

import hashlib
import hmac
import html
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import Headers
from starlette.formparsers import MultiPartException
from starlette.requests import Request, cookie_parser

from lf_bulk.settings import is_loopback

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE_NAME = "lf_console"
TOKEN_PARAMETER = "token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD"})
STATIC_PREFIX = "/static/"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
REPLAY_CHUNK = 64 * 1024

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"frame-ancestors 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"x-frame-options", b"DENY"),
)


def csrf_token_for(secret: bytes, session: str) -> str:
    """The CSRF token of the browser holding cookie value `session`."""
    return hmac.new(secret, session.encode(), hashlib.sha256).hexdigest()


def session_of(scope: Scope) -> str:
    """The console cookie's value in the request (empty when there is none)."""
    return cookie_parser(Headers(scope=scope).get("cookie", "")).get(COOKIE_NAME, "")


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _page(title: str, text: str) -> bytes:
    """A refusal page: fixed words only, never account data (it is shown without a token)."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)} - lf-bulk console</title>"
        '<link rel="stylesheet" href="/static/console.css"></head>'
        f'<body><main id="main"><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>'
        "</main></body></html>"
    ).encode()


UNAUTHORIZED = (
    "Access token needed",
    "This console opens only with its access token: open the URL that `lf-bulk console` "
    "printed when it started (it ends with ?token=...). Your browser keeps a cookie after that.",
)
FORBIDDEN = (
    "Form refused",
    "This form did not come from this console's current page (its CSRF token is missing or "
    "wrong), so nothing was done. Go back, reload the page and send it again.",
)
BAD_HOST = (
    "Unknown host name",
    "This console answers only to the address it was started on (e.g. 127.0.0.1).",
)
BAD_FORM = ("Form unreadable", "The form could not be read, so nothing was done.")


async def _answer(
    send: Send, status: int, page: tuple[str, str], headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    body = _page(*page)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyTooLarge(Exception):
    pass


class SecurityMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str,
        csrf_secret: bytes,
        max_body_bytes: int,
        host: str,
        port: int = 0,
        secure_cookie: bool = False,
    ) -> None:
        self.app = app
        self._token = token
        self._csrf_secret = csrf_secret
        self._max_body = max_body_bytes
        # A page served on loopback answers only to loopback names: a web page elsewhere whose
        # name was rebound to 127.0.0.1 (DNS rebinding) sends its own name as Host.
        self._hosts = (LOOPBACK_NAMES | {host.lower()}) if is_loopback(host) else None
        self._secure = secure_cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        send = _with_security_headers(send)
        if not self._host_allowed(scope):
            await _answer(send, 400, BAD_HOST)
            return
        method = scope["method"]
        if method in SAFE_METHODS and scope["path"].startswith(STATIC_PREFIX):
            await self.app(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = [value for name, value in query if name == TOKEN_PARAMETER]
        if given:
            await self._exchange_token(scope, send, given[-1], query)
            return
        session = session_of(scope)
        if not session or not _same(session, self._token):
            await _answer(send, 401, UNAUTHORIZED)
            return
        if method not in SAFE_METHODS:
            if method != "POST":
                await _answer(send, 405, ("Method not allowed", "Only GET and POST are used."))
                return
            await self._checked_post(scope, receive, send, session)
            return
        await self.app(scope, receive, send)

    def _host_allowed(self, scope: Scope) -> bool:
        if self._hosts is None:
            return True
        host = Headers(scope=scope).get("host", "").lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name in self._hosts

    async def _exchange_token(
        self, scope: Scope, send: Send, given: str, query: list[tuple[str, str]]
    ) -> None:
        if not _same(given, self._token):
            await _answer(send, 401, UNAUTHORIZED)
            return
        path = scope["path"]
        if not path.startswith("/") or path.startswith("//"):
            path = "/"  # never a redirect to another site
        rest = urlencode([(k, v) for k, v in query if k != TOKEN_PARAMETER])
        location = path + (f"?{rest}" if rest else "")
        cookie = f"{COOKIE_NAME}={self._token}; HttpOnly; SameSite=Strict; Path=/"
        if self._secure:
            cookie += "; Secure"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", location.encode("latin-1", "replace")),
                    (b"set-cookie", cookie.encode()),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    async def _checked_post(self, scope: Scope, receive: Receive, send: Send, session: str) -> None:
        limit_text = f"{self._max_body / (1024 * 1024):.0f} MB"
        too_large = (
            "Too large",
            f"The form or upload is larger than this console accepts ({limit_text}); nothing "
            "was saved. Split the file, or send it with the `lf-bulk` command instead.",
        )
        length = Headers(scope=scope).get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self._max_body):
            await _answer(send, 413, too_large, [(b"connection", b"close")])
            return
        try:
            body = await _read_body(receive, self._max_body)
        except BodyTooLarge:
            await _answer(send, 413, too_large, [(b"connection", b"close")])
            return
        try:
            form_token = await _form_field(scope, body, CSRF_FIELD)
        except (MultiPartException, ValueError, UnicodeDecodeError):
            await _answer(send, 400, BAD_FORM)
            return
        if not form_token or not _same(form_token, csrf_token_for(self._csrf_secret, session)):
            await _answer(send, 403, FORBIDDEN)
            return
        await self.app(scope, _replay(body, receive), send)


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body, refused as soon as it passes `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BodyTooLarge  # nothing to answer: treated as refused
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives `body` again (in pieces), then whatever the client sends next."""
    pieces = [body[i : i + REPLAY_CHUNK] for i in range(0, len(body), REPLAY_CHUNK)] or [b""]

    async def replayed() -> Message:
        if pieces:
            chunk = pieces.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(pieces)}
        return await receive()

    return replayed


async def _form_field(scope: Scope, body: bytes, name: str) -> str:
    """The text field `name` of a urlencoded or multipart body ('' when it has none)."""
    content_type = Headers(scope=scope).get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return ""

    async def no_more() -> Message:
        return {"type": "http.disconnect"}

    request = Request(scope, _replay(body, no_more))
    async with request.form() as form:
        value = form.get(name)
        return value if isinstance(value, str) else ""


def _with_security_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {name.lower() for name, _ in headers}
            headers.extend(h for h in SECURITY_HEADERS if h[0] not in present)
            message = {**message, "headers": headers}
        await send(message)

    return sending
