"""The deterministic world a fresh sandbox starts with: partners, groups, plans, SIMs and orders.

At the default size (`DEFAULT_SIMS`) the group sizes are exactly the `GroupPlan.size` values, e.g.
`DEMO_GROUP` has 5,000 SIMs, and most SIMs are in no group so that tests and benchmarks can add tens
of thousands at once. A smaller `sims` scales every count down in proportion (each non-empty group
keeps at least one SIM), which keeps tests fast. The same `sims` always gives the same world.
Each SIM also gets a card (status, area, the plans it holds, maybe an auto-renewal): see `cards.py`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from lf_bulk.iccid import with_check_digit
from lf_bulk.sandbox import PARTNER as PARTNER  # the partner the sandbox serves by default
from lf_bulk.sandbox import cards as vshop_cards

OTHER_PARTNER = "P000999"  # owns some SIMs, so that SIM_NOT_OWNED can happen

DEFAULT_SIMS = 150_000
MIN_SIMS = 100
OTHER_PARTNER_SIMS = 1_000
ORDERS = 6_500

DEMO_GROUP = "G1000001"  # 5,000 SIMs at the default size
FLEET_GROUP = "G1000002"  # 3,200
TRACKER_GROUP = "G1000003"  # 1,800
PILOT_GROUP = "G1000004"  # 400
STAFF_GROUP = "G1000005"  # 120
EMPTY_GROUP = "G1000006"  # always empty
FOREIGN_GROUP = "G9000001"  # 300, owned by OTHER_PARTNER: PARTNER gets code 1004 for it

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # order times, as the API writes them
_WORLD_SEED = 20_261_129
_CENTS = Decimal("0.01")
# Multiplying by a number coprime with 10 permutes the serials, so that group members are spread
# over the ICCID order instead of forming one block.
_SERIAL_STRIDE = 2_654_435_761


@dataclass(frozen=True)
class BundleSeed:
    bundle_id: str
    bundle_name: str
    data_mb: int
    validity_days: int
    unit_price: str  # per period, in the group's currency


@dataclass(frozen=True)
class GroupPlan:
    group_id: str
    partner_code: str
    group_name: str
    size: int  # at DEFAULT_SIMS
    currency: str
    bundles: tuple[BundleSeed, ...]


@dataclass(frozen=True)
class SeedOrder:
    partner_code: str
    order: dict[str, Any]  # the wire shape, extra fields included


@dataclass(frozen=True)
class World:
    groups: tuple[GroupPlan, ...]
    sims: list[tuple[str, str, str | None]] = field(repr=False)  # (iccid, partner, group_id)
    orders: list[SeedOrder] = field(repr=False)
    cards: list[vshop_cards.CardSeed] = field(repr=False, default_factory=list)
    renewals: list[vshop_cards.RenewalSeed] = field(repr=False, default_factory=list)


def _bundle(bundle_id: str, name: str, data_mb: int, days: int, price: str) -> BundleSeed:
    return BundleSeed(bundle_id, name, data_mb, days, price)


GROUP_PLANS: tuple[GroupPlan, ...] = (
    GroupPlan(
        DEMO_GROUP,
        PARTNER,
        "Demo fleet - UK logistics",
        5_000,
        "GBP",
        (
            _bundle("DP1001", "UK 1GB / 30 days", 1_024, 30, "4.12"),
            _bundle("DP1002", "UK 5GB / 30 days", 5_120, 30, "9.99"),
        ),
    ),
    GroupPlan(
        FLEET_GROUP,
        PARTNER,
        "EU rental cars",
        3_200,
        "EUR",
        (_bundle("DP2001", "Europe 3GB / 30 days", 3_072, 30, "7.50"),),
    ),
    GroupPlan(
        TRACKER_GROUP,
        PARTNER,
        "US asset trackers",
        1_800,
        "USD",
        (
            _bundle("DP3001", "USA 500MB / 90 days", 500, 90, "3.25"),
            _bundle("DP3002", "North America 2GB / 30 days", 2_048, 30, "6.18"),
        ),
    ),
    GroupPlan(
        PILOT_GROUP,
        PARTNER,
        "Pilot - Nordic buses",
        400,
        "EUR",
        (_bundle("DP4001", "Nordics 10GB / 30 days", 10_240, 30, "14.90"),),
    ),
    GroupPlan(
        STAFF_GROUP,
        PARTNER,
        "Staff phones",
        120,
        "GBP",
        (_bundle("DP5001", "Global 20GB / 30 days", 20_480, 30, "24.00"),),
    ),
    GroupPlan(
        EMPTY_GROUP,
        PARTNER,
        "Spare plan (no SIMs yet)",
        0,
        "USD",
        (_bundle("DP6001", "World 1GB / 7 days", 1_024, 7, "2.36"),),
    ),
    GroupPlan(
        FOREIGN_GROUP,
        OTHER_PARTNER,
        "Another partner's fleet",
        300,
        "USD",
        (_bundle("DP9001", "USA 1GB / 30 days", 1_024, 30, "5.00"),),
    ),
)

# What SIMs outside any group buy.
CATALOGUE: tuple[BundleSeed, ...] = (
    _bundle("DP0001", "Global 1GB / 30 days", 1_024, 30, "5.50"),
    _bundle("DP0002", "Global 3GB / 30 days", 3_072, 30, "12.36"),
    _bundle("DP0003", "Europe 1GB / 7 days", 1_024, 7, "1.99"),
)


def make_iccid(index: int) -> str:
    """The ICCID of the seeded SIM number `index`: 19 or 20 digits, Luhn-valid."""
    if index % 4 == 0:
        serial = (index * _SERIAL_STRIDE + 97_531) % 10**12
        return with_check_digit(f"8985242{serial:012d}")
    serial = (index * _SERIAL_STRIDE + 13_579) % 10**11
    return with_check_digit(f"8944500{serial:011d}")


def unseeded_iccid(n: int) -> str:
    """A valid ICCID that no seeded world contains (for SIM_NOT_FOUND)."""
    return with_check_digit(f"8933000{n:011d}")


def scaled(count: int, sims: int) -> int:
    if sims >= DEFAULT_SIMS or count == 0:
        return count
    return max(1, round(count * sims / DEFAULT_SIMS))


def group_sizes(sims: int = DEFAULT_SIMS) -> dict[str, int]:
    return {plan.group_id: scaled(plan.size, sims) for plan in GROUP_PLANS}


def build_world(sims: int = DEFAULT_SIMS) -> World:
    if sims < MIN_SIMS:
        raise ValueError(f"a sandbox world needs at least {MIN_SIMS} SIMs, not {sims}")
    iccids = [make_iccid(i) for i in range(sims)]
    sim_rows = _assign_sims(iccids, sims)
    rng = random.Random(_WORLD_SEED)
    orders = _orders(sim_rows, scaled(ORDERS, sims), rng)
    cards = vshop_cards.build_cards(sim_rows)
    renewals = vshop_cards.build_renewals(cards)
    return World(GROUP_PLANS, sim_rows, orders, cards, renewals)


# ---------------------------------------------------------------- SIMs


def _assign_sims(iccids: list[str], sims: int) -> list[tuple[str, str, str | None]]:
    sizes = group_sizes(sims)
    other_partner_sims = max(sizes[FOREIGN_GROUP], scaled(OTHER_PARTNER_SIMS, sims))
    owners = [OTHER_PARTNER] * other_partner_sims + [PARTNER] * (sims - other_partner_sims)
    groups: list[str | None] = [FOREIGN_GROUP] * sizes[FOREIGN_GROUP]
    groups += [None] * (other_partner_sims - sizes[FOREIGN_GROUP])
    for plan in GROUP_PLANS:
        if plan.partner_code == PARTNER:
            groups += [plan.group_id] * sizes[plan.group_id]
    groups += [None] * (sims - len(groups))
    return list(zip(iccids, owners, groups, strict=True))


# ---------------------------------------------------------------- orders

_PAY_STATUSES = ("PAID", "UNPAID", "FAILED", "REFUNDED")
_PAY_STATUS_WEIGHTS = (75, 10, 10, 5)
_CURRENCIES = ("GBP", "EUR", "USD")
_CHANNELS = ("app", "web", "partner_api")
# Orders sharing one purchase_order_id (a retried checkout): the lookup must answer with the latest
# PAID one, or with the latest order when none was paid.
_DUPLICATE_PATTERNS: tuple[tuple[str, ...], ...] = (
    ("FAILED", "PAID"),
    ("PAID", "PAID"),
    ("UNPAID", "PAID", "FAILED"),
    ("FAILED", "UNPAID"),
)
_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
_SPAN_SECONDS = 600 * 86_400


@dataclass
class _OrderSequence:
    next_order: int = 1
    next_purchase: int = 1

    def order_id(self) -> str:
        self.next_order += 1
        return f"LF{100_000_000 + self.next_order - 1}"

    def purchase_order_id(self) -> str:
        self.next_purchase += 1
        return f"PO{700_000_000 + self.next_purchase - 1}"


def _orders(
    sim_rows: list[tuple[str, str, str | None]], count: int, rng: random.Random
) -> list[SeedOrder]:
    grouped = [row for row in sim_rows if row[2] is not None and row[1] == PARTNER]
    foreign = [row for row in sim_rows if row[1] == OTHER_PARTNER]
    loose = [row for row in sim_rows if row[2] is None and row[1] == PARTNER]
    pools = (grouped, foreign, loose)
    plans = {plan.group_id: plan for plan in GROUP_PLANS}
    sequence = _OrderSequence()
    orders: list[SeedOrder] = []
    duplicate_sets = max(len(_DUPLICATE_PATTERNS), count // 100)
    for n in range(duplicate_sets):
        sim = rng.choice(grouped)
        pattern = _DUPLICATE_PATTERNS[n % len(_DUPLICATE_PATTERNS)]
        purchase_order_id = sequence.purchase_order_id()
        created = _random_time(rng)
        for status in pattern:
            created += timedelta(minutes=rng.randint(5, 600))
            orders.append(
                _order(sim, plans, sequence.order_id(), purchase_order_id, status, created, rng)
            )
    while len(orders) < count:
        pool = rng.choices(pools, weights=(70, 10, 20))[0] or grouped
        sim = rng.choice(pool)
        status = rng.choices(_PAY_STATUSES, weights=_PAY_STATUS_WEIGHTS)[0]
        orders.append(
            _order(
                sim,
                plans,
                sequence.order_id(),
                sequence.purchase_order_id(),
                status,
                _random_time(rng),
                rng,
            )
        )
    return orders


def _random_time(rng: random.Random) -> datetime:
    return _EPOCH + timedelta(seconds=rng.randrange(_SPAN_SECONDS))


def _order(
    sim: tuple[str, str, str | None],
    plans: dict[str, GroupPlan],
    order_id: str,
    purchase_order_id: str,
    pay_status: str,
    created: datetime,
    rng: random.Random,
) -> SeedOrder:
    iccid, partner_code, group_id = sim
    if group_id is not None:
        plan = plans[group_id]
        bundle, currency = rng.choice(plan.bundles), plan.currency
    else:
        bundle, currency = rng.choice(CATALOGUE), rng.choice(_CURRENCIES)
    periods = rng.choice((1, 1, 1, 3, 6, 12))
    paid = pay_status in ("PAID", "REFUNDED")
    paid_at = created + timedelta(seconds=rng.randint(3, 300))
    expires = paid_at + timedelta(days=periods * bundle.validity_days)
    pay_type = rng.choices(("STRIPE", "PAYPAL", "PARTNER"), weights=(60, 20, 20))[0]
    order: dict[str, Any] = {
        "order_id": order_id,
        "purchase_order_id": purchase_order_id,
        "sim_id": iccid,
        "bundle_id": bundle.bundle_id,
        "bundle_name": bundle.bundle_name,
        "periods": periods,
        "amount": str((Decimal(bundle.unit_price) * periods).quantize(_CENTS)),
        "currency": currency,
        "pay_status": pay_status,
        "pay_type": pay_type,
        "pay_id": _pay_id(pay_type, rng) if pay_status != "UNPAID" else "",
        "created_at": created.strftime(TIME_FORMAT),
        "paid_at": paid_at.strftime(TIME_FORMAT) if paid else "",
        "start_time": paid_at.strftime(TIME_FORMAT) if paid else "",
        "expire_time": expires.strftime(TIME_FORMAT) if paid else "",
        "auto_renewal": "1" if rng.random() < 0.3 else "0",
    }
    if rng.random() < 0.15:
        order["channel"] = rng.choice(_CHANNELS)  # a field clients do not know, and must keep
    return SeedOrder(partner_code, order)


def _pay_id(pay_type: str, rng: random.Random) -> str:
    if pay_type == "STRIPE":
        return "pi_" + "".join(
            rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789", k=24)
        )
    if pay_type == "PAYPAL":
        return "PAYID-" + "".join(rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", k=20))
    return f"TX{rng.randrange(10**14):014d}"
