"""The sandbox's commercial world (contract v2): cards, the plan catalogue, held plans, renewals.

Every SIM gets a card and a *profile*: its card status, which plans it holds (in use, bought and
not started, expired, none) and whether it renews automatically. Profiles are dealt in turn to
the SIMs of each group (and to the SIMs in no group) in ICCID order, so every kind appears in any
group of `len(PROFILES)` SIMs or more (the 5,000-SIM demo group, the 67 of a 2,000-SIM test
world) and among the loose SIMs of the smallest world.

Dates are kept as day offsets and written relative to the day a call is answered: a state file
seeded months ago still has plans expiring within the week. So `held_plans(card, today)` is a pure
function of the card and the day, and tests read the same truth the server answers with.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from enum import Enum
from typing import Any, NamedTuple

from lf_bulk import wire
from lf_bulk.models import CardStatus, HeldStatus

AREA_EUROPE = "欧洲"
AREA_NORTH_AMERICA = "北美"
AREA_ASIA = "亚洲"
AREA_GLOBAL = "全球"  # a global plan can be bought by a card of any area
AREAS = (AREA_EUROPE, AREA_NORTH_AMERICA, AREA_ASIA, AREA_GLOBAL)

# Vshop and Payment error codes (the wire profile names them; short names for the sandbox).
CARD_NOT_FOUND = wire.VSHOP_CARD_NOT_FOUND
CARD_NOT_OWNED = wire.VSHOP_CARD_NOT_OWNED
CARD_INACTIVE_CODE = wire.VSHOP_CARD_INACTIVE
PLAN_NOT_FOUND = wire.VSHOP_PLAN_NOT_FOUND
RENEWAL_NOT_FOUND = wire.VSHOP_RENEWAL_NOT_FOUND
DUPLICATE_ORDER_NO = wire.VSHOP_DUPLICATE_ORDER_NO
INVALID_PARAMETER = wire.VSHOP_INVALID_PARAMETER
SYSTEM_BUSY = wire.VSHOP_SYSTEM_BUSY
PAY_NOT_FOUND = wire.PAY_NOT_FOUND

CARD_ACTIVE = CardStatus.ACTIVE.value
CARD_INACTIVE = CardStatus.INACTIVE.value
CARD_SUSPENDED = CardStatus.SUSPENDED.value

HELD_NOT_STARTED = HeldStatus.NOT_STARTED.value
HELD_IN_USE = HeldStatus.IN_USE.value
HELD_EXPIRED = HeldStatus.EXPIRED.value

PACKAGE_TYPE = "MONTHLY"
DATE_FORMAT = "%Y-%m-%d"  # held plans' dates (yyyy-MM-dd)
SUBSCRIPTION_FORMAT = "%Y.%m.%d"  # a renewal's subscriptionTime (yyyy.MM.dd)

EXPIRING_DAYS = range(1, 7)  # "expiring": within the week, never today (no boundary to argue)
LATER_DAYS = range(9, 61)  # in use, expiring over the next two months
EXPIRED_DAYS = range(1, 91)  # expired this many days ago


@dataclass(frozen=True)
class PlanSeed:
    """One plan of the catalogue, in the wire's terms (`price` an exact decimal string)."""

    package_code: str
    name: str
    area: str
    data_mb: int | None  # None: unlimited
    validity_days: int
    price: str
    currency: str
    auto_renewal: bool

    def wire(self) -> dict[str, Any]:
        return {
            "packageCode": self.package_code,
            "servicePlanShowName": self.name,
            "area": self.area,
            "dataMb": self.data_mb,
            "validityDays": self.validity_days,
            "price": self.price,
            "currency": self.currency,
            "autoRenewal": "1" if self.auto_renewal else "0",
        }


def _plan(
    code: str,
    name: str,
    area: str,
    mb: int | None,
    days: int,
    price: str,
    currency: str,
    auto: bool,
) -> PlanSeed:
    return PlanSeed(code, name, area, mb, days, price, currency, auto)


# The groups' bundles (same codes, names and prices as `seed.GROUP_PLANS`), the loose SIMs'
# plans (`seed.CATALOGUE`), and a few sold only through the Vshop: an unlimited plan, a
# zero-decimal currency, prices whose sums a float would get wrong.
CATALOGUE: tuple[PlanSeed, ...] = (
    _plan("DP1001", "UK 1GB / 30 days", AREA_EUROPE, 1_024, 30, "4.12", "GBP", True),
    _plan("DP1002", "UK 5GB / 30 days", AREA_EUROPE, 5_120, 30, "9.99", "GBP", True),
    _plan("DP2001", "Europe 3GB / 30 days", AREA_EUROPE, 3_072, 30, "7.50", "EUR", True),
    _plan("DP3001", "USA 500MB / 90 days", AREA_NORTH_AMERICA, 500, 90, "3.25", "USD", True),
    _plan(
        "DP3002", "North America 2GB / 30 days", AREA_NORTH_AMERICA, 2_048, 30, "6.18", "USD", True
    ),
    _plan("DP4001", "Nordics 10GB / 30 days", AREA_EUROPE, 10_240, 30, "14.90", "EUR", True),
    _plan("DP5001", "Global 20GB / 30 days", AREA_GLOBAL, 20_480, 30, "24.00", "GBP", True),
    _plan("DP6001", "World 1GB / 7 days", AREA_GLOBAL, 1_024, 7, "2.36", "USD", False),
    _plan("DP9001", "USA 1GB / 30 days", AREA_NORTH_AMERICA, 1_024, 30, "5.00", "USD", True),
    _plan("DP0001", "Global 1GB / 30 days", AREA_GLOBAL, 1_024, 30, "5.50", "USD", True),
    _plan("DP0002", "Global 3GB / 30 days", AREA_GLOBAL, 3_072, 30, "12.36", "USD", True),
    _plan("DP0003", "Europe 1GB / 7 days", AREA_EUROPE, 1_024, 7, "1.99", "EUR", False),
    _plan("DP20190726001274", "Europe 5GB / 30 days", AREA_EUROPE, 5_120, 30, "0.10", "EUR", True),
    _plan("DP20190726001275", "Europe unlimited / 7 days", AREA_EUROPE, None, 7, "0.20", "EUR", False),
    _plan("DP20200101000001", "Japan 1GB / 7 days", AREA_ASIA, 1_024, 7, "980", "JPY", False),
    _plan("DP20200101000002", "Asia 3GB / 15 days", AREA_ASIA, 3_072, 15, "8.88", "USD", True),
    _plan(
        "DP20200101000003", "North America 10GB / 30 days", AREA_NORTH_AMERICA, 10_240, 30,
        "1234.50", "USD", False,
    ),
)  # fmt: skip
PLANS: Mapping[str, PlanSeed] = {plan.package_code: plan for plan in CATALOGUE}

# What a group's SIMs are: their area, and the plans they hold (their group's bundles).
GROUP_AREAS: Mapping[str, str] = {
    "G1000001": AREA_EUROPE,
    "G1000002": AREA_EUROPE,
    "G1000003": AREA_NORTH_AMERICA,
    "G1000004": AREA_EUROPE,
    "G1000005": AREA_GLOBAL,
    "G1000006": AREA_GLOBAL,
    "G9000001": AREA_NORTH_AMERICA,
}
GROUP_PACKAGES: Mapping[str, tuple[str, ...]] = {
    "G1000001": ("DP1001", "DP1002"),
    "G1000002": ("DP2001",),
    "G1000003": ("DP3001", "DP3002"),
    "G1000004": ("DP4001",),
    "G1000005": ("DP5001",),
    "G1000006": ("DP6001",),
    "G9000001": ("DP9001",),
}
# A SIM in no group: its area by its ICCID, the plans of that area it may hold.
LOOSE_PACKAGES: Mapping[str, tuple[str, ...]] = {
    AREA_EUROPE: ("DP0003", "DP20190726001274"),
    AREA_NORTH_AMERICA: ("DP9001", "DP3002"),
    AREA_ASIA: ("DP20200101000002",),
    AREA_GLOBAL: ("DP0001", "DP0002"),
}


class Expiry(Enum):
    """Whether a profile's plan in use expires within the week or later."""

    SOON = "soon"
    LATER = "later"


@dataclass(frozen=True)
class Profile:
    status: str
    in_use: Expiry | None  # a plan in use, and when it expires
    pending: bool  # a plan bought and not started
    expired: bool  # a plan that ran out
    renews: bool  # the plan in use renews automatically (only with one in use)


def _profile(
    status: str = CARD_ACTIVE,
    in_use: Expiry | None = None,
    *,
    pending: bool = False,
    expired: bool = False,
    renews: bool = False,
) -> Profile:
    return Profile(status, in_use, pending, expired, renews)


SOON, LATER = Expiry.SOON, Expiry.LATER
# Dealt in this order; mostly active cards, most with a plan in use.
PROFILES: tuple[Profile, ...] = (
    _profile(in_use=SOON, renews=True),
    _profile(in_use=LATER),
    _profile(in_use=LATER, pending=True),
    _profile(pending=True),  # pending only
    _profile(in_use=LATER, renews=True),
    _profile(expired=True),  # nothing in use, nothing pending
    _profile(),  # no plan at all
    _profile(CARD_INACTIVE),
    _profile(in_use=SOON),
    _profile(in_use=LATER, expired=True),
    _profile(CARD_SUSPENDED, expired=True),
    _profile(in_use=LATER, renews=True),
    _profile(in_use=SOON, pending=True),
    _profile(in_use=LATER),
    _profile(),
    _profile(CARD_INACTIVE, pending=True),
    _profile(in_use=LATER, pending=True, renews=True),
    _profile(expired=True, pending=True),
    _profile(in_use=LATER),
    _profile(in_use=SOON, renews=True),
)


class CardSeed(NamedTuple):  # a tuple: 150,000 of them are built for the default world
    iccid: str
    card_status: str
    area: str
    package_code: str
    profile: int  # index into PROFILES


class RenewalSeed(NamedTuple):
    iccid: str
    order_no: str
    pay_id: str
    package_code: str
    order_period: int
    since_days: int  # subscribed this many days before the day it is read


def build_cards(sims: Iterable[tuple[str, str, str | None]]) -> list[CardSeed]:
    """A card per SIM `(iccid, partner, group_id)`, profiles dealt per group in ICCID order."""
    cards = []
    rank: dict[str | None, int] = {}
    dealt = len(PROFILES)
    for iccid, _, group_id in sorted(sims, key=_first):
        position = rank.get(group_id, 0)
        rank[group_id] = position + 1
        if group_id is not None and group_id in GROUP_AREAS:
            area = GROUP_AREAS[group_id]
            packages = GROUP_PACKAGES[group_id]
        else:
            area = AREAS[_number(iccid) % len(AREAS)]
            packages = LOOSE_PACKAGES[area]
        index = position % dealt
        package = packages[(position // dealt) % len(packages)]
        cards.append(CardSeed(iccid, PROFILES[index].status, area, package, index))
    return cards


def _first(row: tuple[str, str, str | None]) -> str:
    return row[0]


def build_renewals(cards: Iterable[CardSeed]) -> list[RenewalSeed]:
    return [renewal for card in cards if (renewal := renewal_of(card)) is not None]


def renewal_of(card: CardSeed) -> RenewalSeed | None:
    profile = PROFILES[card.profile]
    if not (profile.renews and profile.in_use and PLANS[card.package_code].auto_renewal):
        return None
    number = _number(card.iccid)
    return RenewalSeed(
        iccid=card.iccid,
        order_no=order_no(card.iccid, HELD_IN_USE),
        pay_id="sub_" + _token(card.iccid, 24),
        package_code=card.package_code,
        order_period=(1, 1, 3, 12)[number % 4],
        since_days=30 + number % 300,
    )


def order_no(iccid: str, slot: str) -> str:
    """The Vshop order number of a seeded held plan (one per slot: pending, in use, expired)."""
    return f"VS{iccid}{slot}"


def plans_for(area: str, wanted_area: str | None = None) -> list[PlanSeed]:
    """The plans a card of `area` can buy (its area's and the global ones), in catalogue order."""
    offered = [plan for plan in CATALOGUE if plan.area in (area, AREA_GLOBAL)]
    if wanted_area:
        offered = [plan for plan in offered if plan.area == wanted_area]
    return offered


def held_plans(card: CardSeed, today: date) -> list[dict[str, Any]]:
    """The card's held plans on `today`, in the wire shape (in use, then pending, then expired)."""
    profile = PROFILES[card.profile]
    plan = PLANS[card.package_code]
    number = _number(card.iccid)
    held = []
    if profile.in_use is not None:
        days = EXPIRING_DAYS if profile.in_use is Expiry.SOON else LATER_DAYS
        left = days[number % len(days)]
        periods = left // plan.validity_days + 1  # started before today
        length = plan.validity_days * periods
        expires = today + timedelta(days=left)
        held.append(
            _held(card, plan, HELD_IN_USE, length, expires - timedelta(days=length), expires, left)
        )
    if profile.pending:
        held.append(_held(card, plan, HELD_NOT_STARTED, plan.validity_days, None, None, None))
    if profile.expired:
        expires = today - timedelta(days=EXPIRED_DAYS[number // 7 % len(EXPIRED_DAYS)])
        start = expires - timedelta(days=plan.validity_days)
        held.append(_held(card, plan, HELD_EXPIRED, plan.validity_days, start, expires, 0))
    return held


def _held(
    card: CardSeed,
    plan: PlanSeed,
    status: str,
    length: int,
    start: date | None,
    expires: date | None,
    remaining: int | None,
) -> dict[str, Any]:
    return {
        "orderStatus": status,
        "servicePlanShowName": plan.name,
        "time": length,
        "unit": "DAY",
        "expireDate": expires.strftime(DATE_FORMAT) if expires else "",
        "remainingDays": remaining,
        "orderNo": order_no(card.iccid, status),
        "packageCode": plan.package_code,
        "startDate": start.strftime(DATE_FORMAT) if start else "",
    }


def topup_plan(order_no: str, package_code: str, periods: int) -> dict[str, Any]:
    """A plan bought through SynOrderInfo: not started until the plan in use runs out."""
    plan = PLANS[package_code]
    return {
        "orderStatus": HELD_NOT_STARTED,
        "servicePlanShowName": plan.name,
        "time": plan.validity_days * periods,
        "unit": "DAY",
        "expireDate": "",
        "remainingDays": None,
        "orderNo": order_no,
        "packageCode": plan.package_code,
        "startDate": "",
    }


def renewal_wire(renewal: RenewalSeed, partner: str, today: date) -> dict[str, Any]:
    since = today - timedelta(days=renewal.since_days)
    return {
        "deviceCode": renewal.iccid,
        "orderNo": renewal.order_no,
        "orderPeriod": str(renewal.order_period),
        "packageType": PACKAGE_TYPE,
        "partnerCode": partner,
        "payId": renewal.pay_id,
        "servicePlanShowName": PLANS[renewal.package_code].name,
        "subscriptionTime": since.strftime(SUBSCRIPTION_FORMAT),
    }


def _number(iccid: str) -> int:
    """A stable number per ICCID (Python's hash() changes between processes)."""
    return zlib.crc32(iccid.encode())


def _token(iccid: str, length: int) -> str:
    return hashlib.sha256(f"lf-bulk-sandbox:{iccid}".encode()).hexdigest()[:length]
