"""An in-memory Vshop for look-up tests: the calls a `lookups.LookupClient` makes, counted.

It stands where the sandbox's Vshop paths will: it keeps the truth (cards, held plans, renewals,
plans), counts every call per (call, ICCID), spends a daily quota like the ledger, and can fail
or lose the answer of a chosen call.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from lf_bulk import errors
from lf_bulk.api_values import (
    CardInfo,
    Group,
    HeldPlan,
    PlanOffer,
    Renewal,
)
from lf_bulk.errors import CardNotFound, CardNotOwned, QuotaExhausted, RenewalNotFound
from lf_bulk.iccid import with_check_digit
from lf_bulk.pacing import RequestPacer

PARTNER_CODE = "PARTNER-SECRET-7731"


def make_iccid(n: int) -> str:
    return with_check_digit(f"894400000000{n:07d}")


def renewal_of(iccid: str, order_no: str = "") -> Renewal:
    return Renewal(iccid, order_no or f"R-{iccid[-6:]}", f"PAY-{iccid[-6:]}", "Europe 5GB", 1,
                   "MONTH", "2026.11.01")  # fmt: skip


def held_in_use(expire: str = "2026-12-20") -> HeldPlan:
    return HeldPlan("2", "Europe 5GB", 30, "DAY", expire, 21, "O-1", "DP1", "2026-11-20")


OFFER = PlanOffer("DP20190726001274", "Europe 5GB", "欧洲", 5120, 30, Decimal("12.90"), "EUR", True)


class FakeVshop:
    def __init__(self, *, max_in_flight: int = 3) -> None:
        self.pacer = RequestPacer(10_000, max_in_flight)
        self.base_url = "https://vshop.test"
        self.partner_code = PARTNER_CODE
        self.cards: dict[str, str] = {}  # iccid -> card status
        self.foreign: set[str] = set()  # another partner's cards
        self.held: dict[str, list[HeldPlan]] = {}
        self.renewals: dict[str, Renewal] = {}
        self.plans: list[PlanOffer] = [OFFER]
        self.calls: Counter[tuple[str, str]] = Counter()
        self.cancels_done: Counter[str] = Counter()
        self.quota_left: int | None = None
        self.failures: dict[tuple[str, str], list[BaseException]] = {}
        self.lose_answer_after_cancel: set[str] = set()
        self.cancel_keeps_renewal: set[str] = set()
        self.submitted: list[tuple[object, ...]] = []
        self._lock = threading.Lock()

    def list_groups(self) -> list[Group]:
        return [Group("G1", "Group one", 0)]

    def submit(self, *args: object) -> None:
        self.submitted.append(args)

    def add_card(self, iccid: str, status: str = "ACTIVE", *, renewal: bool = False) -> str:
        self.cards[iccid] = status
        self.held[iccid] = [held_in_use()]
        if renewal:
            self.renewals[iccid] = renewal_of(iccid)
        return iccid

    def fail(self, call: str, iccid: str, *errors_: BaseException) -> None:
        self.failures.setdefault((call, iccid), []).extend(errors_)

    def _take(self, call: str, iccid: str) -> None:
        with self._lock:
            if self.quota_left is not None:
                if self.quota_left <= 0:
                    raise QuotaExhausted(
                        "the day's quota is spent",
                        resets_at=datetime(2026, 11, 30, tzinfo=UTC),
                        used=5000,
                        limit=5000,
                        source="ledger",
                    )
                self.quota_left -= 1
            self.calls[(call, iccid)] += 1
            queued = self.failures.get((call, iccid))
            if queued:
                raise queued.pop(0)

    def _card(self, iccid: str) -> str:
        if iccid in self.foreign:
            raise CardNotOwned("CARD_NOT_OWNED", "the card belongs to another partner")
        if iccid not in self.cards:
            raise CardNotFound("CARD_NOT_FOUND", "no such card")
        return self.cards[iccid]

    def verify_card(self, iccid: str) -> CardInfo:
        self._take("verify", iccid)
        return CardInfo(iccid, self._card(iccid), "欧洲")

    def held_plans(self, iccid: str) -> list[HeldPlan]:
        self._take("held_orders", iccid)
        self._card(iccid)
        return list(self.held.get(iccid, []))

    def find_renewal(self, iccid: str) -> Renewal | None:
        self._take("renewal", iccid)
        self._card(iccid)
        return self.renewals.get(iccid)

    def list_plans(self, iccid: str, area: str | None = None) -> list[PlanOffer]:
        self._take("plans", iccid)
        self._card(iccid)
        return [p for p in self.plans if area is None or p.area == area]

    def cancel_renewal(self, iccid: str, order_no: str, pay_id: str) -> None:
        self._take("cancel_renewal", iccid)
        self._card(iccid)
        with self._lock:
            renewal = self.renewals.get(iccid)
            if renewal is None or (renewal.order_no, renewal.pay_id) != (order_no, pay_id):
                raise RenewalNotFound("RENEWAL_NOT_FOUND", "no such renewal")
            self.cancels_done[iccid] += 1
            if iccid not in self.cancel_keeps_renewal:
                del self.renewals[iccid]
            if iccid in self.lose_answer_after_cancel:
                self.lose_answer_after_cancel.discard(iccid)
                raise errors.TransportError("https://vshop.test: the answer was lost (reset)")


def tomorrow() -> datetime:
    return datetime.now(UTC) + timedelta(days=1)


class VshopServer:
    """Answers Vshop paths from its own truth; `quota` requests a day, then 429 DAILY."""

    def __init__(self) -> None:
        self.cards: dict[str, str] = {}
        self.renewals: dict[str, dict[str, Any]] = {}
        self.quota: int | None = None
        self.seen: Counter[tuple[str, str]] = Counter()
        self.drop_cancel_answers = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        path, iccid = request.url.path.rsplit("/", 1)[-1], str(body.get("deviceCode", ""))
        if self.quota is not None:
            if self.quota <= 0:
                daily = {"code": "1429", "message": "daily quota", "data": {"quota": "DAILY"}}
                return httpx.Response(429, json=daily, headers={"Retry-After": "3600"})
            self.quota -= 1
        self.seen[(path, iccid)] += 1
        if iccid not in self.cards:
            return _failure("CARD_NOT_FOUND")
        if path == "singleVerify":
            return _success({"deviceCode": iccid, "cardStatus": self.cards[iccid], "area": "欧洲"})
        if path == "queryAutoRenewalRecord":
            return _success(self.renewals.get(iccid))
        if path == "cancelAutoRenewalRecord":
            renewal = self.renewals.get(iccid)
            if renewal is None or renewal["orderNo"] != body.get("orderNo"):
                return _failure("RENEWAL_NOT_FOUND")
            del self.renewals[iccid]
            if self.drop_cancel_answers:
                self.drop_cancel_answers -= 1
                raise httpx.ReadError("connection reset by peer", request=request)
            return _success({})
        return _failure("INVALID_PARAMETER")


def _success(data: Any) -> httpx.Response:
    return httpx.Response(200, json={"operateCode": "S", "message": "ok", "data": data})


def _failure(code: str) -> httpx.Response:
    return httpx.Response(200, json={"operateCode": "F", "errorCode": code, "message": code})


def wire_renewal(iccid: str) -> dict[str, Any]:
    return {"deviceCode": iccid, "orderNo": f"R{iccid[-5:]}", "payId": f"P{iccid[-5:]}",
            "orderPeriod": "1", "packageType": "MONTH", "partnerCode": "P1",
            "servicePlanShowName": "EU 1GB", "subscriptionTime": "2026.11.01"}  # fmt: skip


VSHOP_PATHS = frozenset(
    {"singleVerify", "singleServicePlanPage", "singleQueryOrder", "queryAutoRenewalRecord",
     "cancelAutoRenewalRecord"}
)  # fmt: skip


class VshopBesideTopup(httpx.BaseTransport):
    """Vshop paths answered by a `VshopServer`, every other path sent to a real server."""

    def __init__(self, vshop: VshopServer) -> None:
        self.vshop = vshop
        self.real = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.rsplit("/", 1)[-1] in VSHOP_PATHS:
            response = self.vshop(request)
            response.read()
            return response
        return self.real.handle_request(request)

    def close(self) -> None:
        self.real.close()
