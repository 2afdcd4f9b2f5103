"""The sandbox serves Vshop and Payment (contract v2) over real sockets, on contract v1's port."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from httphelp import http_get
from vshophelp import (
    CANCEL,
    CREATE_ORDER,
    HELD,
    PAYMENT,
    PLANS,
    RENEWAL,
    VERIFY,
    Vshop,
    vshop_body,
)

from lf_bulk import signing, wire
from lf_bulk.sandbox import cards, seed
from lf_bulk.sandbox.server import SandboxServer, running_sandbox
from lf_bulk.sandbox.state import SandboxState

RELAXED = "rate=1000,concurrency=50"
MakeSandbox = Callable[..., SandboxServer]


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vshop]:
    """One server for the tests that change nothing."""
    path = tmp_path_factory.mktemp("vshop-reader") / "sandbox.db"
    with running_sandbox(path, RELAXED, sims=2_000) as server:
        client = Vshop(server)
        yield client
        client.close()


@pytest.fixture
def vshop(make_sandbox: MakeSandbox) -> Iterator[Vshop]:
    client = Vshop(make_sandbox(RELAXED))
    yield client
    client.close()


def state_of(client: Vshop) -> SandboxState:
    return client.server.state


def foreign_iccid(state: SandboxState) -> str:
    return state.iccids_with(partner=seed.OTHER_PARTNER, limit=1)[0]


# ---------------------------------------------------------------- cards


def test_verify_answers_each_cards_status_and_area(reader: Vshop) -> None:
    state = state_of(reader)
    for status in (cards.CARD_ACTIVE, cards.CARD_INACTIVE, cards.CARD_SUSPENDED):
        (iccid,) = state.iccids_with(card_status=status, group_id=seed.DEMO_GROUP, limit=1)
        data = reader.ok(VERIFY, deviceCode=iccid, url="https://dist.linksfield.net/login")
        assert data == {"deviceCode": iccid, "cardStatus": status, "area": cards.AREA_EUROPE}


def test_foreign_and_unknown_cards_are_refused_on_every_card_path(reader: Vshop) -> None:
    foreign = foreign_iccid(state_of(reader))
    unknown = seed.unseeded_iccid(1)
    for path in (VERIFY, PLANS, HELD, RENEWAL):
        assert reader.error(path, deviceCode=foreign) == cards.CARD_NOT_OWNED
        assert reader.error(path, deviceCode=unknown) == cards.CARD_NOT_FOUND
    extra = {"orderNo": "x", "payId": "y"}
    assert reader.error(CANCEL, deviceCode=foreign, **extra) == cards.CARD_NOT_OWNED
    assert reader.error(CANCEL, deviceCode=unknown, **extra) == cards.CARD_NOT_FOUND


def test_another_partner_sees_its_own_cards(make_sandbox: MakeSandbox) -> None:
    server = make_sandbox(f"{RELAXED},partners={seed.PARTNER}+{seed.OTHER_PARTNER}")
    other = Vshop(server, partner=seed.OTHER_PARTNER)
    try:
        iccid = foreign_iccid(server.state)
        assert other.ok(VERIFY, deviceCode=iccid)["area"] == cards.AREA_NORTH_AMERICA
    finally:
        other.close()


# ---------------------------------------------------------------- plans


def test_plans_come_in_pages_with_exact_prices(reader: Vshop) -> None:
    (iccid,) = state_of(reader).iccids_with(
        card_status=cards.CARD_ACTIVE, group_id=seed.DEMO_GROUP, limit=1
    )
    first = reader.ok(PLANS, deviceCode=iccid, pageNo=1, pageSize=4)
    total = first["total"]
    offered = list(first["list"])
    for page in range(2, -(-total // 4) + 1):
        offered += reader.ok(PLANS, deviceCode=iccid, pageNo=page, pageSize=4)["list"]
    expected = [plan.wire() for plan in cards.plans_for(cards.AREA_EUROPE)]
    assert offered == expected and total == len(expected) > 4
    assert {plan["area"] for plan in offered} == {cards.AREA_EUROPE, cards.AREA_GLOBAL}
    assert all(isinstance(plan["price"], str) for plan in offered)
    assert sum(Decimal(p["price"]) for p in offered if p["currency"] == "EUR") == Decimal("24.69")
    beyond = reader.ok(PLANS, deviceCode=iccid, pageNo=99, pageSize=4)
    assert beyond == {"total": total, "list": []}


def test_plans_of_one_area_signed_with_raw_utf8(reader: Vshop) -> None:
    (iccid,) = state_of(reader).iccids_with(group_id=seed.DEMO_GROUP, limit=1)
    body = vshop_body(PLANS, {"deviceCode": iccid, "area": "欧洲", "pageSize": 100})
    response = reader.post(PLANS, body)
    data = response.json()["data"]
    assert data["total"] == len(data["list"]) > 0
    assert {plan["area"] for plan in data["list"]} == {"欧洲"}


def test_plans_of_a_card_that_is_not_active_are_refused(reader: Vshop) -> None:
    state = state_of(reader)
    for status in (cards.CARD_INACTIVE, cards.CARD_SUSPENDED):
        (iccid,) = state.iccids_with(card_status=status, limit=1)
        assert reader.error(PLANS, deviceCode=iccid) == cards.CARD_INACTIVE_CODE


@pytest.mark.parametrize("page_size", ["0", "101", "ten"])
def test_a_plan_page_size_out_of_range_is_invalid(reader: Vshop, page_size: str) -> None:
    (iccid,) = state_of(reader).iccids_with(card_status=cards.CARD_ACTIVE, limit=1)
    assert reader.error(PLANS, deviceCode=iccid, pageSize=page_size) == cards.INVALID_PARAMETER


# ---------------------------------------------------------------- held plans


def test_held_orders_are_the_states_truth(reader: Vshop) -> None:
    state = state_of(reader)
    for iccid in state.iccids_with(group_id=seed.DEMO_GROUP, limit=25):
        data = reader.ok(HELD, deviceCode=iccid)
        assert data == {
            "partnerCode": seed.PARTNER,
            "deviceCode": iccid,
            "orderList": state.held_plans(iccid),
        }
    kinds = {
        tuple(sorted(p["orderStatus"] for p in state.held_plans(i)))
        for i in state.iccids_with(group_id=seed.DEMO_GROUP, limit=25)
    }
    assert {(), ("1",), ("2",), ("3",), ("1", "2")} <= kinds


# ---------------------------------------------------------------- renewals


def test_a_renewal_is_cancelled_once_and_then_is_gone(vshop: Vshop) -> None:
    state = state_of(vshop)
    (iccid,) = state.iccids_with(renewal=True, group_id=seed.DEMO_GROUP, limit=1)
    renewal = vshop.ok(RENEWAL, deviceCode=iccid)
    assert renewal == state.renewal(iccid)
    assert renewal["deviceCode"] == iccid and renewal["payId"].startswith("sub_")
    keys = {"deviceCode": iccid, "orderNo": renewal["orderNo"], "payId": renewal["payId"]}

    assert vshop.ok(CANCEL, **keys) == {}
    assert vshop.ok(RENEWAL, deviceCode=iccid) is None
    assert vshop.error(CANCEL, **keys) == cards.RENEWAL_NOT_FOUND
    assert state.renewal(iccid) is None
    assert list(state.cancelled_renewals()) == [iccid]
    assert state.cancelled_renewals()[iccid][:2] == (renewal["orderNo"], renewal["payId"])
    counts = state.vshop_call_counts()
    assert counts["cancelAutoRenewalRecord", iccid] == 2
    assert counts["queryAutoRenewalRecord", iccid] == 2


def test_a_cancel_must_name_the_renewal_the_query_returned(vshop: Vshop) -> None:
    state = state_of(vshop)
    (iccid,) = state.iccids_with(renewal=True, limit=1)
    renewal = vshop.ok(RENEWAL, deviceCode=iccid)
    for wrong in ({"orderNo": "VS0"}, {"payId": "sub_other"}):
        keys = {"orderNo": renewal["orderNo"], "payId": renewal["payId"], **wrong}
        assert vshop.error(CANCEL, deviceCode=iccid, **keys) == cards.RENEWAL_NOT_FOUND
    assert vshop.error(CANCEL, deviceCode=iccid, orderNo=renewal["orderNo"]) == (
        cards.INVALID_PARAMETER  # payId is required
    )
    (without,) = state.iccids_with(renewal=False, limit=1)
    assert vshop.ok(RENEWAL, deviceCode=without) is None
    assert state.renewal(iccid) is not None and not state.cancelled_renewals()


# ---------------------------------------------------------------- payments and orders


def test_payment_results_come_from_the_seeded_orders_and_renewals(reader: Vshop) -> None:
    state = state_of(reader)
    orders = [o for o in state.orders(seed.PARTNER) if o["pay_id"]]
    expected = {"PAID": {"SUCCESS"}, "REFUNDED": {"REFUNDED"}, "FAILED": {"FAILED", "CANCELED"}}
    seen = set()
    for order in orders[:60]:
        data = reader.ok(PAYMENT, payId=order["pay_id"])
        assert data["payStatus"] in expected[order["pay_status"]]
        assert (data["payAmount"], data["payCurrency"]) == (order["amount"], order["currency"])
        assert (data["orderNo"], data["deviceCode"]) == (
            order["purchase_order_id"],
            order["sim_id"],
        )
        seen.add(data["payStatus"])
    assert seen >= {"SUCCESS", "FAILED"}
    (iccid,) = state.iccids_with(renewal=True, limit=1)
    renewal = state.renewal(iccid)
    assert renewal is not None
    data = reader.ok(PAYMENT, payId=renewal["payId"])
    assert (data["payStatus"], data["deviceCode"]) == ("SUCCESS", iccid)
    assert reader.error(PAYMENT, payId="pi_nosuchpayment") == cards.PAY_NOT_FOUND
    foreign = next(o for o in state.orders(seed.OTHER_PARTNER) if o["pay_id"])
    assert reader.error(PAYMENT, payId=foreign["pay_id"]) == cards.PAY_NOT_FOUND


def test_an_order_is_recorded_once_and_tops_the_card_up(vshop: Vshop) -> None:
    state = state_of(vshop)
    (iccid,) = state.iccids_with(card_status=cards.CARD_ACTIVE, group_id=seed.DEMO_GROUP, limit=1)
    order = {
        "orderNo": "ACME-0001",
        "deviceCode": iccid,
        "packageCode": "DP1002",
        "orderPeriod": "3",
        "autoRenewal": "0",
        "payAmount": "29.97",
        "payCurrency": "GBP",
        "payId": "pi_acme0001",
        "payResultDate": "2026-11-29 08:00:00",
        "payRst": "SUCCESS",
        "payStatus": "1",
        "payType": "PARTNER",
        "payAccount": "acme",
    }
    held_before = state.held_plans(iccid)
    data = vshop.ok(CREATE_ORDER, **order)
    assert data["orderNo"] == "ACME-0001" and data["deviceCode"] == iccid
    assert vshop.error(CREATE_ORDER, **order) == cards.DUPLICATE_ORDER_NO

    (created,) = [o for o in state.orders(seed.PARTNER) if o["purchase_order_id"] == "ACME-0001"]
    assert created["order_id"] == data["order_id"]
    assert (created["amount"], created["periods"], created["pay_id"]) == ("29.97", 3, "pi_acme0001")
    topup = state.held_plans(iccid)[len(held_before) :]
    assert [(p["orderNo"], p["orderStatus"], p["time"]) for p in topup] == [("ACME-0001", "1", 90)]
    assert vshop.ok(PAYMENT, payId="pi_acme0001")["payStatus"] == "SUCCESS"

    refused = {
        cards.PLAN_NOT_FOUND: {"orderNo": "ACME-2", "packageCode": "DP3001"},  # not in its area
    }
    for code, change in refused.items():
        assert vshop.error(CREATE_ORDER, **{**order, **change}) == code
    invalid = ({"payAmount": "1.005"}, {"payCurrency": "POUND"}, {"orderPeriod": "0"})
    for change in (*invalid, {"orderNo": "=HYPERLINK(1)"}, {"payId": ""}):
        changed = {**order, "orderNo": "ACME-3", **change}
        assert vshop.error(CREATE_ORDER, **changed) == cards.INVALID_PARAMETER, change
    (inactive,) = state.iccids_with(card_status=cards.CARD_INACTIVE, limit=1)
    changed = {**order, "orderNo": "ACME-4", "deviceCode": inactive}
    assert vshop.error(CREATE_ORDER, **changed) == cards.CARD_INACTIVE_CODE
    assert len([o for o in state.orders(seed.PARTNER) if o["pay_id"] == "pi_acme0001"]) == 1


# ---------------------------------------------------------------- global parameters


def test_the_vshop_globals_are_checked(reader: Vshop) -> None:
    (iccid,) = state_of(reader).iccids_with(limit=1)
    params = {"deviceCode": iccid}

    def refused(body: dict[str, str]) -> tuple[int, str]:
        response = reader.post(VERIFY, body)
        return response.status_code, response.json()["errorCode"]

    stale = vshop_body(VERIFY, params, trade_time=time.time() - 11 * 60)
    ahead = vshop_body(VERIFY, params, trade_time=time.time() + 11 * 60)
    assert refused(stale) == refused(ahead) == (200, cards.INVALID_PARAMETER)
    assert reader.post(VERIFY, vshop_body(VERIFY, params, trade_time=time.time() - 9 * 60))
    tampered = {**vshop_body(VERIFY, params), "deviceCode": seed.unseeded_iccid(2)}
    assert refused(tampered) == (403, wire.CODE_BAD_SIGNATURE)
    wrong_type = vshop_body(VERIFY, {**params, "tradeType": "singleQueryOrder"})
    assert refused(wrong_type) == (200, cards.INVALID_PARAMETER)
    for missing in ("tradeTime", "tradeType", "sign", "deviceCode"):
        body = vshop_body(VERIFY, params)
        del body[missing]
        if missing != "sign":
            body["sign"] = signing.sign(body)
        assert refused(body) == (200, cards.INVALID_PARAMETER), missing
    unknown = vshop_body(VERIFY, params, partner="P000001")
    assert refused(unknown) == (200, wire.CODE_UNKNOWN_PARTNER)
    not_json = reader.http.post(VERIFY, content=b"deviceCode=1")
    assert not_json.json()["errorCode"] == cards.INVALID_PARAMETER


def test_vshop_paths_answer_the_vshop_envelope_and_v1_paths_the_canonical_one(
    reader: Vshop,
) -> None:
    (iccid,) = state_of(reader).iccids_with(limit=1)
    body = reader.call(VERIFY, deviceCode=iccid).json()
    assert set(body) == {"operateCode", "message", "data"} and body["operateCode"] == "S"
    failed = reader.call(VERIFY, deviceCode=seed.unseeded_iccid(3)).json()
    assert set(failed) == {"operateCode", "errorCode", "message", "data"}
    assert failed["operateCode"] == "F" and failed["errorCode"] == cards.CARD_NOT_FOUND
    wrong_method = reader.http.get(VERIFY)
    assert wrong_method.status_code == 405
    request = wire.build_request(wire.CONTRACT_V1, wire.CONTRACT_V1.groups, seed.PARTNER)
    groups = http_get(
        reader.server.base_url + request.path, params=request.query, timeout=10
    ).json()
    assert groups["code"] == wire.CODE_OK
