"""What the API talks about: the vocabularies (enums) and the input counts.

The API's answers and requests (groups, member pages, results, orders, cards, plans, renewals,
top-ups, payments) are in `lf_bulk.api_values`: the journal needs this module, and
`lf-bulk runs list` should not make fourteen dataclasses it never uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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


class HeldStatus(StrEnum):
    """`orderStatus` of a plan a SIM holds."""

    NOT_STARTED = "1"  # bought, not started
    IN_USE = "2"
    EXPIRED = "3"  # assumed


class PayStatus(StrEnum):
    """`payStatus` of a Payment service `resultQuery` answer."""

    SUCCESS = "SUCCESS"
    PENDING = "PENDING"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    REFUNDED = "REFUNDED"
