"""The sandbox as an ASGI application: contract-v1 endpoints, and the Vshop and Payment ones of
contract v2 (`vshop.py`), behind a gate of limits and faults.

    request -> ApiGate (rate limit, in-flight limit, daily quota, fault dice, request logs)
            -> endpoint -> state

Endpoints check the global parameters and the signature exactly as a client builds them with
`wire.build_request`, then call `SandboxState` in a worker thread. Contract-v1 answers use the
canonical envelope, with the HTTP status `wire.HTTP_STATUS_OF_CODE` pairs with its code; Vshop and
Payment answers (the gate's own refusals included) use the Vshop envelope.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lf_bulk import wire
from lf_bulk.models import Operation, Service
from lf_bulk.sandbox import cards, vshop
from lf_bulk.sandbox.faults import Fate, FaultDice, FaultSpec, coerce_faults
from lf_bulk.sandbox.params import int_param, request_params
from lf_bulk.sandbox.state import MutationRecord, QuotaSpent, Refusal, SandboxState, VshopCall
from lf_bulk.signing import SIGN_FIELD, verify

MAX_BODY_BYTES = 4 * 1024 * 1024
DEFAULT_PAGE_SIZE = 100


def create_app(
    state: SandboxState,
    faults: FaultSpec | str | None = None,
    *,
    profile: wire.WireProfile = wire.CONTRACT_V1,
) -> Starlette:
    spec = coerce_faults(faults)
    served = served_routes(profile)
    contract_v1, vshop_and_payment = (
        _Endpoints(state, profile),
        vshop.VshopEndpoints(state, profile),
    )
    # Each endpoint is served by the method of the same name of its contract's endpoints.
    routes = [
        Route(
            route.path,
            getattr(vshop_and_payment if route.vshop else contract_v1, route.name),
            methods=[route.method],
        )
        for route in served
    ]
    vshop_paths = frozenset(route.path for route in served if route.vshop)

    async def refusal(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refusal)
        if request.url.path in vshop_paths:
            return vshop.error_response(exc.code, exc.message, exc.data)
        return _error_response(exc.code, exc.message, exc.data)

    async def internal_error(request: Request, exc: Exception) -> Response:
        if request.url.path in vshop_paths:
            return vshop.error_response(wire.CODE_INTERNAL, "internal error")
        return _error_response(wire.CODE_INTERNAL, "internal error")

    app = Starlette(
        routes=routes,
        middleware=[Middleware(ApiGate, state=state, spec=spec, routes=served)],
        exception_handlers={
            Refusal: refusal,
            404: _no_such_endpoint,
            405: _no_such_endpoint,
            Exception: internal_error,
        },
    )
    # Built now, not by the first request: two first requests served at once from two threads
    # (the tests' in-process transport) would each build a gate, each with its own count of
    # answers, and `drop_first=1` would drop two.
    app.middleware_stack = app.build_middleware_stack()
    return app


@dataclass(frozen=True)
class ServedRoute:
    name: str  # the wire profile's field name: "add", "verify", ...
    endpoint: wire.Endpoint
    pattern: re.Pattern[str] = field(compare=False)

    @property
    def method(self) -> str:
        return self.endpoint.method

    @property
    def path(self) -> str:
        return self.endpoint.path

    @property
    def vshop(self) -> bool:
        """A Vshop or Payment endpoint (contract v2): the Vshop envelope."""
        return self.endpoint.service is not Service.TOPUP

    @property
    def logs_mutation(self) -> bool:
        """Add and remove: recorded in the state's mutation log."""
        return self.name in ("add", "remove")

    @property
    def mutating(self) -> bool:
        """Acts on the world: counted by `drop_first`, held by `hold`."""
        return self.logs_mutation or self.name in vshop.MUTATING


def served_routes(profile: wire.WireProfile) -> list[ServedRoute]:
    return [
        ServedRoute(name, endpoint, _path_pattern(endpoint.path))
        for name, endpoint in profile.endpoints().items()
    ]


# ---------------------------------------------------------------- endpoints


@dataclass(frozen=True)
class _Call:
    partner: str
    params: Mapping[str, Any]
    path_params: Mapping[str, str]


class _Endpoints:
    def __init__(self, state: SandboxState, profile: wire.WireProfile) -> None:
        self.state = state
        self.profile = profile

    async def groups(self, request: Request) -> Response:
        call = await self._accept(request)
        return await _answer(self.state.groups, call.partner)

    async def members(self, request: Request) -> Response:
        call = await self._accept(request)
        page_no = int_param(call.params, "page_no", default=1, low=1)
        page_size = int_param(
            call.params,
            "page_size",
            default=DEFAULT_PAGE_SIZE,
            low=1,
            high=self.profile.max_page_size,
        )
        group_id = call.path_params["group_id"]
        return await _answer(self.state.member_page, call.partner, group_id, page_no, page_size)

    async def add(self, request: Request) -> Response:
        return await self._submit(request, Operation.ADD)

    async def remove(self, request: Request) -> Response:
        return await self._submit(request, Operation.REMOVE)

    async def async_result(self, request: Request) -> Response:
        call = await self._accept(request)
        request_id = call.path_params["request_id"]
        return await _answer(self.state.async_result, call.partner, request_id)

    async def order(self, request: Request) -> Response:
        call = await self._accept(request)
        key, value = _order_key(call.params)
        orders = await run_in_threadpool(self.state.find_orders, call.partner, key, value)
        return _envelope({"orders": orders})

    async def _submit(self, request: Request, operation: Operation) -> Response:
        call = await self._accept(request)
        iccids = _iccids_param(call.params)
        group_id = call.path_params["group_id"]
        return await _answer(self.state.submit, call.partner, operation, group_id, iccids)

    async def _accept(self, request: Request) -> _Call:
        """The global parameters, checked in the order a caller can fix them: 1001, 1002, 1003."""
        params = await request_params(request)
        for name in ("partnerCode", "version", SIGN_FIELD):
            if not isinstance(params.get(name), str) or not params[name]:
                raise Refusal(wire.CODE_INVALID_PARAMETER, f"missing parameter {name}")
        if params["version"] != self.profile.version:
            raise Refusal(
                wire.CODE_INVALID_PARAMETER,
                f"unsupported version {params['version']!r}; use {self.profile.version!r}",
            )
        partner = params["partnerCode"]
        if partner not in self.state.rules.partners:
            raise Refusal(wire.CODE_UNKNOWN_PARTNER, f"unknown partnerCode {partner}")
        path_params = {k: str(v) for k, v in request.path_params.items()}
        signed = wire.signed_params(self.profile, params, path_params)
        if not verify(signed, params[SIGN_FIELD]):
            raise Refusal(wire.CODE_BAD_SIGNATURE, "signature mismatch")
        return _Call(partner, params, path_params)


async def _answer(function: Callable[..., Any], *args: Any) -> Response:
    return _envelope(await run_in_threadpool(function, *args))


def _envelope(data: Any) -> Response:
    return JSONResponse(wire.make_envelope(wire.CODE_OK, "success", data))


def _iccids_param(params: Mapping[str, Any]) -> list[str]:
    iccids = params.get("iccids")
    if not isinstance(iccids, list) or not all(isinstance(i, str) and i for i in iccids):
        raise Refusal(wire.CODE_INVALID_PARAMETER, "iccids must be a list of ICCID strings")
    return iccids


def _order_key(params: Mapping[str, Any]) -> tuple[str, str]:
    """The documented precedence: the first non-empty of purchase_order_id, order_id, sim_id."""
    for key in wire.ORDER_KEYS:
        value = params.get(key)
        if value is not None and value != "":
            return key, str(value)
    wanted = ", ".join(wire.ORDER_KEYS)
    raise Refusal(wire.CODE_INVALID_PARAMETER, f"give one of {wanted}")


def _error_response(
    code: str, message: str, data: Any = None, status: int | None = None
) -> Response:
    status = status or wire.HTTP_STATUS_OF_CODE.get(code, 200)
    return JSONResponse(wire.make_envelope(code, message, data), status_code=status)


async def _no_such_endpoint(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = f"no endpoint {request.method} {request.url.path}"
    return _error_response(wire.CODE_INVALID_PARAMETER, message, status=exc.status_code)


# ---------------------------------------------------------------- the gate


class RateLimiter:
    """Per client: a token bucket (`rate` a second, `capacity` at most) and an in-flight cap.

    Used from the event loop only, so it needs no lock.
    """

    def __init__(
        self,
        rate: float,
        capacity: float,
        concurrency: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.capacity = capacity
        self.concurrency = concurrency
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)
        self._in_flight: dict[str, int] = {}

    def acquire(self, client: str) -> int | None:
        """None when admitted (call `release` afterwards), else the seconds to wait (>= 1)."""
        if self._in_flight.get(client, 0) >= self.concurrency:
            return 1
        now = self._clock()
        tokens, at = self._buckets.get(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.rate)
        if tokens < 1.0:
            self._buckets[client] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / self.rate))
        self._buckets[client] = (tokens - 1.0, now)
        self._in_flight[client] = self._in_flight.get(client, 0) + 1
        return None

    def release(self, client: str) -> None:
        left = self._in_flight.get(client, 1) - 1
        if left:
            self._in_flight[client] = left
        else:
            self._in_flight.pop(client, None)


@dataclass
class _Reply:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""

    @classmethod
    def of(cls, response: Response) -> _Reply:
        return cls(response.status_code, list(response.raw_headers), bytes(response.body))

    def envelope(self) -> Mapping[str, Any]:
        decoded = wire.decode_json(self.body.decode("utf-8", "replace"))
        return decoded if isinstance(decoded, dict) else {}


@dataclass
class _Collector:
    """Buffers what the application sends, so the gate can log it first and then maybe drop it."""

    reply: _Reply = field(default_factory=lambda: _Reply(500, []))

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.reply = _Reply(message["status"], list(message.get("headers", [])))
        elif message["type"] == "http.response.body":
            self.reply.body += message.get("body", b"")


@dataclass(frozen=True)
class _Exchange:
    at: float
    route: ServedRoute
    scope: Scope
    path_params: Mapping[str, str]
    body: bytes
    client: str

    def params(self) -> Mapping[str, Any]:
        """The request's parameters as far as they can be read (for logs and the quota)."""
        if self.scope["method"] == "GET":
            query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
            return {key: values[-1] for key, values in query.items()}
        decoded = wire.decode_json(self.body.decode("utf-8", "replace")) if self.body else None
        return decoded if isinstance(decoded, dict) else {}

    def record(self, reply: _Reply, *, dropped: bool) -> MutationRecord:
        iccids = _iccids_in(self.params())
        data = reply.envelope().get("data")
        request_id = data.get("request_id") if isinstance(data, dict) else None
        return MutationRecord(
            at=self.at,
            method=self.scope["method"],
            path=self.scope["path"],
            group_id=self.path_params.get("group_id", ""),
            iccid_count=len(iccids),
            iccids=tuple(iccids),
            request_id=str(request_id or ""),
            http_status=reply.status,
            code=str(reply.envelope().get("code", "")),
            dropped=dropped,
        )

    def vshop_call(self, reply: _Reply, *, acted: bool, dropped: bool) -> VshopCall:
        params = self.params()
        return VshopCall(
            at=self.at,
            trade_type=self.route.endpoint.trade_type,
            device_code=_text_in(params, "deviceCode"),
            pay_id=_text_in(params, "payId"),
            http_status=reply.status,
            code=str(reply.envelope().get("errorCode", "")),
            acted=acted,
            dropped=dropped,
        )


class ApiGate:
    """Rate limits, the daily quota, faults and the request logs, for the API endpoints only."""

    def __init__(
        self, app: ASGIApp, *, state: SandboxState, spec: FaultSpec, routes: list[ServedRoute]
    ) -> None:
        self.app = app
        self.state = state
        self.spec = spec
        self.dice = FaultDice(spec)
        # Its own dice, so that Vshop calls leave the sequence of contract-v1 fates unchanged.
        self.busy_dice = random.Random(None if spec.seed is None else f"busy:{spec.seed}")
        self.limiter = RateLimiter(spec.rate, spec.bucket_capacity, spec.concurrency)
        self.routes = routes
        # Numbers the mutating answers for the deterministic `drop_first` fault. `next()` on a
        # count is atomic, so calls served from several threads each get their own number.
        self._mutation_numbers = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        matched = self._match(scope) if scope["type"] == "http" else None
        if matched is None:
            await self.app(scope, receive, send)
            return
        route, path_params = matched
        # Too large by its Content-Length: refused before a byte of the body is read.
        body = None if _declared_length(scope) > MAX_BODY_BYTES else await _read_body(receive)
        exchange = _Exchange(
            at=time.time(),
            route=route,
            scope=scope,
            path_params=path_params,
            body=body or b"",
            client=(scope.get("client") or ("unknown", 0))[0],
        )
        if body is None:
            await self._finish(exchange, _too_large(route), send)
            return
        fate = (
            self.dice.roll()
        )  # rolled for every request, so the sequence depends on the seed only
        wait = self.limiter.acquire(exchange.client)
        if wait is not None:
            await self._finish(exchange, _throttled(wait, route), send)
            return
        try:
            spent = await self._take_quota(exchange)
            if spent is not None:
                await self._finish(exchange, _quota_spent(spent, route), send)
            else:
                await self._serve(scope, exchange, fate, send)
        finally:
            self.limiter.release(exchange.client)

    def _match(self, scope: Scope) -> tuple[ServedRoute, dict[str, str]] | None:
        """The route of the path and method; of the path only (a 405 to come) when none is."""
        found = None
        for route in self.routes:
            match = route.pattern.fullmatch(scope["path"])
            if match and route.method == scope["method"]:
                return route, match.groupdict()
            if match and found is None:
                found = replace(route, name=""), match.groupdict()
        return found

    async def _take_quota(self, exchange: _Exchange) -> QuotaSpent | None:
        if self.state.rules.daily_quota is None:
            return None
        partner = exchange.params().get("partnerCode")
        if not isinstance(partner, str) or not partner:
            return None  # refused by the endpoint anyway, and counted for nobody
        return await run_in_threadpool(self.state.take_quota, partner)

    async def _serve(self, scope: Scope, exchange: _Exchange, fate: Fate, send: Send) -> None:
        route = exchange.route
        if self.spec.latency:
            await asyncio.sleep(self.spec.latency)
        if fate.error_status == 503:
            await self._finish(exchange, _service_unavailable(route), send)
        elif fate.error_status == 502:
            await self._finish(exchange, _bad_gateway(), send)
        elif fate.throttled:
            await self._finish(exchange, _throttled(1, route), send)
        elif route.vshop and self.busy_dice.random() < self.spec.busy_rate:
            await self._finish(exchange, _busy(), send)
        else:
            reply = await self._run_app(scope, exchange)
            dropped = fate.dropped
            if route.mutating:
                dropped = dropped or next(self._mutation_numbers) <= self.spec.drop_first
                if self.spec.hold:
                    await asyncio.sleep(self.spec.hold)  # the work is done; the answer is late
            await self._finish(exchange, reply, send, acted=True, dropped=dropped)

    async def _run_app(self, scope: Scope, exchange: _Exchange) -> _Reply:
        collector = _Collector()
        try:
            await self.app(scope, _replay(exchange.body), collector.send)
        except Exception:
            if exchange.route.logs_mutation:
                failed = _Reply.of(_error_response(wire.CODE_INTERNAL, "internal error"))
                await run_in_threadpool(
                    self.state.log_mutation, exchange.record(failed, dropped=False)
                )
            raise
        return collector.reply

    async def _finish(
        self,
        exchange: _Exchange,
        reply: _Reply,
        send: Send,
        *,
        acted: bool = False,
        dropped: bool = False,
    ) -> None:
        # Logged before anything is sent, so a client that has its answer also finds the log entry.
        if exchange.route.logs_mutation:
            await run_in_threadpool(
                self.state.log_mutation, exchange.record(reply, dropped=dropped)
            )
        elif exchange.route.vshop:
            call = exchange.vshop_call(reply, acted=acted, dropped=dropped)
            await run_in_threadpool(self.state.log_vshop_call, call)
        if dropped:
            await _send_truncated(reply, send)
        else:
            await _send(reply, send)


def _path_pattern(path: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)))


def _declared_length(scope: Scope) -> int:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else 0
    return 0


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body, or None as soon as it grows past MAX_BODY_BYTES (a chunked body)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            # The gate answers as soon as the application returns; nothing more will arrive.
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _iccids_in(params: Mapping[str, Any]) -> list[str]:
    iccids = params.get("iccids")
    return [str(i) for i in iccids] if isinstance(iccids, list) else []


def _text_in(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name)
    return wire.clean_text(value)[:100] if isinstance(value, str | int) else ""


async def _send(reply: _Reply, send: Send) -> None:
    await send({"type": "http.response.start", "status": reply.status, "headers": reply.headers})
    await send({"type": "http.response.body", "body": reply.body, "more_body": False})


async def _send_truncated(reply: _Reply, send: Send) -> None:
    """Announce the whole body, send half, and stop: the server then closes the connection.

    The client sees a broken answer (httpx raises RemoteProtocolError) after the work was done,
    which is the "lost answer" a client must survive without sending the work twice.
    """
    await send({"type": "http.response.start", "status": reply.status, "headers": reply.headers})
    half = reply.body[: len(reply.body) // 2]
    await send({"type": "http.response.body", "body": half, "more_body": True})


def _refused(
    route: ServedRoute, code: str, message: str, data: Any = None, status: int | None = None
) -> _Reply:
    if route.vshop:
        return _Reply.of(vshop.error_response(code, message, data, status))
    return _Reply.of(_error_response(code, message, data, status))


def _throttled(retry_after: int, route: ServedRoute) -> _Reply:
    reply = _refused(route, wire.CODE_RATE_LIMITED, "rate limit exceeded")
    reply.headers.append((b"retry-after", str(retry_after).encode()))
    return reply


def _quota_spent(spent: QuotaSpent, route: ServedRoute) -> _Reply:
    """429 with `data.quota = "DAILY"` and a Retry-After pointing at the next UTC midnight."""
    resets_at = datetime.fromtimestamp(spent.resets_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    data = {wire.QUOTA_FIELD: wire.QUOTA_DAILY, "limit": spent.limit, "used": spent.used}
    data["resets_at"] = resets_at
    message = f"daily request quota of {spent.limit} exceeded; it resets at {resets_at}"
    reply = _refused(route, wire.CODE_RATE_LIMITED, message, data)
    reply.headers.append((b"retry-after", str(spent.retry_after).encode()))
    return reply


def _busy() -> _Reply:
    return _Reply.of(vshop.error_response(cards.SYSTEM_BUSY, "system busy, try again later"))


def _too_large(route: ServedRoute) -> _Reply:
    message = f"the body is larger than {MAX_BODY_BYTES} bytes"
    code = cards.INVALID_PARAMETER if route.vshop else wire.CODE_INVALID_PARAMETER
    return _refused(route, code, message, status=413)


def _service_unavailable(route: ServedRoute) -> _Reply:
    return _refused(route, wire.CODE_INTERNAL, "service unavailable", status=503)


_PROXY_PAGE = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


def _bad_gateway() -> _Reply:
    return _Reply.of(Response(_PROXY_PAGE, status_code=502, media_type="text/html"))
