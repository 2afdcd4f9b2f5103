"""The sandbox's Vshop and Payment endpoints (contract v2), served on the same port as contract v1.

Every call is a signed POST whose body carries, besides the globals, `tradeTime` (milliseconds;
refused with INVALID_PARAMETER when more than `wire.TRADE_TIME_TOLERANCE_SECONDS` from the
sandbox's clock) and `tradeType` (the last segment of the path). Answers use the Vshop envelope
`{"operateCode": "S" | "F", "errorCode", "message", "data"}` (`wire.make_vshop_envelope`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lf_bulk import wire
from lf_bulk.sandbox import cards
from lf_bulk.sandbox.params import int_param, request_params, text_param
from lf_bulk.sandbox.state import Refusal, SandboxState
from lf_bulk.signing import SIGN_FIELD, verify

DEFAULT_PLAN_PAGE_SIZE = 10
MUTATING = frozenset({"cancel_renewal", "create_order"})  # endpoint names: the calls that act
# The HTTP status paired with a code; every other Vshop code comes with 200.
_HTTP_STATUS = {wire.CODE_BAD_SIGNATURE: 403, wire.CODE_RATE_LIMITED: 429, wire.CODE_INTERNAL: 500}


def error_response(
    code: str, message: str, data: Any = None, status: int | None = None
) -> Response:
    return JSONResponse(
        wire.make_vshop_envelope(code, message, data),
        status_code=status or _HTTP_STATUS.get(code, 200),
    )


@dataclass(frozen=True)
class _Call:
    partner: str
    params: Mapping[str, Any]

    def text(self, name: str, *, required: bool = True) -> str:
        return text_param(self.params, name, cards.INVALID_PARAMETER, required=required)


class VshopEndpoints:
    """One method per Vshop and Payment endpoint of the wire profile, of the same name."""

    def __init__(self, state: SandboxState, profile: wire.WireProfile) -> None:
        self.state = state
        self.profile = profile

    async def verify(self, request: Request) -> Response:
        call = await self._accept(request)
        return await _answer(self.state.verify_card, call.partner, call.text("deviceCode"))

    async def plans(self, request: Request) -> Response:
        call = await self._accept(request)
        iccid = call.text("deviceCode")
        area = call.text("area", required=False) or None
        page_no = int_param(call.params, "pageNo", default=1, low=1, code=cards.INVALID_PARAMETER)
        page_size = int_param(
            call.params,
            "pageSize",
            default=DEFAULT_PLAN_PAGE_SIZE,
            low=1,
            high=self.profile.max_plan_page_size,
            code=cards.INVALID_PARAMETER,
        )
        return await _answer(self.state.plan_page, call.partner, iccid, area, page_no, page_size)

    async def held_orders(self, request: Request) -> Response:
        call = await self._accept(request)
        return await _answer(self.state.held_orders, call.partner, call.text("deviceCode"))

    async def renewal(self, request: Request) -> Response:
        call = await self._accept(request)
        return await _answer(self.state.find_renewal, call.partner, call.text("deviceCode"))

    async def cancel_renewal(self, request: Request) -> Response:
        call = await self._accept(request)
        iccid, order_no, pay_id = (call.text(k) for k in ("deviceCode", "orderNo", "payId"))
        return await _answer(self.state.cancel_renewal, call.partner, iccid, order_no, pay_id)

    async def create_order(self, request: Request) -> Response:
        call = await self._accept(request)
        required = ("orderNo", "deviceCode", "packageCode", "orderPeriod", "payAmount")
        optional = ("autoRenewal", "payResultDate", "payRst", "payStatus", "payType", "payAccount")
        order = {name: call.text(name) for name in (*required, "payCurrency", "payId")}
        order.update({name: call.text(name, required=False) for name in optional})
        return await _answer(self.state.create_order, call.partner, order)

    async def payment_result(self, request: Request) -> Response:
        call = await self._accept(request)
        return await _answer(self.state.payment, call.partner, call.text("payId"))

    async def _accept(self, request: Request) -> _Call:
        """The globals, checked in the order a caller can fix them, then tradeType, tradeTime."""
        params = await request_params(request, cards.INVALID_PARAMETER)
        for name in ("partnerCode", "version", SIGN_FIELD, "tradeType", "tradeTime"):
            if not isinstance(params.get(name), str) or not params[name]:
                raise Refusal(cards.INVALID_PARAMETER, f"missing parameter {name}")
        if params["version"] != self.profile.version:
            raise Refusal(
                cards.INVALID_PARAMETER,
                f"unsupported version {params['version']!r}; use {self.profile.version!r}",
            )
        partner = params["partnerCode"]
        if partner not in self.state.rules.partners:
            raise Refusal(wire.CODE_UNKNOWN_PARTNER, f"unknown partnerCode {partner}")
        if not verify(params, params[SIGN_FIELD]):
            raise Refusal(wire.CODE_BAD_SIGNATURE, "signature mismatch")
        expected = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        if params["tradeType"] != expected:
            shown = wire.shown_text(params["tradeType"], 40)
            raise Refusal(cards.INVALID_PARAMETER, f"tradeType {shown} is not {expected!r}")
        _check_trade_time(params["tradeTime"], self.state.now())
        return _Call(partner, params)


def _check_trade_time(text: str, now: float) -> None:
    if not (text.isascii() and text.isdigit()) or len(text) > 15:
        shown = wire.shown_text(text, 40)
        raise Refusal(cards.INVALID_PARAMETER, f"tradeTime {shown} is not milliseconds")
    skew = int(text) / 1000 - now
    window = wire.TRADE_TIME_TOLERANCE_SECONDS
    if abs(skew) > window:
        raise Refusal(
            cards.INVALID_PARAMETER,
            f"tradeTime is {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} the server's"
            f" clock; at most {window} s allowed",
        )


async def _answer(function: Callable[..., Any], *args: Any) -> Response:
    data = await run_in_threadpool(function, *args)
    return JSONResponse(wire.make_vshop_envelope(wire.CODE_OK, "success", data))
