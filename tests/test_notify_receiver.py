"""The push receiver over real HTTP on 127.0.0.1: what it answers, and what it stores."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from httphelp import http_client

from lf_bulk import wire
from lf_bulk.notify.receiver import parse_keys, running_receiver
from lf_bulk.notify.store import PushStore

KEY_HEX = "8f3a0c1d2e4b5a69788796a5b4c3d2e1"
KEY_ID = "key-1"
KEYS = parse_keys(KEY_ID, KEY_HEX)


def event(order_id: str, transaction_id: str = "T1", amount: str = "12.30") -> dict[str, object]:
    return {
        "transactionId": transaction_id,
        "eventType": "RECHARGE_SUCCESS",
        "eventTime": "1780000000000",
        "data": {
            "orderNo": f"N-{order_id}",
            "order_id": order_id,
            "deviceCode": "89852420180910340793",
            "packageCode": "DP20190726001274",
            "servicePlanShowName": "Europe 5GB",
            "orderPeriod": "2",
            "payAmount": amount,
            "payCurrency": "eur",
            "payId": f"pay-{order_id}",
            "payTime": "2026-11-29 08:00:00",
            "startDate": "2026-11-29",
            "expireDate": "2026-12-29",
        },
    }


def push(
    client: httpx.Client, body: dict[str, object], *, key_hex: str = KEY_HEX, key_id: str = KEY_ID,
    **changed: str,
) -> httpx.Response:  # fmt: skip
    headers = {**wire.sign_push(body, key_id, key_hex), **changed}
    return client.post("/", content=wire.push_body_bytes(body), headers=headers)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[httpx.Client]:
    with running_receiver(tmp_path / "home", KEYS) as url, http_client(base_url=url) as client:
        yield client


def stored(home: Path) -> list[tuple[str, int]]:
    with PushStore.open(home) as store:
        return [(e.order_id, e.deliveries) for e in store.events()]


def test_valid_events_and_resends_get_200_and_are_stored_once(
    receiver: httpx.Client, tmp_path: Path
) -> None:
    first = push(receiver, event("O1"))
    assert first.status_code == 200 and first.json() == {"result": "stored"}
    again = push(receiver, event("O1", transaction_id="T2"))
    assert again.status_code == 200 and again.json() == {"result": "duplicate"}
    assert push(receiver, event("O2")).json() == {"result": "stored"}
    assert stored(tmp_path / "home") == [("O1", 2), ("O2", 1)]
    with PushStore.open(tmp_path / "home") as store:
        (one, _) = store.events()
        assert store.delivery_count() == 3
    assert one.amount is not None and str(one.amount) == "12.30" and one.currency == "EUR"
    assert one.iccid == "89852420180910340793" and one.transaction_id == "T1"


def test_the_raw_body_and_verified_headers_are_kept(receiver: httpx.Client, tmp_path: Path) -> None:
    body = event("O1")
    assert push(receiver, body).status_code == 200
    db = sqlite3.connect(tmp_path / "home" / "notify.db")
    raw, headers = db.execute("SELECT body, headers FROM events").fetchone()
    db.close()
    assert raw == wire.push_body_bytes(body)
    assert json.loads(headers)["x-lf-signature"].startswith(f"{KEY_ID}/")
    assert (tmp_path / "home" / "notify.db").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    "changed",
    [
        {"x-lf-signature": f"{KEY_ID}/" + "0" * 40},
        {"x-lf-algo": "HMAC-SHA256"},
        {"x-lf-notification-version": "2.0"},
        {"x-lf-timestamp": "1000000000000"},
        {"x-lf-timestamp": "not-a-time"},
    ],
    ids=["forged-signature", "other-algorithm", "other-version", "stale-timestamp", "bad-time"],
)
def test_refused_pushes_get_401_and_store_nothing(
    receiver: httpx.Client, tmp_path: Path, changed: dict[str, str]
) -> None:
    answer = push(receiver, event("O1"), **changed)
    assert answer.status_code == 401
    assert KEY_HEX not in answer.text
    assert stored(tmp_path / "home") == []


def test_unknown_key_id_and_another_key_get_401(receiver: httpx.Client, tmp_path: Path) -> None:
    assert push(receiver, event("O1"), key_id="key-2").status_code == 401
    assert push(receiver, event("O1"), key_hex="11" * 16).status_code == 401
    assert push(receiver, event("O1"), **{"x-lf-timestamp": ""}).status_code == 401
    assert stored(tmp_path / "home") == []


def test_a_signed_but_changed_body_gets_401(receiver: httpx.Client, tmp_path: Path) -> None:
    headers = wire.sign_push(event("O1"), KEY_ID, KEY_HEX)
    tampered = wire.push_body_bytes(event("O1", amount="0.01"))
    assert receiver.post("/", content=tampered, headers=headers).status_code == 401
    assert stored(tmp_path / "home") == []


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"\xff\xfe", b""])
def test_a_body_that_is_not_a_json_object_gets_400(
    receiver: httpx.Client, tmp_path: Path, body: bytes
) -> None:
    headers = wire.sign_push(event("O1"), KEY_ID, KEY_HEX)
    assert receiver.post("/", content=body, headers=headers).status_code == 400
    assert stored(tmp_path / "home") == []


def test_a_2_mb_body_gets_413_by_length_and_by_stream(
    receiver: httpx.Client, tmp_path: Path
) -> None:
    big = event("O1")
    big["padding"] = "x" * (2 * 1024 * 1024)
    headers = wire.sign_push(big, KEY_ID, KEY_HEX)
    assert receiver.post("/", content=wire.push_body_bytes(big), headers=headers).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked, counted as it arrives
        data = wire.push_body_bytes(big)
        for start in range(0, len(data), 64 * 1024):
            yield data[start : start + 64 * 1024]

    assert receiver.post("/", content=chunks(), headers=headers).status_code == 413
    assert stored(tmp_path / "home") == []


def test_other_methods_and_paths_are_not_the_receiver(receiver: httpx.Client) -> None:
    assert receiver.get("/").status_code == 405
    assert receiver.post("/other", content=b"{}").status_code == 404


def test_an_event_without_a_business_key_is_kept_once_not_lost(
    receiver: httpx.Client, tmp_path: Path
) -> None:
    odd = {"transactionId": "T1", "eventType": "SOMETHING_NEW", "data": {"x": "1"}}
    assert push(receiver, odd).json() == {"result": "stored"}
    assert push(receiver, {**odd, "transactionId": "T2"}).json() == {"result": "duplicate"}
    with PushStore.open(tmp_path / "home") as store:
        (kept,) = store.events()
    assert kept.business_key.startswith("SOMETHING_NEW/body-sha256=") and not kept.is_recharge


def test_a_clock_ten_minutes_off_either_way_is_the_limit(tmp_path: Path) -> None:
    body = event("O1")
    headers = wire.sign_push(body, KEY_ID, KEY_HEX, clock=lambda: 1_000_000.0)
    for offset, status in ((599.0, 200), (-599.0, 200), (601.0, 401), (-601.0, 401)):
        home = tmp_path / f"home{offset}"
        with (
            running_receiver(home, KEYS, clock=lambda o=offset: 1_000_000.0 + o) as url,
            http_client(base_url=url) as client,
        ):
            answer = client.post("/", content=wire.push_body_bytes(body), headers=headers)
        assert answer.status_code == status, offset


def test_a_lone_surrogate_in_the_json_is_stored_cleaned_not_a_500(
    receiver: httpx.Client, tmp_path: Path
) -> None:
    for body in (
        event("O\ud800"),
        {"transactionId": "T9", "eventType": "OTHER", "data": {"note": "\udfff"}},
    ):
        raw = json.dumps(body).encode()  # ASCII, the surrogate as an escape, as JSON allows
        headers = wire.sign_push(body, KEY_ID, KEY_HEX)
        assert receiver.post("/", content=raw, headers=headers).status_code == 200
    with PushStore.open(tmp_path / "home") as store:
        assert [e.order_id for e in store.events()] == ["O\ufffd", ""]


def test_raw_utf8_text_verifies_and_is_kept(receiver: httpx.Client, tmp_path: Path) -> None:
    body = event("O1")
    body["data"] = {**body["data"], "servicePlanShowName": "欧洲 5GB/月"}  # type: ignore[dict-item]
    raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
    headers = wire.sign_push(body, KEY_ID, KEY_HEX)
    assert receiver.post("/", content=raw, headers=headers).status_code == 200
    with PushStore.open(tmp_path / "home") as store:
        assert [e.plan for e in store.events()] == ["欧洲 5GB/月"]
