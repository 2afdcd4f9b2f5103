"""Contract v2.3/v2.4 in the wire layer and the client: SynOrderInfo (create_order, mutating, sent
once unless the server provably did not act) and resultQuery (payment_result)."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from lf_bulk import errors, wire
from lf_bulk.api_values import TopUp
from lf_bulk.client import LinksfieldClient
from lf_bulk.pacing import RequestPacer
from lf_bulk.retrying import RetryPolicy

ICCID = "89440000000000000005"
TOP_UP = TopUp(
    order_no="ACME-1", iccid=ICCID, package_code="DP1002", periods=3, amount=Decimal("29.90"),
    currency="GBP", pay_id="pi_1", pay_type="CARD", pay_time="2026-11-29 08:00:00",
    auto_renewal=True,
)  # fmt: skip


def envelope(data: object, code: str = "") -> httpx.Response:
    if code:
        return httpx.Response(200, json={"operateCode": "F", "errorCode": code, "message": code})
    return httpx.Response(200, json={"operateCode": "S", "data": data})


def client_with(handler: object) -> LinksfieldClient:
    return LinksfieldClient(
        "https://lf.test", "P1", transport=httpx.MockTransport(handler),  # type: ignore[arg-type]
        pacer=RequestPacer(1000, 2), sleep=lambda s: None,
        retry=RetryPolicy(max_attempts=4, deadline_seconds=60),
    )  # fmt: skip


def test_the_order_body_carries_the_exact_amount_and_the_paid_state() -> None:
    body = wire.create_order_params(TOP_UP)
    assert body == {
        "deviceCode": ICCID, "orderNo": "ACME-1", "packageCode": "DP1002", "orderPeriod": "3",
        "autoRenewal": "1", "payAmount": "29.90", "payCurrency": "GBP", "payId": "pi_1",
        "payResultDate": "2026-11-29 08:00:00", "payRst": "SUCCESS", "payStatus": "1",
        "payType": "CARD",
    }  # fmt: skip


@pytest.mark.parametrize(
    "change", [{"order_no": ""}, {"pay_id": ""}, {"amount": Decimal(0)}, {"periods": 0}]
)
def test_an_order_that_cannot_be_right_is_refused_before_sending(change: dict[str, object]) -> None:
    from dataclasses import replace

    with pytest.raises(errors.InputError):
        wire.create_order_params(replace(TOP_UP, **change))  # type: ignore[arg-type]


def test_create_order_is_sent_once_when_its_answer_may_have_been_lost() -> None:
    sent: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        raise httpx.ReadTimeout("slow")

    with client_with(handler) as client, pytest.raises(errors.TransportError):
        client.create_order(TOP_UP)
    assert len(sent) == 1
    assert sent[0]["tradeType"] == "SynOrderInfo" and sent[0]["payAmount"] == "29.90"


def test_create_order_is_sent_again_after_an_answer_that_proves_nothing_was_done() -> None:
    answers = iter([
        httpx.Response(503, text="busy"),
        envelope(None, "SYSTEM_BUSY"),
        envelope({"orderNo": "ACME-1", "order_id": "O77", "deviceCode": ICCID}),
    ])  # fmt: skip
    trade_times: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        trade_times.append(json.loads(request.content)["tradeTime"])
        return next(answers)

    with client_with(handler) as client:
        created = client.create_order(TOP_UP)
    assert (created.order_no, created.order_id, created.iccid) == ("ACME-1", "O77", ICCID)
    assert len(trade_times) == 3


def test_a_duplicate_order_no_is_an_error_of_its_own() -> None:
    client = client_with(lambda r: envelope(None, "DUPLICATE_ORDER_NO"))
    with client, pytest.raises(errors.DuplicateOrderNo):
        client.create_order(TOP_UP)


def test_a_payment_result_keeps_the_amount_exact_and_an_unknown_id_is_pay_not_found() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        assert request.url.path == "/resultQuery" and body["tradeType"] == "resultQuery"
        if body["payId"] == "pi_gone":
            return envelope(None, "PAY_NOT_FOUND")
        return envelope({
            "payId": body["payId"], "payStatus": "success", "payAmount": "0.10",
            "payCurrency": "eur", "payTime": "2026-11-29 08:00:00", "orderNo": "A-1",
            "deviceCode": ICCID,
        })  # fmt: skip

    with client_with(handler) as client:
        result = client.payment_result("pi_1")
        with pytest.raises(errors.PayNotFound):
            client.payment_result("pi_gone")
    assert result.amount == Decimal("0.10") and isinstance(result.amount, Decimal)
    assert (result.pay_status, result.currency, result.iccid) == ("SUCCESS", "EUR", ICCID)


def test_a_created_order_without_an_order_id_is_an_envelope_error() -> None:
    with pytest.raises(errors.EnvelopeError):
        wire.parse_created_order({"orderNo": "ACME-1"}, TOP_UP)
