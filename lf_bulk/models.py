"""What the API talks about, as plain typed values (independent of how the wire spells it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum


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
class InputCounts:
    """The rows of an input, named as in summary.json (and the journal's runs table)."""

    input_rows: int
    valid: int
    invalid: int
    duplicates: int

    def describe(self) -> str:
        """``'3 rows: 1 valid, 2 invalid, 0 duplicates'``."""
        rows = "row" if self.input_rows == 1 else "rows"
        twins = "duplicate" if self.duplicates == 1 else "duplicates"
        return (
            f"{self.input_rows} {rows}: {self.valid} valid, {self.invalid} invalid, "
            f"{self.duplicates} {twins}"
        )


NO_INPUT = InputCounts(0, 0, 0, 0)


class Operation(StrEnum):
    ADD = "ADD"
    REMOVE = "REMOVE"


class OpStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    SUCCESS = "SUCCESS"
    PARTIAL_SUCCESS = "PARTIAL_SUCCESS"
    FAILED = "FAILED"

    @property
    def is_final(self) -> bool:
        return self not in (OpStatus.PENDING, OpStatus.PROCESSING)


class OutcomeCode(StrEnum):
    """What happened (or, in a dry run's plan, would happen) to one input row: the `outcome` of
    the journal's items and of the reports. The values are the stored and reported text."""

    ADDED = "added"
    REMOVED = "removed"
    ALREADY_MEMBER = "already_member"
    NOT_MEMBER = "not_member"
    FAILED = "failed"
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    PENDING = "pending"
    WOULD_ADD = "would_add"
    WOULD_REMOVE = "would_remove"
    # Per-SIM look-ups and changes (contract v2, design notes §6).
    VERIFIED = "verified"
    REJECTED = "rejected"
    LOOKED_UP = "looked_up"
    CANCELLED = "cancelled"
    NO_RENEWAL = "no_renewal"
    NOT_FOUND = "not_found"
    # Top-ups (`orders create`).
    CREATED = "created"
    EXISTS = "exists"
    WOULD_CREATE = "would_create"


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


# ---------------------------------------------------------------- contract v2: Vshop and Payment


class Service(StrEnum):
    """The three Linksfield services, each with its own base URL per environment."""

    TOPUP = "topup"  # bundle groups and orders
    VSHOP = "vshop"  # the Mall service: cards, plans, held orders, renewals, partner orders
    PAYMENT = "payment"  # the Cashier service


class CardStatus(StrEnum):
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"
    SUSPENDED = "SUSPENDED"


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


class HeldStatus(StrEnum):
    """`orderStatus` of a plan a SIM holds."""

    NOT_STARTED = "1"  # bought, not started
    IN_USE = "2"
    EXPIRED = "3"  # assumed


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


class PayStatus(StrEnum):
    """`payStatus` of a Payment service `resultQuery` answer."""

    SUCCESS = "SUCCESS"
    PENDING = "PENDING"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    REFUNDED = "REFUNDED"


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
