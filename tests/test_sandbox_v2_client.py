"""The client of core v2 against the sandbox: both sides of contract v2 agree, end to end."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from lf_bulk import errors, wire
from lf_bulk.client import LinksfieldClient
from lf_bulk.models import Service
from lf_bulk.pacing import RequestPacer
from lf_bulk.retrying import RetryPolicy
from lf_bulk.sandbox import cards, seed
from lf_bulk.sandbox.server import SandboxServer

from inprocess import open_world

RELAXED = "rate=1000,concurrency=50"
MakeSandbox = Callable[..., SandboxServer]


@contextmanager
def client_of(server: SandboxServer, **urls: str) -> Iterator[LinksfieldClient]:
    service_urls = {Service(name): url for name, url in urls.items()}
    client = LinksfieldClient(
        urls.get("topup", server.base_url),
        seed.PARTNER,
        service_urls=service_urls or None,
        pacer=RequestPacer(1000, 8),
        retry=RetryPolicy(max_attempts=30, deadline_seconds=30, initial_wait=0.001, max_wait=0.01),
        sleep=lambda seconds: None,
        rng=random.Random(1),
        trust_env=False,
    )
    try:
        yield client
    finally:
        client.close()


def test_cards_plans_and_held_plans_read_as_the_sandbox_holds_them(
    make_sandbox: MakeSandbox,
) -> None:
    server = make_sandbox(RELAXED)
    state = server.state
    with client_of(server) as client:
        for status in (cards.CARD_ACTIVE, cards.CARD_INACTIVE, cards.CARD_SUSPENDED):
            (iccid,) = state.iccids_with(card_status=status, group_id=seed.DEMO_GROUP, limit=1)
            card = client.verify_card(iccid)
            assert (card.iccid, card.card_status, card.area) == (iccid, status, "欧洲")
        with pytest.raises(errors.CardNotFound):
            client.verify_card(seed.unseeded_iccid(4))
        with pytest.raises(errors.CardNotOwned):
            client.verify_card(state.iccids_with(partner=seed.OTHER_PARTNER, limit=1)[0])

        (iccid,) = state.iccids_with(card_status=cards.CARD_ACTIVE, limit=1)
        area = state.card(iccid)["area"]  # type: ignore[index]
        plans = client.list_plans(iccid)
        assert [p.package_code for p in plans] == [p.package_code for p in cards.plans_for(area)]
        for offer in plans:
            assert offer.price == Decimal(cards.PLANS[offer.package_code].price)
        (inactive,) = state.iccids_with(card_status=cards.CARD_INACTIVE, limit=1)
        with pytest.raises(errors.CardInactive):
            client.list_plans(inactive)

        for iccid in state.iccids_with(group_id=seed.DEMO_GROUP, limit=20):
            held = client.held_plans(iccid)
            truth = state.held_plans(iccid)
            assert [(h.status, h.order_no, h.expire_date, h.remaining_days) for h in held] == [
                (t["orderStatus"], t["orderNo"], t["expireDate"], t["remainingDays"]) for t in truth
            ]


def test_a_renewal_found_and_cancelled_through_the_client(make_sandbox: MakeSandbox) -> None:
    server = make_sandbox(RELAXED)
    (iccid,) = server.state.iccids_with(renewal=True, limit=1)
    (without,) = server.state.iccids_with(renewal=False, limit=1)
    with client_of(server) as client:
        assert client.find_renewal(without) is None
        renewal = client.find_renewal(iccid)
        assert renewal is not None and renewal.iccid == iccid and renewal.periods in (1, 3, 12)
        client.cancel_renewal(iccid, renewal.order_no, renewal.pay_id)
        assert client.find_renewal(iccid) is None
        with pytest.raises(errors.RenewalNotFound):
            client.cancel_renewal(iccid, renewal.order_no, renewal.pay_id)
    assert list(server.state.cancelled_renewals()) == [iccid]


def test_busy_answers_are_retried_and_nothing_is_looked_up_twice(
    make_sandbox: MakeSandbox,
) -> None:
    server = make_sandbox(f"{RELAXED},busy=0.5,seed=11")
    iccids = server.state.iccids_with(limit=30)
    with client_of(server) as client:
        for iccid in iccids:
            assert client.held_plans(iccid) == wire.parse_held_plans(
                {"orderList": server.state.held_plans(iccid)}
            )
    counts = server.state.vshop_call_counts()
    assert counts == {("singleQueryOrder", iccid): 1 for iccid in iccids}
    busy = [c for c in server.state.vshop_calls() if c.code == cards.SYSTEM_BUSY]
    assert len(busy) >= 10 and not any(c.acted for c in busy)


def test_the_servers_daily_quota_stops_the_client_until_midnight(
    make_sandbox: MakeSandbox,
) -> None:
    server = make_sandbox(f"{RELAXED},daily_quota=2")
    iccids = server.state.iccids_with(limit=3)
    with client_of(server) as client:
        client.verify_card(iccids[0])
        client.list_groups()
        with pytest.raises(errors.QuotaExhausted) as stopped:
            client.verify_card(iccids[2])
    assert stopped.value.source == "server"
    today = datetime.now(UTC).date()
    midnight = datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC)
    assert abs((stopped.value.resets_at - midnight).total_seconds()) <= 5
    refused = server.state.vshop_calls("singleVerify")[-1]
    assert (refused.http_status, refused.acted) == (429, False)
    assert len(server.state.vshop_calls()) == 2  # not retried


def test_every_service_is_served_on_one_port(make_sandbox: MakeSandbox) -> None:
    server = make_sandbox(RELAXED)
    (iccid,) = server.state.iccids_with(limit=1)
    nowhere = "http://127.0.0.1:9"  # nothing listens: only the named services may be used
    with client_of(server, topup=nowhere, vshop=server.base_url, payment=nowhere) as client:
        assert client.verify_card(iccid).iccid == iccid


def test_vshop_calls_on_the_in_process_world_use_its_fake_clock(tmp_path: Path) -> None:
    world = open_world(tmp_path, sims=seed.MIN_SIMS)
    try:
        (iccid,) = world.state.iccids_with(renewal=True, limit=1)
        assert world.client.verify_card(iccid).card_status == cards.CARD_ACTIVE
        held = world.client.held_plans(iccid)
        today = datetime.fromtimestamp(world.clock(), UTC).date()
        (in_use,) = [h for h in held if h.status == cards.HELD_IN_USE]
        assert in_use.remaining_days == (date.fromisoformat(in_use.expire_date) - today).days
        world.clock.sleep(86_400 * 3)  # three days on: the same plan, three days nearer its end
        (later,) = [h for h in world.client.held_plans(iccid) if h.status == cards.HELD_IN_USE]
        assert later.remaining_days == in_use.remaining_days
        assert date.fromisoformat(later.expire_date) - date.fromisoformat(in_use.expire_date) == (
            timedelta(days=3)
        )
    finally:
        world.close()
