"""Orders on a pushing sandbox, and a receiver to push to, for the pusher tests."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from notifyhelp import KEY_HEX, KEY_ID
from vshophelp import CREATE_ORDER, Vshop

from lf_bulk.notify.receiver import ReceiverKeys, parse_keys
from lf_bulk.sandbox import cards, seed
from lf_bulk.sandbox.pusher import PushTarget
from lf_bulk.sandbox.server import SandboxServer
from lf_bulk.sandbox.state import SandboxState

RELAXED = "rate=1000,concurrency=50"
CURRENCIES = ("EUR", "GBP", "USD")


def receiver_keys(key_hex: str = KEY_HEX) -> ReceiverKeys:
    return parse_keys(KEY_ID, key_hex)


def target(url: str, key_hex: str = KEY_HEX) -> PushTarget:
    return PushTarget(url, KEY_ID, key_hex)


def free_port() -> int:
    """A loopback port nothing listens on (yet): a receiver that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def order(number: int, iccid: str, prefix: str = "PUSH") -> dict[str, str]:
    """The SynOrderInfo parameters of top-up `number`: 9.99 + number/100 in EUR, GBP, USD, ..."""
    return {
        "orderNo": f"{prefix}-{number:04d}",
        "deviceCode": iccid,
        "packageCode": "DP1002",
        "orderPeriod": "1",
        "autoRenewal": "0",
        "payAmount": str(Decimal("9.99") + Decimal(number) / 100),
        "payCurrency": CURRENCIES[number % len(CURRENCIES)],
        "payId": f"pi_{prefix.lower()}{number:04d}",
        "payResultDate": "2026-11-29 08:00:00",
        "payRst": "SUCCESS",
        "payStatus": "1",
        "payType": "PARTNER",
        "payAccount": "acme",
    }


def active_iccids(state: SandboxState, count: int) -> list[str]:
    iccids = state.iccids_with(card_status=cards.CARD_ACTIVE, group_id=seed.DEMO_GROUP, limit=count)
    assert len(iccids) == count
    return iccids


def create_orders(server: SandboxServer, count: int, prefix: str = "PUSH") -> dict[str, Decimal]:
    """`count` paid top-ups through SynOrderInfo over HTTP; their exact totals per currency."""
    totals: dict[str, Decimal] = {}
    vshop = Vshop(server)
    try:
        for number, iccid in enumerate(active_iccids(server.state, count)):
            params = order(number, iccid, prefix)
            vshop.ok(CREATE_ORDER, **params)
            currency = params["payCurrency"]
            totals[currency] = totals.get(currency, Decimal(0)) + Decimal(params["payAmount"])
    finally:
        vshop.close()
    return totals


def wait_for(condition: Callable[[], bool], seconds: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds:g}s: {what}")
        time.sleep(0.01)


def store_home(tmp_path: Path) -> Path:
    home = tmp_path / "receiver-home"
    home.mkdir(mode=0o700)
    return home
