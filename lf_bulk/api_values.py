"""The API's answers and requests as plain typed values: groups and their member pages,
add/remove submissions and results, orders, cards, plans, held plans, renewals, top-ups, payments.

Served by `lf_bulk.models` as well (its vocabularies, `Operation`, `OpStatus`, `Service`... are
defined there); kept apart so that a command which reads only the journal does not make them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from lf_bulk.models import Operation, OpStatus


@dataclass(frozen=True, slots=True)
class Bundle:
    bundle_id: str
    bundle_name: str
    data_mb: int | None = None
    validity_days: int | None = None


@dataclass(frozen=True, slots=True)
class Group:
    group_id: str
    group_name: str
    sim_count: int
    bundles: tuple[Bundle, ...] = ()


@dataclass(frozen=True, slots=True)
class MemberPage:
    group_id: str
    total: int
    page_no: int
    page_size: int
    iccids: tuple[str, ...]
    rejected: tuple[str, ...] = ()
    """Listed ids that are not ICCID-like (`wire.is_member_id`), cleaned text: never used."""


@dataclass(frozen=True, slots=True)
class Submission:
    """The synchronous answer to add/remove: the work itself happens later."""

    request_id: str
    accepted: int


@dataclass(frozen=True, slots=True)
class SimResult:
    iccid: str
    succeeded: bool
    reason_code: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class AsyncResult:
    request_id: str
    operation: Operation
    group_id: str
    status: OpStatus
    total: int
    succeeded: int
    failed: int
    results: tuple[SimResult, ...] = ()
    created_at: str = ""
    finished_at: str = ""


@dataclass(frozen=True, slots=True)
class Order:
    """One order. Times stay as the API text; `orders.py` reads them in the time zone setting."""

    order_id: str
    purchase_order_id: str
    sim_id: str
    bundle_id: str
    bundle_name: str
    periods: int | None
    amount: Decimal | None
    currency: str
    pay_status: str
    pay_type: str
    pay_id: str
    created_at: str
    paid_at: str
    start_time: str
    expire_time: str
    auto_renewal: str
    extra: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CardInfo:
    """The answer of card login verification: the card exists, is the partner's, and its state."""

    iccid: str
    card_status: str
    area: str = ""


@dataclass(frozen=True, slots=True)
class PlanOffer:
    """A data plan a SIM can buy; `price` is exact (never a float)."""

    package_code: str
    name: str
    area: str
    data_mb: int | None
    validity_days: int | None
    price: Decimal | None
    currency: str
    auto_renewal: bool


@dataclass(frozen=True, slots=True)
class HeldPlan:
    """A plan a SIM holds. Dates stay the API's `yyyy-MM-dd` text ("" when absent)."""

    status: str
    name: str
    time: int | None
    unit: str
    expire_date: str
    remaining_days: int | None
    order_no: str
    package_code: str
    start_date: str


@dataclass(frozen=True, slots=True)
class Renewal:
    """A SIM's active auto-renewal; a cancel needs its `order_no` and `pay_id`."""

    iccid: str
    order_no: str
    pay_id: str
    plan_name: str
    periods: int | None
    package_type: str
    subscription_time: str  # `yyyy.MM.dd`, as the API writes it


@dataclass(frozen=True, slots=True)
class TopUp:
    """One third-party-payment order to record (SynOrderInfo): a row of `orders create`.

    `amount` is exact; `pay_time` is `yyyy-MM-dd HH:mm:ss` or "" (the server's time then).
    """

    order_no: str
    iccid: str
    package_code: str
    periods: int
    amount: Decimal
    currency: str
    pay_id: str
    pay_type: str = ""
    pay_time: str = ""
    auto_renewal: bool = False


@dataclass(frozen=True, slots=True)
class CreatedOrder:
    """SynOrderInfo's answer: the partner's `order_no` and Linksfield's `order_id`."""

    order_no: str
    order_id: str
    iccid: str


@dataclass(frozen=True, slots=True)
class PaymentResult:
    """A payment's result (`resultQuery`); `amount` exact, `pay_time` the API's text."""

    pay_id: str
    pay_status: str
    amount: Decimal | None
    currency: str
    pay_time: str
    order_no: str
    iccid: str
