"""The push's wire details: signed content, signature, header checks and the business key."""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal

import pytest

from lf_bulk import wire

KEY_HEX = "00112233445566778899aabbccddeeff"
NOW = 1_780_000_000.0


def event(**data: object) -> dict[str, object]:
    fields = {"order_id": "O1", "orderNo": "N1", "payId": "P1", "payAmount": "12.30", **data}
    return {
        "transactionId": "T1",
        "eventType": "RECHARGE_SUCCESS",
        "eventTime": "1",
        "data": fields,
    }


def test_signed_content_is_version_algo_timestamp_and_sorted_compact_json() -> None:
    body = {"z": "欧洲/x", "a": {"b": "1", "a": "2"}, "l": ["2", "1"]}
    content = wire.push_sign_content(body, "1700000000000")
    assert (
        content == '1.0:HMAC-SHA1:1700000000000:{"a":{"a":"2","b":"1"},"l":["2","1"],"z":"欧洲/x"}'
    )
    top_only = wire.PushProfile(sort_nested_keys=False)
    assert wire.push_sign_content(body, "1", top_only).endswith(
        '{"a":{"b":"1","a":"2"},"l":["2","1"],"z":"欧洲/x"}'
    )


def test_signature_is_lowercase_hex_hmac_sha1_with_the_key_bytes() -> None:
    body = event()
    expected = hmac.new(
        bytes.fromhex(KEY_HEX), wire.push_sign_content(body, "5").encode(), hashlib.sha1
    ).hexdigest()
    assert wire.push_signature(body, "5", bytes.fromhex(KEY_HEX)) == expected
    headers = wire.sign_push(body, "K1", KEY_HEX, clock=lambda: 5 / 1000)
    assert headers["x-lf-signature"] == f"K1/{expected}"
    assert headers["x-lf-timestamp"] == "5"
    assert headers["x-lf-notification-version"] == "1.0" and headers["x-lf-algo"] == "HMAC-SHA1"


def read(headers: dict[str, str]) -> wire.PushHeaders:
    parsed = wire.read_push_headers(headers)
    assert isinstance(parsed, wire.PushHeaders)
    return parsed


def test_header_checks_name_what_is_wrong() -> None:
    body = event()
    good = wire.sign_push(body, "K1", KEY_HEX, clock=lambda: NOW)
    assert wire.check_push_headers(read(good), "K1", now=NOW) is None
    assert wire.verify_push_signature(body, read(good), [bytes.fromhex(KEY_HEX)])
    cases = {
        wire.PushRejection.BAD_VERSION: {**good, "x-lf-notification-version": "2.0"},
        wire.PushRejection.BAD_ALGORITHM: {**good, "x-lf-algo": "HMAC-SHA256"},
        wire.PushRejection.UNKNOWN_KEY_ID: {
            **good,
            "x-lf-signature": good["x-lf-signature"].replace("K1/", "K2/"),
        },
        wire.PushRejection.BAD_TIMESTAMP: {**good, "x-lf-timestamp": "-5"},
    }
    for reason, headers in cases.items():
        assert wire.check_push_headers(read(headers), "K1", now=NOW) is reason
    assert (
        wire.check_push_headers(read(good), "K1", now=NOW + 601)
        is wire.PushRejection.STALE_TIMESTAMP
    )
    assert (
        wire.check_push_headers(read(good), "K1", now=NOW - 601)
        is wire.PushRejection.STALE_TIMESTAMP
    )
    assert wire.check_push_headers(read(good), "K1", now=NOW + 599) is None
    missing = {k: v for k, v in good.items() if k != "x-lf-timestamp"}
    assert wire.read_push_headers(missing) is wire.PushRejection.MISSING_HEADER


def test_a_changed_body_or_another_key_fails_the_signature() -> None:
    body = event()
    headers = read(wire.sign_push(body, "K1", KEY_HEX, clock=lambda: NOW))
    key = bytes.fromhex(KEY_HEX)
    assert not wire.verify_push_signature(event(payAmount="99.00"), headers, [key])
    assert not wire.verify_push_signature(body, headers, [bytes.fromhex("00" * 16)])
    # A refreshed key keeps its id: the old value still verifies while both are given.
    assert wire.verify_push_signature(body, headers, [bytes.fromhex("00" * 16), key])


def test_business_key_is_the_order_id_else_order_no_and_pay_id_never_the_transaction() -> None:
    assert wire.push_business_key(event()) == "RECHARGE_SUCCESS/order_id=O1"
    resent = {**event(), "transactionId": "T2"}
    assert wire.push_business_key(resent) == wire.push_business_key(event())
    assert wire.push_business_key(event(order_id="")) == "RECHARGE_SUCCESS/orderNo=N1/payId=P1"
    assert wire.push_business_key(event(order_id="", payId="")) is None


def test_the_key_must_be_hex_and_is_never_quoted() -> None:
    with pytest.raises(ValueError) as caught:
        wire.push_key("not-hex-secret")
    assert "not-hex-secret" not in str(caught.value)
    assert wire.push_key(KEY_HEX.upper()) == bytes.fromhex(KEY_HEX)


def test_a_made_event_reads_back_and_keys_on_its_order() -> None:
    data = {"order_id": "O9", "orderNo": "N9", "deviceCode": "89852420180910340793",
            "payAmount": Decimal("7.50"), "payCurrency": "GBP", "orderPeriod": 3, "payId": "P9"}  # fmt: skip
    body = wire.make_recharge_event("T1", 1780000000000, data)
    again = wire.make_recharge_event("T2", 1780000000001, data)
    assert (
        wire.push_business_key(body)
        == wire.push_business_key(again)
        == "RECHARGE_SUCCESS/order_id=O9"
    )
    read = wire.parse_push_event(body)
    assert (read.amount, read.periods, read.iccid, read.currency) == (
        "7.50",
        "3",
        "89852420180910340793",
        "GBP",
    )
    with pytest.raises(ValueError, match="transactionId"):
        wire.make_recharge_event("T1", 1, {"transactionId": "x"})
