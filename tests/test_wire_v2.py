"""Contract v2 on the wire: Vshop trade parameters and signature, envelopes, answers, quota."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from lf_bulk import errors, wire
from lf_bulk.client import LinksfieldClient
from lf_bulk.models import Service
from lf_bulk.retrying import RetryPolicy
from lf_bulk.signing import sign

DOC_TIME_MS = 1645683857572


def test_a_vshop_request_carries_the_trade_globals_and_the_documented_signature() -> None:
    request = wire.build_request(
        wire.CONTRACT_V1,
        wire.CONTRACT_V1.verify,
        "P000270",
        params={"deviceCode": "89852420180910340793", "url": "https://dist.linksfield.net/login"},
        clock=lambda: DOC_TIME_MS / 1000,
    )
    assert request.body is not None
    assert request.body["tradeTime"] == str(DOC_TIME_MS)
    assert request.body["tradeType"] == "singleVerify"
    assert (request.body["terminal"], request.body["mark"], request.body["languageCode"]) == (
        "1",
        "0",
        "1",
    )
    # The documentation's own example and its hash.
    assert request.body["sign"] == "ea7a3bba7e345e0b8ca7f7e3b43d6e72"


def test_a_payment_request_carries_trade_time_and_type_only() -> None:
    request = wire.build_request(
        wire.CONTRACT_V1,
        wire.CONTRACT_V1.payment_result,
        "P000270",
        params={"payId": "pi_1"},
        clock=lambda: 1.0,
    )
    assert request.body is not None
    assert set(request.body) == {
        "partnerCode", "version", "tradeTime", "tradeType", "payId", "sign"
    }  # fmt: skip
    assert request.body["tradeType"] == "resultQuery"


@pytest.mark.parametrize(
    ("body", "ok", "code"),
    [
        ({"operateCode": "S", "message": "ok", "data": {}}, True, "S"),
        (
            {"operateCode": "F", "errorCode": "CARD_NOT_FOUND", "message": "no"},
            False,
            "CARD_NOT_FOUND",
        ),
        ({"tradeRstCode": "0000", "data": {}}, True, "0000"),
        ({"tradeRstCode": "9999", "message": "bad"}, False, "9999"),
        ({"code": "0000", "data": []}, True, "0000"),
    ],
)
def test_every_known_envelope_is_understood(body: dict[str, Any], ok: bool, code: str) -> None:
    envelope = wire.parse_envelope(body)
    assert envelope is not None
    assert (envelope.ok, envelope.code) == (ok, code)


def _vshop_answer(handler_data: dict[str, Any]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        path = request.url.path.rsplit("/", 1)[-1]
        return httpx.Response(200, json={"operateCode": "S", "data": handler_data[path](body)})

    return httpx.MockTransport(handler)


def test_the_client_reads_cards_plans_held_plans_and_renewals() -> None:
    answers = {
        "singleVerify": lambda b: {"deviceCode": b["deviceCode"], "cardStatus": "active", "area": "欧洲"},
        "singleServicePlanPage": lambda b: {
            "total": 1,
            "list": [{"packageCode": "DP1", "servicePlanShowName": "EU 1GB", "area": "欧洲",
                      "dataMb": 1024, "validityDays": 30, "price": "12.36", "currency": "eur",
                      "autoRenewal": "1"}],
        },
        "singleQueryOrder": lambda b: {
            "orderList": [{"orderStatus": "2", "servicePlanShowName": "EU 1GB", "time": "30",
                           "unit": "DAY", "expireDate": "2026-12-03", "remainingDays": 4}]
        },
        "queryAutoRenewalRecord": lambda b: None,
    }  # fmt: skip
    with LinksfieldClient("http://x", "P1", transport=_vshop_answer(answers)) as client:
        card = client.verify_card("8988")
        plans = client.list_plans("8988")
        held = client.held_plans("8988")
        renewal = client.find_renewal("8988")
    assert (card.card_status, card.area) == ("ACTIVE", "欧洲")
    assert plans[0].price == Decimal("12.36") and plans[0].currency == "EUR"
    assert plans[0].auto_renewal is True
    assert held[0].status == "2" and held[0].expire_date == "2026-12-03"
    assert held[0].remaining_days == 4
    assert renewal is None


def test_each_attempt_is_signed_anew_with_a_fresh_trade_time() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        if len(seen) == 1:
            return httpx.Response(200, json={"operateCode": "F", "errorCode": "SYSTEM_BUSY"})
        return httpx.Response(200, json={"operateCode": "S", "data": {"cardStatus": "ACTIVE"}})

    times = iter([1000.0, 1001.0, 1002.0])
    client = LinksfieldClient(
        "http://x",
        "P1",
        transport=httpx.MockTransport(handler),
        sleep=lambda s: None,
        clock=lambda: next(times),
    )
    client.verify_card("8988")
    assert len(seen) == 2
    assert seen[0]["tradeTime"] != seen[1]["tradeTime"]
    assert seen[0]["sign"] != seen[1]["sign"]
    for body in seen:
        assert body["sign"] == sign({k: v for k, v in body.items() if k != "sign"})


def test_each_service_goes_to_its_own_url() -> None:
    hosts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(str(request.url))
        return httpx.Response(200, json={"operateCode": "S", "data": {"cardStatus": "ACTIVE"}})

    urls = {Service.VSHOP: "https://v.example/vshop_uat", Service.PAYMENT: "https://p.example/pay"}
    with LinksfieldClient(
        "https://t.example/topup_test",
        "P1",
        service_urls=urls,
        transport=httpx.MockTransport(handler),
    ) as client:
        client.verify_card("8988")
    assert hosts == ["https://v.example/vshop_uat/singleVerify"]


class _Gate:
    def __init__(self, allowed: int) -> None:
        self.left = allowed
        self.taken = 0
        self.server_said: datetime | None = None

    def take(self) -> None:
        if self.left <= 0:
            raise errors.QuotaExhausted(
                "spent", resets_at=datetime(2026, 11, 30, tzinfo=UTC), source="ledger"
            )
        self.left -= 1
        self.taken += 1

    def server_exhausted(self, resets_at: datetime) -> None:
        self.server_said = resets_at


def test_every_attempt_is_counted_and_an_empty_gate_sends_nothing() -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        if len(sent) == 1:
            return httpx.Response(503, text="busy")
        return httpx.Response(200, json={"operateCode": "S", "data": {"cardStatus": "ACTIVE"}})

    gate = _Gate(2)
    client = LinksfieldClient(
        "http://x", "P1", transport=httpx.MockTransport(handler), quota=gate, sleep=lambda s: None
    )
    client.verify_card("8988")
    assert gate.taken == 2 and len(sent) == 2
    with pytest.raises(errors.QuotaExhausted):
        client.verify_card("8988")
    assert len(sent) == 2


def test_the_servers_daily_quota_is_a_stop_not_a_retry() -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        body = {"code": "1429", "message": "daily quota", "data": {"quota": "DAILY"}}
        return httpx.Response(429, json=body, headers={"Retry-After": "3600"})

    gate = _Gate(100)
    client = LinksfieldClient(
        "http://x",
        "P1",
        transport=httpx.MockTransport(handler),
        quota=gate,
        sleep=lambda s: pytest.fail("a daily quota must not be slept on"),
        retry=RetryPolicy(max_attempts=5),
        clock=lambda: datetime(2026, 11, 29, 23, 0, tzinfo=UTC).timestamp(),
    )
    with pytest.raises(errors.QuotaExhausted) as caught:
        client.list_groups()
    assert len(sent) == 1
    assert caught.value.source == "server"
    assert caught.value.resets_at == datetime(2026, 11, 30, 0, 0, tzinfo=UTC)
    assert gate.server_said == caught.value.resets_at


def test_vshop_error_codes_become_their_classes() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"operateCode": "F", "errorCode": "CARD_NOT_OWNED", "message": "not yours"}
        )

    client = LinksfieldClient("http://x", "P1", transport=httpx.MockTransport(handler))
    with pytest.raises(errors.CardNotOwned):
        client.verify_card("8988")


def test_a_cancel_is_not_resent_after_a_lost_answer_but_is_after_system_busy() -> None:
    answers = iter(
        [
            httpx.Response(200, json={"operateCode": "F", "errorCode": "SYSTEM_BUSY"}),
            httpx.Response(500, text="oops"),
        ]
    )
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return next(answers)

    client = LinksfieldClient(
        "http://x", "P1", transport=httpx.MockTransport(handler), sleep=lambda s: None
    )
    with pytest.raises(errors.HttpStatusError):
        client.cancel_renewal("8988", "ON1", "PAY1")
    assert len(sent) == 2  # SYSTEM_BUSY proved nothing was done; the 500 may have come after


def test_a_cancel_without_its_order_number_is_refused_before_sending() -> None:
    client = LinksfieldClient(
        "http://x", "P1", transport=httpx.MockTransport(lambda r: pytest.fail("sent"))
    )
    with pytest.raises(errors.InputError):
        client.cancel_renewal("8988", "", "PAY1")
