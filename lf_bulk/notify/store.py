"""`<home>/notify.db`: the Recharge Success events this receiver accepted, durably, once each.

A delivery is recorded in one transaction, committed with `synchronous = FULL` (the commit is on
disk, not only in the operating system's cache) before the receiver answers 2xx: an event that got
a 2xx survives a kill -9 or a power cut. Linksfield re-sends an event it did not see answered, with
a new transaction id, so events are kept once per business key (`wire.push_business_key`: the
order id, else order number and payment id; never the transaction id); a re-sent one adds a row to
`deliveries` and nothing else. An authenticated event without a business key is kept all the same
(under a digest of its body without the transaction id), so nothing that was answered 2xx is lost.

Kept per event: the raw body exactly as received, the verified headers, when it was first and last
received, and its fields as text through `wire.clean_text` (ICCIDs as text; the amount as the
exact decimal text sent, or NULL when it is not a decimal).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any

from lf_bulk import sqlite, wire
from lf_bulk.errors import ForeignDatabase
from lf_bulk.signing import canonical_json

STORE_NAME = "notify.db"
APPLICATION_ID = 0x4C464E54  # "LFNT" in the SQLite header: this file is a push store
SCHEMA_VERSION = 1
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
"""`received_at` in the store: UTC, fixed width, so text order is time order."""

_SCHEMA = """
CREATE TABLE events (
    event_id INTEGER PRIMARY KEY,
    business_key TEXT NOT NULL UNIQUE,
    received_at TEXT NOT NULL,
    last_received_at TEXT NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 1,
    transaction_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    event_time TEXT NOT NULL,
    key_id TEXT NOT NULL,
    headers TEXT NOT NULL,
    body BLOB NOT NULL,
    order_id TEXT NOT NULL,
    order_no TEXT NOT NULL,
    iccid TEXT NOT NULL,
    package_code TEXT NOT NULL,
    plan TEXT NOT NULL,
    periods INTEGER,
    amount TEXT,
    currency TEXT NOT NULL,
    pay_id TEXT NOT NULL,
    pay_time TEXT NOT NULL,
    start_date TEXT NOT NULL,
    expire_date TEXT NOT NULL
);
CREATE INDEX events_by_received_at ON events (received_at);
CREATE TABLE deliveries (
    delivery_id INTEGER PRIMARY KEY,
    event_id INTEGER NOT NULL REFERENCES events (event_id),
    received_at TEXT NOT NULL,
    transaction_id TEXT NOT NULL
);
"""


def _create_schema(db: sqlite3.Connection) -> None:
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)


STORE_FILE = sqlite.FileKind(
    name="push store",
    application_id=APPLICATION_ID,
    version=SCHEMA_VERSION,
    create=_create_schema,
    # Version 1 is the first: no older push store exists, so nothing is ever recognised as
    # one (`is_legacy`) and the step from 0 is never taken.
    migrations=(_create_schema,),
    is_legacy=lambda db: False,
)


class Outcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"  # a re-send of an event already stored: counted, not stored again


@dataclass(frozen=True)
class Delivery:
    """One verified push, as received."""

    body: bytes
    event: Mapping[str, Any]
    headers: wire.PushHeaders
    received_at: datetime


@dataclass(frozen=True)
class StoredPush:
    """An event as the store keeps it, with typed values for readers."""

    business_key: str
    event_type: str
    transaction_id: str
    received_at: datetime
    last_received_at: datetime
    deliveries: int
    order_id: str
    order_no: str
    iccid: str
    package_code: str
    plan: str
    periods: int | None
    amount: Decimal | None
    currency: str
    pay_id: str
    pay_time: str
    start_date: str
    expire_date: str

    @property
    def is_recharge(self) -> bool:
        return self.event_type == wire.PUSH_EVENT_RECHARGE_SUCCESS


def store_path(home: Path) -> Path:
    return Path(home) / STORE_NAME


def stored_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def business_key(event: Mapping[str, Any]) -> str:
    """`wire.push_business_key`, or a digest of the body without its transaction id."""
    key = wire.push_business_key(event)
    if key is not None:
        return key
    kept = {k: v for k, v in event.items() if k != "transactionId"}
    digest = hashlib.sha256(canonical_json(kept).encode("utf-8", "surrogatepass")).hexdigest()
    event_type = wire.clean_text(str(event.get("eventType") or "?"))
    return f"{event_type}/body-sha256={digest}"


def _decimal_text(text: str) -> str | None:
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return None
    return str(amount) if amount.is_finite() else None


MAX_PERIODS = 10_000
"""More periods than any plan is bought for: a larger number is not a count (kept in the body)."""


def _periods(text: str) -> int | None:
    try:
        periods = int(text) if len(text) <= 6 else None
    except ValueError:
        return None
    return periods if periods is not None and 0 <= periods <= MAX_PERIODS else None


class PushStore:
    """The push store of one home. Not thread-safe: one writer thread, or one reader."""

    def __init__(self, path: Path, *, check_same_thread: bool = True) -> None:
        self.path = Path(path)
        self.db = sqlite.connect(self.path, STORE_FILE, check_same_thread=check_same_thread)
        # Every commit on disk before it returns: the receiver answers 2xx right after it.
        self.db.execute("PRAGMA synchronous = FULL")

    @classmethod
    def open(cls, home: Path, *, check_same_thread: bool = True) -> PushStore:
        folder = sqlite.ensure_private_dir(Path(home))
        return cls(folder / STORE_NAME, check_same_thread=check_same_thread)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> PushStore:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def record(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        """Keep each delivery (new events, and re-sends counted), in one durable transaction."""
        outcomes = []
        with sqlite.transaction(self.db):
            for delivery in deliveries:
                outcomes.append(self._record_one(delivery))
        return outcomes

    def _record_one(self, delivery: Delivery) -> Outcome:
        key = business_key(delivery.event)
        fields = wire.parse_push_event(delivery.event)
        at = stored_time(delivery.received_at)
        found = self.db.execute(
            "SELECT event_id FROM events WHERE business_key = ?", (key,)
        ).fetchone()
        if found is not None:
            event_id = int(found[0])
            self.db.execute(
                "UPDATE events SET deliveries = deliveries + 1, last_received_at = ?"
                " WHERE event_id = ?",
                (at, event_id),
            )
            outcome = Outcome.DUPLICATE
        else:
            event_id = self._insert(key, fields, delivery, at)
            outcome = Outcome.STORED
        self.db.execute(
            "INSERT INTO deliveries (event_id, received_at, transaction_id) VALUES (?, ?, ?)",
            (event_id, at, fields.transaction_id),
        )
        return outcome

    def _insert(self, key: str, fields: wire.PushedOrder, delivery: Delivery, at: str) -> int:
        headers = json.dumps(delivery.headers.as_stored(), sort_keys=True)
        cursor = self.db.execute(
            "INSERT INTO events (business_key, received_at, last_received_at, transaction_id,"
            " event_type, event_time, key_id, headers, body, order_id, order_no, iccid,"
            " package_code, plan, periods, amount, currency, pay_id, pay_time, start_date,"
            " expire_date) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key,
                at,
                at,
                fields.transaction_id,
                fields.event_type,
                fields.event_time,
                wire.clean_text(delivery.headers.key_id),
                headers,
                delivery.body,
                fields.order_id,
                fields.order_no,
                fields.iccid,
                fields.package_code,
                fields.plan,
                _periods(fields.periods),
                _decimal_text(fields.amount),
                fields.currency,
                fields.pay_id,
                fields.pay_time,
                fields.start_date,
                fields.expire_date,
            ),
        )
        return int(cursor.lastrowid or 0)

    def events(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[StoredPush]:
        """Every stored event first received in [since, until), oldest first."""
        where, params = [], []
        if since is not None:
            where.append("received_at >= ?")
            params.append(stored_time(since))
        if until is not None:
            where.append("received_at < ?")
            params.append(stored_time(until))
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self.db.execute(
            "SELECT business_key, event_type, transaction_id, received_at, last_received_at,"
            " deliveries, order_id, order_no, iccid, package_code, plan, periods, amount,"
            " currency, pay_id, pay_time, start_date, expire_date FROM events"
            f"{clause} ORDER BY received_at, event_id",
            params,
        ).fetchall()
        try:
            return [_stored(row) for row in rows]
        except (ValueError, InvalidOperation, TypeError):
            raise ForeignDatabase(
                f"push store {self.path} holds values lf-bulk did not write; move it aside"
            ) from None

    def delivery_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0])


def _read_time(text: str) -> datetime:
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)


def _stored(row: Sequence[Any]) -> StoredPush:
    (key, event_type, transaction_id, received, last, deliveries, *order) = row
    (order_id, order_no, iccid, package_code, plan, periods, amount, *rest) = order
    currency, pay_id, pay_time, start_date, expire_date = rest
    return StoredPush(
        business_key=str(key),
        event_type=str(event_type),
        transaction_id=str(transaction_id),
        received_at=_read_time(str(received)),
        last_received_at=_read_time(str(last)),
        deliveries=int(deliveries),
        order_id=str(order_id),
        order_no=str(order_no),
        iccid=str(iccid),
        package_code=str(package_code),
        plan=str(plan),
        periods=None if periods is None else int(periods),
        amount=None if amount is None else Decimal(str(amount)),
        currency=str(currency),
        pay_id=str(pay_id),
        pay_time=str(pay_time),
        start_date=str(start_date),
        expire_date=str(expire_date),
    )
