"""The sandbox's commercial world (contract v2): deterministic, every kind of card where tests
and the demo look, consistent with the groups, and adopted by an older state file."""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from lf_bulk.sandbox import cards, seed
from lf_bulk.sandbox.state import SandboxState

TODAY = date(2026, 11, 29)


def kinds_of(seeded: Iterable[cards.CardSeed], today: date = TODAY) -> set[str]:
    """The kinds of card a fleet report tells apart."""
    found = set()
    for card in seeded:
        found.add(card.card_status)
        held = cards.held_plans(card, today)
        statuses = {plan["orderStatus"] for plan in held}
        in_use = [plan for plan in held if plan["orderStatus"] == cards.HELD_IN_USE]
        if not held:
            found.add("no_plan")
        if statuses == {cards.HELD_NOT_STARTED} or statuses == {"1", "3"}:
            found.add("pending_only")
        if cards.HELD_EXPIRED in statuses:
            found.add("expired")
        for plan in in_use:
            found.add("expiring" if plan["remainingDays"] <= 7 else "in_use_later")
        if in_use and cards.HELD_NOT_STARTED in statuses:
            found.add("in_use_and_pending")
        if cards.renewal_of(card) is not None:
            found.add("renews")
    return found


EVERY_KIND = {
    "ACTIVE",
    "INACTIVE",
    "SUSPENDED",
    "no_plan",
    "pending_only",
    "expired",
    "expiring",
    "in_use_later",
    "in_use_and_pending",
    "renews",
}


def cards_in(world: seed.World, group_id: str | None) -> list[cards.CardSeed]:
    members = {iccid for iccid, _, group in world.sims if group == group_id}
    return [card for card in world.cards if card.iccid in members]


def test_every_kind_of_card_is_in_the_5000_sim_demo_group(default_world: seed.World) -> None:
    demo = cards_in(default_world, seed.DEMO_GROUP)
    assert len(demo) == 5_000
    assert kinds_of(demo) == EVERY_KIND
    statuses = Counter(card.card_status for card in demo)
    assert statuses[cards.CARD_ACTIVE] > 0.8 * len(demo)  # mostly active


@pytest.mark.parametrize("sims", [seed.MIN_SIMS, 2_000])
def test_every_kind_of_card_is_in_small_test_worlds(sims: int) -> None:
    world = seed.build_world(sims)
    ours = {iccid for iccid, partner, _ in world.sims if partner == seed.PARTNER}
    assert kinds_of(card for card in world.cards if card.iccid in ours) == EVERY_KIND
    if sims >= 2_000:  # 67 SIMs: every kind in the demo group of the tests' usual world
        assert kinds_of(cards_in(world, seed.DEMO_GROUP)) == EVERY_KIND


def test_the_commercial_world_is_deterministic() -> None:
    first, second = seed.build_world(500), seed.build_world(500)
    assert first.cards == second.cards and first.renewals == second.renewals
    assert len(first.cards) == 500
    assert [cards.held_plans(c, TODAY) for c in first.cards] == [
        cards.held_plans(c, TODAY) for c in second.cards
    ]


def test_cards_hold_their_groups_plans_in_their_groups_area() -> None:
    world = seed.build_world(2_000)
    group_of = {iccid: group for iccid, _, group in world.sims}
    for card in world.cards:
        group = group_of[card.iccid]
        if group is None:
            assert card.package_code in cards.LOOSE_PACKAGES[card.area]
        else:
            assert card.area == cards.GROUP_AREAS[group]
            assert card.package_code in cards.GROUP_PACKAGES[group]
        # whatever a card holds, it could have bought
        assert cards.PLANS[card.package_code] in cards.plans_for(card.area)


def test_held_plan_dates_spread_over_the_next_60_days_seen_from_any_day() -> None:
    world = seed.build_world(2_000)
    for today in (TODAY, date(2031, 2, 28)):
        left = []
        for card in world.cards:
            for plan in cards.held_plans(card, today):
                status = plan["orderStatus"]
                if status == cards.HELD_NOT_STARTED:
                    assert (plan["startDate"], plan["expireDate"]) == ("", "")
                    assert plan["remainingDays"] is None
                    continue
                start = date.fromisoformat(plan["startDate"])
                expires = date.fromisoformat(plan["expireDate"])
                assert (expires - start).days == plan["time"] and plan["unit"] == "DAY"
                if status == cards.HELD_IN_USE:
                    assert start < today < expires
                    assert plan["remainingDays"] == (expires - today).days
                    left.append(plan["remainingDays"])
                else:
                    assert expires < today and plan["remainingDays"] == 0
        assert min(left) >= 1 and max(left) <= 60
        assert sum(days <= 7 for days in left) > 20 and len(set(left)) > 40


def test_renewals_are_of_cards_with_an_auto_renewing_plan_in_use() -> None:
    world = seed.build_world(2_000)
    by_iccid = {card.iccid: card for card in world.cards}
    assert len(world.renewals) > 300
    assert len({r.pay_id for r in world.renewals}) == len(world.renewals)
    for renewal in world.renewals:
        card = by_iccid[renewal.iccid]
        (in_use,) = [
            p for p in cards.held_plans(card, TODAY) if p["orderStatus"] == cards.HELD_IN_USE
        ]
        assert renewal.order_no == in_use["orderNo"]
        assert cards.PLANS[renewal.package_code].auto_renewal
        wire = cards.renewal_wire(renewal, seed.PARTNER, TODAY)
        since = TODAY - timedelta(days=renewal.since_days)
        assert wire["subscriptionTime"] == since.strftime("%Y.%m.%d")


def test_the_catalogue_has_exact_prices_areas_and_both_renewal_kinds() -> None:
    assert cards.AREA_EUROPE == "欧洲"
    assert {plan.area for plan in cards.CATALOGUE} == set(cards.AREAS)
    assert len({plan.package_code for plan in cards.CATALOGUE}) == len(cards.CATALOGUE)
    assert {plan.currency for plan in cards.CATALOGUE} >= {"GBP", "EUR", "USD", "JPY"}
    assert {plan.auto_renewal for plan in cards.CATALOGUE} == {True, False}
    assert any(plan.data_mb is None for plan in cards.CATALOGUE)  # an unlimited plan
    for plan in cards.CATALOGUE:
        assert re.fullmatch(r"\d+(\.\d\d)?", plan.price), plan
        assert str(Decimal(plan.price)) == plan.price
    # the groups' bundles are sold under the same code, name and price
    for group in seed.GROUP_PLANS:
        for bundle in group.bundles:
            plan = cards.PLANS[bundle.bundle_id]
            assert (plan.name, plan.price, plan.currency) == (
                bundle.bundle_name,
                bundle.unit_price,
                group.currency,
            )


def test_a_version_1_state_gets_the_cards_of_its_sims(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with SandboxState(path, sims=seed.MIN_SIMS) as state:
        iccid = state.iccids_with(renewal=True, limit=1)[0]
        fresh_card, fresh_renewal = state.card(iccid), state.renewal(iccid)
    with sqlite3.connect(path) as db:  # as a version 1 state was: no Vshop tables
        for table in ("cards", "renewals", "topups", "vshop_calls", "quota_days"):
            db.execute(f"DROP TABLE {table}")
        db.execute("PRAGMA user_version = 1")
    db.close()

    with SandboxState(path, sims=seed.MIN_SIMS) as state:
        assert state.card(iccid) == fresh_card
        assert state.renewal(iccid) == fresh_renewal
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    db.close()
