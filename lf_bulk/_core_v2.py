"""STAND-IN for the lead's "core v2" names (v2-spec.md), until they land on main.

Only `lf_bulk.lookups` and its tests import this; once main has the core, they import the same
names from `lf_bulk.models`, `lf_bulk.errors` and `lf_bulk.client`, and this file goes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from lf_bulk.errors import BusinessError, LfBulkError


class CardStatus(StrEnum):
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"
    SUSPENDED = "SUSPENDED"


@dataclass(frozen=True, slots=True)
class CardInfo:
    iccid: str
    card_status: str
    area: str


@dataclass(frozen=True, slots=True)
class PlanOffer:
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
    iccid: str
    order_no: str
    pay_id: str
    plan_name: str
    periods: int | None
    package_type: str
    subscription_time: str


class VshopError(BusinessError):
    pass


class CardNotFound(VshopError):
    pass


class CardNotOwned(VshopError):
    pass


class CardInactive(VshopError):
    pass


class PlanNotFound(VshopError):
    pass


class RenewalNotFound(VshopError):
    pass


class VshopOrderNotFound(VshopError):
    pass


class SystemBusy(VshopError):
    pass


class QuotaExhausted(LfBulkError):
    def __init__(
        self,
        message: str,
        *,
        resets_at: datetime,
        used: int | None = None,
        limit: int | None = None,
        source: str = "ledger",
    ) -> None:
        super().__init__(message)
        self.resets_at = resets_at
        self.used = used
        self.limit = limit
        self.source = source
