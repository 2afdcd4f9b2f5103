"""The sandbox's world in SQLite: groups, SIMs, orders, asynchronous operations and a request log;
since contract v2 also cards, renewals, Vshop top-ups, a log of Vshop calls and the daily quota.

Several processes may share one state file (a `sandbox serve` and CLI runs, or two servers): every
write runs in an IMMEDIATE transaction, and asynchronous work is driven by the clock rather than by
a background thread. Each operation stores when it was created and when it is due; every call first
applies every due operation, in due order. So the outcome does not depend on which process, or
whether any process at all, was running when an operation came due.

Methods refuse a request as a whole by raising `Refusal` with a wire error code (the Vshop ones
with a Vshop code from `cards`); per-SIM outcomes use the wire reason codes.

For tests the state tells the truth behind the answers: `card`, `held_plans` and `renewal` of an
ICCID, every Vshop call (`vshop_calls`, `vshop_call_counts`) and every cancel that took effect
(`cancelled_renewals`).
"""

from __future__ import annotations

import json
import math
import random
import re
import sqlite3
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from lf_bulk import sqlite, wire
from lf_bulk.models import Operation, OpStatus
from lf_bulk.sandbox import cards, pusher, seed

SCHEMA_VERSION = "1"
APPLICATION_ID = 0x4C465342  # "LFSB" in the SQLite header: this file is a sandbox state
_PURGE_INTERVAL = 60.0
# Refused requests are logged (evidence of what a client sent) but bounded: the newest
# REFUSED_LOG_LIMIT rows, each with at most REFUSED_ICCIDS_KEPT of its ICCIDs.
REFUSED_LOG_LIMIT = 1_000
REFUSED_ICCIDS_KEPT = 1_000
# An operation counts as PENDING for this share of its delay, then PROCESSING until it is due.
_PENDING_SHARE = 0.3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS groups (
    group_id TEXT PRIMARY KEY, partner_code TEXT NOT NULL, group_name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bundles (
    group_id TEXT NOT NULL, position INTEGER NOT NULL, bundle_id TEXT NOT NULL,
    bundle_name TEXT NOT NULL, data_mb INTEGER, validity_days INTEGER,
    PRIMARY KEY (group_id, position));
CREATE TABLE IF NOT EXISTS sims (
    iccid TEXT PRIMARY KEY, partner_code TEXT NOT NULL, group_id TEXT) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sims_by_group ON sims (group_id, iccid) WHERE group_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY, purchase_order_id TEXT NOT NULL, sim_id TEXT NOT NULL,
    partner_code TEXT NOT NULL, bundle_id TEXT, bundle_name TEXT, periods INTEGER,
    amount TEXT, currency TEXT, pay_status TEXT, pay_type TEXT, pay_id TEXT, created_at TEXT,
    paid_at TEXT, start_time TEXT, expire_time TEXT, auto_renewal TEXT, extra TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS orders_by_purchase ON orders (purchase_order_id);
CREATE INDEX IF NOT EXISTS orders_by_sim ON orders (sim_id);
CREATE TABLE IF NOT EXISTS operations (
    request_id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, partner_code TEXT NOT NULL,
    operation TEXT NOT NULL, group_id TEXT NOT NULL, total INTEGER NOT NULL,
    created_at REAL NOT NULL, started_at REAL NOT NULL, due_at REAL NOT NULL,
    finished_at REAL, status TEXT, succeeded INTEGER, failed INTEGER);
CREATE INDEX IF NOT EXISTS operations_unfinished ON operations (due_at, seq)
    WHERE finished_at IS NULL;
CREATE INDEX IF NOT EXISTS operations_finished ON operations (finished_at)
    WHERE finished_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS operation_sims (
    request_id TEXT NOT NULL, position INTEGER NOT NULL, iccid TEXT NOT NULL,
    locked INTEGER NOT NULL, injected TEXT NOT NULL, status TEXT, reason_code TEXT, reason TEXT,
    PRIMARY KEY (request_id, position)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS locks (iccid TEXT PRIMARY KEY, request_id TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS locks_by_request ON locks (request_id);
CREATE TABLE IF NOT EXISTS mutation_log (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL,
    group_id TEXT NOT NULL, iccid_count INTEGER NOT NULL, iccids TEXT NOT NULL,
    request_id TEXT NOT NULL, http_status INTEGER NOT NULL, code TEXT NOT NULL,
    dropped INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS mutation_log_refused ON mutation_log (id) WHERE request_id = '';
CREATE TABLE IF NOT EXISTS cards (
    iccid TEXT PRIMARY KEY, card_status TEXT NOT NULL, area TEXT NOT NULL,
    package_code TEXT NOT NULL, profile INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS renewals (
    iccid TEXT PRIMARY KEY, order_no TEXT NOT NULL, pay_id TEXT NOT NULL,
    package_code TEXT NOT NULL, order_period INTEGER NOT NULL, since_days INTEGER NOT NULL,
    cancelled_at REAL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS renewals_by_pay ON renewals (pay_id);
CREATE INDEX IF NOT EXISTS orders_by_pay ON orders (pay_id) WHERE pay_id != '';
CREATE TABLE IF NOT EXISTS topups (
    order_no TEXT NOT NULL, partner_code TEXT NOT NULL, iccid TEXT NOT NULL,
    package_code TEXT NOT NULL, periods INTEGER NOT NULL, order_id TEXT NOT NULL,
    PRIMARY KEY (partner_code, order_no)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS topups_by_sim ON topups (iccid);
CREATE TABLE IF NOT EXISTS vshop_calls (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, trade_type TEXT NOT NULL, device_code TEXT NOT NULL,
    pay_id TEXT NOT NULL, http_status INTEGER NOT NULL, code TEXT NOT NULL,
    acted INTEGER NOT NULL, dropped INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS quota_days (
    partner_code TEXT NOT NULL, day TEXT NOT NULL, used INTEGER NOT NULL,
    PRIMARY KEY (partner_code, day)) WITHOUT ROWID;
"""
# The Vshop call log keeps the newest rows only, so that a long `sandbox serve` stays small.
VSHOP_LOG_LIMIT = 500_000
_PAY_STATUS_OF_ORDER = {"PAID": "SUCCESS", "REFUNDED": "REFUNDED", "FAILED": "FAILED"}
_FIRST_TOPUP_ORDER = 900_000_000
_CURRENCY = re.compile(r"[A-Za-z]{3}")  # ISO 4217
_ORDER_NO = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")  # the partner's own order number

REASON_TEXT = {
    wire.REASON_SIM_NOT_FOUND: "No SIM card with this ICCID exists.",
    wire.REASON_SIM_NOT_OWNED: "This SIM card belongs to another partner.",
    wire.REASON_ALREADY_IN_GROUP: "The SIM card is already in this group.",
    wire.REASON_NOT_IN_GROUP: "The SIM card is not in this group.",
    wire.REASON_IN_OTHER_GROUP: "The SIM card is in another group ({group_id}); remove it first.",
    wire.REASON_SIM_LOCKED: "Another operation on this SIM card is in progress; try again later.",
    wire.REASON_INTERNAL: "Internal error while processing this SIM card; try again later.",
}


class Refusal(Exception):
    """The API refuses the whole request: `code` is a wire error code, `data` its details."""

    def __init__(self, code: str, message: str, data: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.data = data


@dataclass(frozen=True)
class Rules:
    """How operations behave; `faults.FaultSpec.rules()` builds one from a spec string."""

    partners: frozenset[str] = frozenset({seed.PARTNER})
    max_iccids: int = wire.CONTRACT_V1.default_max_iccids
    result_ttl: float = 7 * 86_400.0
    async_delay: tuple[float, float] = (1.0, 2.0)
    sim_locked_rate: float = 0.0
    sim_internal_rate: float = 0.0
    seed: int | None = None
    daily_quota: int | None = None  # requests per partner code per UTC day; None: no quota


@dataclass(frozen=True)
class MutationRecord:
    """One add/remove request as the server received and answered it."""

    at: float
    method: str
    path: str
    group_id: str
    iccid_count: int
    iccids: tuple[str, ...]
    request_id: str  # "" when the request was refused
    http_status: int
    code: str  # "" when the answer had no envelope (a proxy-style 502)
    dropped: bool  # the answer was lost on purpose (the `drop` fault)


@dataclass(frozen=True)
class VshopCall:
    """One Vshop or Payment request as the server received and answered it."""

    at: float
    trade_type: str  # the path's last segment: singleVerify, resultQuery, ...
    device_code: str  # "" when the request named none
    pay_id: str
    http_status: int
    code: str  # the answer's errorCode ("" on success, or with no envelope)
    acted: bool  # the endpoint ran (not refused by the quota, a rate limit or a fault first)
    dropped: bool  # the answer was lost on purpose after the work was done


@dataclass(frozen=True)
class QuotaSpent:
    """The daily quota refused a request: `used` of `limit` today, a new day at `resets_at`."""

    used: int
    limit: int
    resets_at: float  # epoch seconds of the next UTC midnight
    retry_after: int  # whole seconds until then, at least 1


def iso_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SandboxState:
    """The world behind one state file. Thread-safe: one connection, guarded by a lock."""

    def __init__(
        self,
        path: Path,
        *,
        rules: Rules | None = None,
        sims: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.rules = rules or Rules()
        self._clock = clock
        self._lock = threading.RLock()
        self._last_purge = float("-inf")
        # Owner-only, no links, ours, versioned: see lf_bulk.sqlite.
        self._db = sqlite.connect(
            self.path, STATE_FILE, private_folder=False, check_same_thread=False
        )
        self.queue_pushes = False
        """Queue a Recharge Success event with every order created (`queue_pushes_from_now`)."""
        self.on_push_queued: Callable[[], None] | None = None
        with self._lock:
            self._seed_once(seed.DEFAULT_SIMS if sims is None else sims)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SandboxState:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------ API operations

    def groups(self, partner: str) -> list[dict[str, Any]]:
        with self._lock:
            self._apply_due()
            groups = self._db.execute(
                "SELECT group_id, group_name FROM groups WHERE partner_code = ? ORDER BY group_id",
                (partner,),
            ).fetchall()
            return [
                {
                    "group_id": group_id,
                    "group_name": name,
                    "sim_count": self._member_count(group_id),
                    "bundles": self._bundles(group_id),
                }
                for group_id, name in groups
            ]

    def member_page(
        self, partner: str, group_id: str, page_no: int, page_size: int
    ) -> dict[str, Any]:
        with self._lock:
            self._apply_due()
            self._require_group(partner, group_id)
            rows = self._db.execute(
                "SELECT iccid FROM sims WHERE group_id = ? ORDER BY iccid LIMIT ? OFFSET ?",
                (group_id, page_size, (page_no - 1) * page_size),
            ).fetchall()
            return {
                "group_id": group_id,
                "total": self._member_count(group_id),
                "page_no": page_no,
                "page_size": page_size,
                "iccids": [iccid for (iccid,) in rows],
            }

    def submit(
        self, partner: str, operation: Operation, group_id: str, iccids: Sequence[str]
    ) -> dict[str, Any]:
        """Validate and queue an add/remove; it is applied once due (see the module docstring)."""
        if not iccids:
            raise Refusal(wire.CODE_INVALID_PARAMETER, "iccids must list at least one ICCID")
        with self._lock:
            self._apply_due()
            self._require_group(partner, group_id)
            self._require_within_limit(iccids)
            _require_distinct(iccids)
            with self._transaction():
                request_id = self._queue(partner, operation, group_id, iccids)
            return {"request_id": request_id, "accepted": len(iccids)}

    def async_result(self, partner: str, request_id: str) -> dict[str, Any]:
        with self._lock:
            self._apply_due()
            now = self._clock()
            row = self._db.execute(
                "SELECT partner_code, operation, group_id, total, created_at, started_at,"
                " finished_at, status, succeeded, failed FROM operations WHERE request_id = ?",
                (request_id,),
            ).fetchone()
            if row is None or row[0] != partner or self._expired(row[6], now):
                raise Refusal(
                    wire.CODE_REQUEST_ID_UNKNOWN, f"request_id {request_id} is unknown or expired"
                )
            _, operation, group_id, total, created_at, started_at, finished_at = row[:7]
            status, succeeded, failed = row[7:]
            data: dict[str, Any] = {
                "request_id": request_id,
                "operation": operation,
                "group_id": group_id,
                "status": status or _unfinished_status(started_at, now),
                "total": total,
                "succeeded": succeeded or 0,
                "failed": failed or 0,
                "created_at": iso_time(created_at),
                "finished_at": iso_time(finished_at) if finished_at is not None else "",
            }
            if finished_at is not None:
                data["results"] = self._results(request_id)
            return data

    def find_orders(self, partner: str, key: str, value: str) -> list[dict[str, Any]]:
        """Orders for one of `wire.ORDER_KEYS`; the caller picks the key by precedence."""
        with self._lock:
            self._apply_due()
            rows = self._db.execute(
                f"SELECT {_ORDER_COLUMNS} FROM orders WHERE {_ORDER_KEY_COLUMN[key]} = ?"
                " AND partner_code = ? ORDER BY created_at DESC, order_id DESC",
                (value, partner),
            ).fetchall()
        if not rows:
            raise Refusal(wire.CODE_ORDER_NOT_FOUND, f"no order with {key} {value}")
        orders = [_order_of_row(row) for row in rows]
        if key == "purchase_order_id":
            return [_latest_paid_or_latest(orders)]
        return orders

    # ------------------------------------------------------------ Vshop and Payment (contract v2)

    def verify_card(self, partner: str, iccid: str) -> dict[str, Any]:
        with self._lock:
            card = self._owned_card(partner, iccid)
        return {"deviceCode": iccid, "cardStatus": card.card_status, "area": card.area}

    def plan_page(
        self, partner: str, iccid: str, area: str | None, page_no: int, page_size: int
    ) -> dict[str, Any]:
        with self._lock:
            card = self._owned_card(partner, iccid)
        if card.card_status != cards.CARD_ACTIVE:
            raise Refusal(cards.CARD_INACTIVE_CODE, f"card {iccid} is {card.card_status}")
        offered = cards.plans_for(card.area, area)
        start = (page_no - 1) * page_size
        return {
            "total": len(offered),
            "list": [plan.wire() for plan in offered[start : start + page_size]],
        }

    def held_orders(self, partner: str, iccid: str) -> dict[str, Any]:
        with self._lock:
            self._owned_card(partner, iccid)
            held = self._held_plans(iccid)
        return {"partnerCode": partner, "deviceCode": iccid, "orderList": held}

    def find_renewal(self, partner: str, iccid: str) -> dict[str, Any] | None:
        with self._lock:
            self._owned_card(partner, iccid)
            return self._renewal(iccid, partner)

    def cancel_renewal(
        self, partner: str, iccid: str, order_no: str, pay_id: str
    ) -> dict[str, Any]:
        """Cancel the card's active renewal; RENEWAL_NOT_FOUND when there is none (any more)."""
        with self._lock:
            self._owned_card(partner, iccid)
            with self._transaction():
                cancelled = self._db.execute(
                    "UPDATE renewals SET cancelled_at = ? WHERE iccid = ? AND order_no = ?"
                    " AND pay_id = ? AND cancelled_at IS NULL",
                    (self._clock(), iccid, order_no, pay_id),
                ).rowcount
        if not cancelled:
            raise Refusal(
                cards.RENEWAL_NOT_FOUND,
                f"no active auto-renewal with orderNo {order_no} and payId {pay_id}",
            )
        return {}

    def payment(self, partner: str, pay_id: str) -> dict[str, Any]:
        """A payment's result, from the seeded orders' and renewals' payIds; else PAY_NOT_FOUND."""
        with self._lock:
            row = self._db.execute(
                "SELECT order_id, purchase_order_id, sim_id, amount, currency, pay_status,"
                " paid_at, created_at FROM orders WHERE pay_id = ? AND partner_code = ?"
                " ORDER BY created_at DESC, order_id DESC LIMIT 1",
                (pay_id, partner),
            ).fetchone()
            renewal = self._db.execute(
                "SELECT r.iccid, r.order_no, r.package_code, r.order_period, r.since_days"
                " FROM renewals AS r JOIN sims AS s USING (iccid)"
                " WHERE r.pay_id = ? AND s.partner_code = ?",
                (pay_id, partner),
            ).fetchone()
        if row is not None:
            order_id, order_no, iccid, amount, currency, status, paid_at, created_at = row
            return {
                "payId": pay_id,
                "payStatus": _payment_status(order_id, status),
                "payAmount": amount,
                "payCurrency": currency,
                "payTime": paid_at or created_at,
                "orderNo": order_no,
                "deviceCode": iccid,
            }
        if renewal is not None:
            iccid, order_no, package_code, periods, since_days = renewal
            plan = cards.PLANS[package_code]
            since = self.today() - timedelta(days=since_days)
            return {
                "payId": pay_id,
                "payStatus": "SUCCESS",
                "payAmount": str(Decimal(plan.price) * periods),
                "payCurrency": plan.currency,
                "payTime": f"{since.isoformat()} 00:00:00",
                "orderNo": order_no,
                "deviceCode": iccid,
            }
        raise Refusal(cards.PAY_NOT_FOUND, f"no payment with payId {pay_id}")

    def create_order(self, partner: str, order: Mapping[str, str]) -> dict[str, Any]:
        """Record a partner's paid order (SynOrderInfo) and top the card up with a pending plan.

        Refuses an `orderNo` the partner has used before with DUPLICATE_ORDER_NO: the sandbox
        never creates two orders for one number (a real server might).
        """
        iccid, order_no = order["deviceCode"], order["orderNo"]
        plan = cards.PLANS.get(order["packageCode"])
        with self._lock:
            card = self._owned_card(partner, iccid)
            if card.card_status != cards.CARD_ACTIVE:
                raise Refusal(cards.CARD_INACTIVE_CODE, f"card {iccid} is {card.card_status}")
            if plan is None or plan not in cards.plans_for(card.area):
                shown = wire.shown_text(order["packageCode"], 40)
                raise Refusal(cards.PLAN_NOT_FOUND, f"no plan {shown} for card {iccid}")
            periods = _whole_number(order["orderPeriod"], "orderPeriod")
            amount = _amount(order["payAmount"])
            for name, shape in (("payCurrency", _CURRENCY), ("orderNo", _ORDER_NO)):
                if not shape.fullmatch(order[name]):
                    shown = wire.shown_text(order[name], 40)
                    raise Refusal(cards.INVALID_PARAMETER, f"{name} {shown} is not valid")
            with self._transaction():
                taken = self._db.execute(
                    "SELECT 1 FROM orders WHERE purchase_order_id = ? AND partner_code = ?",
                    (order_no, partner),
                ).fetchone()
                if taken:
                    raise Refusal(cards.DUPLICATE_ORDER_NO, f"orderNo {order_no} exists already")
                order_id = self._next_order_id()
                now = datetime.fromtimestamp(self._clock(), UTC).strftime(seed.TIME_FORMAT)
                created = {
                    "order_id": order_id,
                    "purchase_order_id": order_no,
                    "sim_id": iccid,
                    "bundle_id": plan.package_code,
                    "bundle_name": plan.name,
                    "periods": periods,
                    "amount": str(amount),
                    "currency": order["payCurrency"].upper(),
                    "pay_status": "PAID",
                    "pay_type": order.get("payType", ""),
                    "pay_id": order["payId"],
                    "created_at": now,
                    "paid_at": order.get("payResultDate") or now,
                    "start_time": "",
                    "expire_time": "",
                    "auto_renewal": "1" if order.get("autoRenewal") == "1" else "0",
                }
                _insert_orders(self._db, [seed.SeedOrder(partner, created)])
                self._db.execute(
                    "INSERT INTO topups (order_no, partner_code, iccid, package_code, periods,"
                    " order_id) VALUES (?, ?, ?, ?, ?, ?)",
                    (order_no, partner, iccid, plan.package_code, periods, order_id),
                )
                if self.queue_pushes:  # in the order's transaction: no order without its event
                    pusher.queue_event(self._db, pusher.event_data(created), self._clock())
        if self.queue_pushes and self.on_push_queued is not None:
            self.on_push_queued()
        return {"orderNo": order_no, "order_id": order_id, "deviceCode": iccid}

    def take_quota(self, partner: str) -> QuotaSpent | None:
        """Count one request of `partner` today; QuotaSpent (nothing counted) when none is left."""
        limit = self.rules.daily_quota
        if limit is None:
            return None
        now = self._clock()
        day = datetime.fromtimestamp(now, UTC).date()
        with self._lock, self._transaction():
            row = self._db.execute(
                "SELECT used FROM quota_days WHERE partner_code = ? AND day = ?",
                (partner, day.isoformat()),
            ).fetchone()
            used = row[0] if row else 0
            if used >= limit:
                midnight = datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)
                resets_at = midnight.timestamp()
                return QuotaSpent(used, limit, resets_at, max(1, math.ceil(resets_at - now)))
            self._db.execute(
                "INSERT INTO quota_days (partner_code, day, used) VALUES (?, ?, 1)"
                " ON CONFLICT (partner_code, day) DO UPDATE SET used = used + 1",
                (partner, day.isoformat()),
            )
        return None

    def quota_used(self, partner: str = seed.PARTNER) -> int:
        """Requests of `partner` counted today (0 when the quota is off)."""
        day = datetime.fromtimestamp(self._clock(), UTC).date().isoformat()
        with self._lock:
            row = self._db.execute(
                "SELECT used FROM quota_days WHERE partner_code = ? AND day = ?", (partner, day)
            ).fetchone()
        return int(row[0]) if row else 0

    def new_day(self) -> None:
        """Start a new quota day now: every partner's count starts again from 0."""
        with self._lock, self._transaction():
            self._db.execute("DELETE FROM quota_days")

    def today(self) -> date:
        """The day the sandbox's clock is in (UTC): held plans' dates are counted from it."""
        return datetime.fromtimestamp(self._clock(), UTC).date()

    def now(self) -> float:
        return self._clock()

    def queue_pushes_from_now(self, on_queued: Callable[[], None] | None = None) -> None:
        """Queue a push with every order created from now on (`sandbox serve --push-url`);
        `on_queued` is called after each one is committed."""
        with self.writing() as db:
            pusher.create_outbox(db)
        self.on_push_queued = on_queued
        self.queue_pushes = True

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The state's connection, under its lock (the pusher's outbox reads through this)."""
        with self._lock:
            yield self._db

    @contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """The state's connection, under its lock, in one IMMEDIATE transaction."""
        with self._lock, self._transaction():
            yield self._db

    # ------------------------------------------------------------ request log

    def log_mutation(self, record: MutationRecord) -> None:
        refused = not record.request_id
        iccids = list(record.iccids[:REFUSED_ICCIDS_KEPT] if refused else record.iccids)
        with self._lock:
            self._db.execute(
                "INSERT INTO mutation_log (at, method, path, group_id, iccid_count, iccids,"
                " request_id, http_status, code, dropped) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.at,
                    record.method,
                    record.path,
                    record.group_id,
                    record.iccid_count,
                    json.dumps(iccids),
                    record.request_id,
                    record.http_status,
                    record.code,
                    int(record.dropped),
                ),
            )
            if refused:
                self._db.execute(
                    "DELETE FROM mutation_log WHERE request_id = '' AND id NOT IN (SELECT id FROM"
                    " mutation_log WHERE request_id = '' ORDER BY id DESC LIMIT ?)",
                    (REFUSED_LOG_LIMIT,),
                )

    def mutation_log(self) -> list[MutationRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT at, method, path, group_id, iccid_count, iccids, request_id, http_status,"
                " code, dropped FROM mutation_log ORDER BY id"
            ).fetchall()
        return [_mutation_of_row(row) for row in rows]

    def log_vshop_call(self, call: VshopCall) -> None:
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO vshop_calls (at, trade_type, device_code, pay_id, http_status, code,"
                " acted, dropped) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    call.at,
                    call.trade_type,
                    call.device_code,
                    call.pay_id,
                    call.http_status,
                    call.code,
                    int(call.acted),
                    int(call.dropped),
                ),
            )
            if cursor.lastrowid and cursor.lastrowid % 10_000 == 0:
                self._db.execute(
                    "DELETE FROM vshop_calls WHERE id <= ?", (cursor.lastrowid - VSHOP_LOG_LIMIT,)
                )

    def vshop_calls(self, trade_type: str | None = None) -> list[VshopCall]:
        """Every Vshop and Payment request received (of `trade_type`, when given), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT at, trade_type, device_code, pay_id, http_status, code, acted, dropped"
                " FROM vshop_calls WHERE ? IS NULL OR trade_type = ? ORDER BY id",
                (trade_type, trade_type),
            ).fetchall()
        return [
            VshopCall(at, kind, device, pay, status, code, bool(acted), bool(dropped))
            for at, kind, device, pay, status, code, acted, dropped in rows
        ]

    def vshop_call_counts(self, *, acted_only: bool = True) -> Counter[tuple[str, str]]:
        """How often each (tradeType, deviceCode or payId) was served (or received at all)."""
        return Counter(
            (call.trade_type, call.device_code or call.pay_id)
            for call in self.vshop_calls()
            if call.acted or not acted_only
        )

    # ------------------------------------------------------------ helpers for tests and demos

    def card(self, iccid: str) -> dict[str, Any] | None:
        """The truth about one card: owner, status, area and plan, or None for an unknown ICCID."""
        with self._lock:
            found = self._card(iccid)
        if found is None:
            return None
        owner, card = found
        return {
            "iccid": iccid,
            "partner_code": owner,
            "card_status": card.card_status,
            "area": card.area,
            "package_code": card.package_code,
        }

    def held_plans(self, iccid: str) -> list[dict[str, Any]]:
        """What `singleQueryOrder` answers for the ICCID today (its `orderList`)."""
        with self._lock:
            return self._held_plans(iccid)

    def renewal(self, iccid: str) -> dict[str, Any] | None:
        """The ICCID's active renewal as `queryAutoRenewalRecord` answers it, or None."""
        with self._lock:
            found = self._card(iccid)
            return None if found is None else self._renewal(iccid, found[0])

    def cancelled_renewals(self) -> dict[str, tuple[str, str, float]]:
        """Every renewal cancelled through the API: ICCID -> (orderNo, payId, when)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT iccid, order_no, pay_id, cancelled_at FROM renewals"
                " WHERE cancelled_at IS NOT NULL ORDER BY cancelled_at, iccid"
            ).fetchall()
        return {iccid: (order_no, pay_id, at) for iccid, order_no, pay_id, at in rows}

    def iccids_with(
        self,
        *,
        card_status: str | None = None,
        renewal: bool | None = None,
        partner: str = seed.PARTNER,
        group_id: str | None = None,
        limit: int = 10,
    ) -> list[str]:
        """Some ICCIDs of `partner` (in `group_id`) with a card status and/or an active renewal."""
        with self._lock:
            rows = self._db.execute(
                "SELECT c.iccid FROM cards AS c JOIN sims AS s USING (iccid)"
                " LEFT JOIN renewals AS r ON r.iccid = c.iccid AND r.cancelled_at IS NULL"
                " WHERE s.partner_code = ? AND (? IS NULL OR s.group_id = ?)"
                " AND (? IS NULL OR c.card_status = ?)"
                " AND (? IS NULL OR (r.iccid IS NOT NULL) = ?) ORDER BY c.iccid LIMIT ?",
                (partner, group_id, group_id, card_status, card_status, renewal, renewal, limit),
            ).fetchall()
        return [iccid for (iccid,) in rows]

    def members(self, group_id: str) -> list[str]:
        with self._lock:
            self._apply_due()
            rows = self._db.execute(
                "SELECT iccid FROM sims WHERE group_id = ? ORDER BY iccid", (group_id,)
            ).fetchall()
        return [iccid for (iccid,) in rows]

    def group_of(self, iccid: str) -> str | None:
        with self._lock:
            self._apply_due()
            row = self._db.execute("SELECT group_id FROM sims WHERE iccid = ?", (iccid,)).fetchone()
        return None if row is None else row[0]

    def orders(self, partner: str | None = None) -> list[dict[str, Any]]:
        """Every order (of `partner`, when given), oldest order id first, in the wire shape."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_ORDER_COLUMNS} FROM orders"
                " WHERE ? IS NULL OR partner_code = ? ORDER BY order_id",
                (partner, partner),
            ).fetchall()
        return [_order_of_row(row) for row in rows]

    def ungrouped_sims(self, limit: int, partner: str = seed.PARTNER) -> list[str]:
        with self._lock:
            self._apply_due()
            rows = self._db.execute(
                "SELECT iccid FROM sims WHERE group_id IS NULL AND partner_code = ?"
                " ORDER BY iccid LIMIT ?",
                (partner, limit),
            ).fetchall()
        return [iccid for (iccid,) in rows]

    def set_members(self, group_id: str, iccids: Sequence[str]) -> None:
        """Make `iccids` exactly the members of `group_id` (moving them from other groups)."""
        with self._lock:
            self._apply_due()
            with self._transaction():
                known = self._known_iccids(iccids)
                unknown = sorted(set(iccids) - known)
                if unknown:
                    raise ValueError(f"unknown ICCIDs: {unknown[:5]}")
                self._db.execute("UPDATE sims SET group_id = NULL WHERE group_id = ?", (group_id,))
                self._db.executemany(
                    "UPDATE sims SET group_id = ? WHERE iccid = ?",
                    [(group_id, iccid) for iccid in iccids],
                )

    def apply_due(self) -> int:
        """Apply every operation that is due now; return how many were applied."""
        with self._lock:
            return self._apply_due()

    # ------------------------------------------------------------ internals: queueing

    def _require_group(self, partner: str, group_id: str) -> None:
        row = self._db.execute(
            "SELECT partner_code FROM groups WHERE group_id = ?", (group_id,)
        ).fetchone()
        if row is None or row[0] != partner:
            raise Refusal(wire.CODE_GROUP_NOT_FOUND, f"group {group_id} not found")

    def _require_within_limit(self, iccids: Sequence[str]) -> None:
        limit = self.rules.max_iccids
        if len(iccids) > limit:
            raise Refusal(
                wire.CODE_TOO_MANY_ICCIDS,
                f"too many ICCIDs: {len(iccids)} sent, at most {limit} per request",
                {"max_iccids": limit},
            )

    def _queue(
        self, partner: str, operation: Operation, group_id: str, iccids: Sequence[str]
    ) -> str:
        seq = self._next_seq()
        rng = random.Random(f"{self.rules.seed}:{seq}") if self.rules.seed is not None else None
        rng = rng or random.Random()
        now = self._clock()
        delay = rng.uniform(*self.rules.async_delay)
        request_id = uuid.UUID(int=rng.getrandbits(128), version=4).hex
        self._db.execute(
            "INSERT INTO operations (request_id, seq, partner_code, operation, group_id, total,"
            " created_at, started_at, due_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                request_id,
                seq,
                partner,
                operation.value,
                group_id,
                len(iccids),
                now,
                now + delay * _PENDING_SHARE,
                now + delay,
            ),
        )
        locked = self._locked_iccids(iccids)
        self._db.executemany(
            "INSERT INTO operation_sims (request_id, position, iccid, locked, injected)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                (request_id, position, iccid, int(iccid in locked), self._injected_failure(rng))
                for position, iccid in enumerate(iccids)
            ],
        )
        self._db.executemany(
            "INSERT INTO locks (iccid, request_id) VALUES (?, ?)",
            [(iccid, request_id) for iccid in iccids if iccid not in locked],
        )
        return request_id

    def _next_seq(self) -> int:
        (seq,) = self._db.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'op_seq'"
            " RETURNING CAST(value AS INTEGER)"
        ).fetchone()
        return int(seq)

    def _locked_iccids(self, iccids: Sequence[str]) -> set[str]:
        rows = self._db.execute(
            "SELECT l.iccid FROM json_each(?) AS j JOIN locks AS l ON l.iccid = j.value",
            (json.dumps(list(iccids)),),
        ).fetchall()
        return {iccid for (iccid,) in rows}

    def _known_iccids(self, iccids: Sequence[str]) -> set[str]:
        rows = self._db.execute(
            "SELECT s.iccid FROM json_each(?) AS j JOIN sims AS s ON s.iccid = j.value",
            (json.dumps(list(iccids)),),
        ).fetchall()
        return {iccid for (iccid,) in rows}

    def _injected_failure(self, rng: random.Random) -> str:
        draw = rng.random()
        if draw < self.rules.sim_locked_rate:
            return wire.REASON_SIM_LOCKED
        if draw < self.rules.sim_locked_rate + self.rules.sim_internal_rate:
            return wire.REASON_INTERNAL
        return ""

    # ------------------------------------------------------------ internals: applying

    def _apply_due(self) -> int:
        now = self._clock()
        if not self._any_due(now):
            self._purge_now_and_then(now)
            return 0
        with self._transaction():
            due = self._db.execute(
                "SELECT request_id, partner_code, operation, group_id, due_at FROM operations"
                " WHERE finished_at IS NULL AND due_at <= ? ORDER BY due_at, seq",
                (now,),
            ).fetchall()
            for request_id, partner, operation, group_id, due_at in due:
                self._apply(request_id, partner, Operation(operation), group_id, due_at)
        self._purge_now_and_then(now)
        return len(due)

    def _any_due(self, now: float) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM operations WHERE finished_at IS NULL AND due_at <= ? LIMIT 1", (now,)
        ).fetchone()
        return row is not None

    def _apply(
        self, request_id: str, partner: str, operation: Operation, group_id: str, due_at: float
    ) -> None:
        items = self._db.execute(
            "SELECT o.position, o.iccid, o.locked, o.injected, s.partner_code, s.group_id"
            " FROM operation_sims AS o LEFT JOIN sims AS s ON s.iccid = o.iccid"
            " WHERE o.request_id = ? ORDER BY o.position",
            (request_id,),
        ).fetchall()
        outcomes = []
        moves = []
        for position, iccid, locked, injected, owner, current_group in items:
            reason = _sim_reason(
                operation, partner, group_id, bool(locked), injected, owner, current_group
            )
            if reason is None:
                moves.append((group_id if operation is Operation.ADD else None, iccid))
                outcomes.append(("SUCCESS", "", "", request_id, position))
            else:
                text = REASON_TEXT[reason].format(group_id=current_group)
                outcomes.append(("FAILED", reason, text, request_id, position))
        self._db.executemany("UPDATE sims SET group_id = ? WHERE iccid = ?", moves)
        self._db.executemany(
            "UPDATE operation_sims SET status = ?, reason_code = ?, reason = ?"
            " WHERE request_id = ? AND position = ?",
            outcomes,
        )
        self._db.execute("DELETE FROM locks WHERE request_id = ?", (request_id,))
        succeeded = len(moves)
        self._db.execute(
            "UPDATE operations SET finished_at = due_at, status = ?, succeeded = ?, failed = ?"
            " WHERE request_id = ?",
            (_final_status(succeeded, len(items)), succeeded, len(items) - succeeded, request_id),
        )

    def _results(self, request_id: str) -> list[dict[str, str]]:
        rows = self._db.execute(
            "SELECT iccid, status, reason_code, reason FROM operation_sims"
            " WHERE request_id = ? ORDER BY position",
            (request_id,),
        ).fetchall()
        return [
            {"iccid": iccid, "status": status, "reason_code": code, "reason": reason}
            for iccid, status, code, reason in rows
        ]

    def _expired(self, finished_at: float | None, now: float) -> bool:
        return finished_at is not None and now > finished_at + self.rules.result_ttl

    def _purge_now_and_then(self, now: float) -> None:
        if now - self._last_purge < _PURGE_INTERVAL:
            return
        self._last_purge = now
        with self._transaction():
            cutoff = now - self.rules.result_ttl
            self._db.execute(
                "DELETE FROM operation_sims WHERE request_id IN (SELECT request_id FROM operations"
                " WHERE finished_at IS NOT NULL AND finished_at < ?)",
                (cutoff,),
            )
            self._db.execute(
                "DELETE FROM operations WHERE finished_at IS NOT NULL AND finished_at < ?",
                (cutoff,),
            )

    # ------------------------------------------------------------ internals: cards

    def _card(self, iccid: str) -> tuple[str, cards.CardSeed] | None:
        row = self._db.execute(
            "SELECT s.partner_code, c.card_status, c.area, c.package_code, c.profile"
            " FROM sims AS s JOIN cards AS c USING (iccid) WHERE iccid = ?",
            (iccid,),
        ).fetchone()
        if row is None:
            return None
        owner, status, area, package_code, profile = row
        return owner, cards.CardSeed(iccid, status, area, package_code, profile)

    def _owned_card(self, partner: str, iccid: str) -> cards.CardSeed:
        found = self._card(iccid)
        if found is None:
            raise Refusal(cards.CARD_NOT_FOUND, f"no card {iccid}")
        owner, card = found
        if owner != partner:
            raise Refusal(cards.CARD_NOT_OWNED, f"card {iccid} belongs to another partner")
        return card

    def _held_plans(self, iccid: str) -> list[dict[str, Any]]:
        found = self._card(iccid)
        if found is None:
            return []
        held = cards.held_plans(found[1], self.today())
        topups = self._db.execute(
            "SELECT order_no, package_code, periods FROM topups WHERE iccid = ? ORDER BY order_id",
            (iccid,),
        ).fetchall()
        return held + [cards.topup_plan(*topup) for topup in topups]

    def _renewal(self, iccid: str, partner: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT order_no, pay_id, package_code, order_period, since_days FROM renewals"
            " WHERE iccid = ? AND cancelled_at IS NULL",
            (iccid,),
        ).fetchone()
        if row is None:
            return None
        return cards.renewal_wire(cards.RenewalSeed(iccid, *row), partner, self.today())

    def _next_order_id(self) -> str:
        (seq,) = self._db.execute(
            "INSERT INTO meta (key, value) VALUES ('order_seq', ?) ON CONFLICT (key) DO UPDATE"
            " SET value = CAST(value AS INTEGER) + 1 RETURNING CAST(value AS INTEGER)",
            (str(_FIRST_TOPUP_ORDER),),
        ).fetchone()
        return f"LF{seq}"

    # ------------------------------------------------------------ internals: reading

    def _member_count(self, group_id: str) -> int:
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM sims WHERE group_id = ?", (group_id,)
        ).fetchone()
        return int(count)

    def _bundles(self, group_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT bundle_id, bundle_name, data_mb, validity_days FROM bundles"
            " WHERE group_id = ? ORDER BY position",
            (group_id,),
        ).fetchall()
        return [
            {"bundle_id": bid, "bundle_name": name, "data_mb": mb, "validity_days": days}
            for bid, name, mb, days in rows
        ]

    # ------------------------------------------------------------ internals: storage

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self._db.in_transaction:  # already inside one (the lock is re-entrant)
            yield
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _seeded(self) -> bool:
        return self._db.execute("SELECT 1 FROM meta WHERE key = 'schema'").fetchone() is not None

    def _seed_once(self, sims: int) -> None:
        if self._seeded():
            return
        # ATTACH is refused inside a transaction: the world is attached first, copied inside one.
        self._db.execute("ATTACH DATABASE ? AS world", (_world_template(sims),))
        try:
            with self._transaction():
                if self._seeded():
                    return
                for table in _WORLD_TABLES:
                    self._db.execute(f"INSERT INTO main.{table} SELECT * FROM world.{table}")
                self._db.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("schema", SCHEMA_VERSION), ("op_seq", "0"), ("sims", str(sims))],
                )
        finally:
            self._db.execute("DETACH DATABASE world")


_WORLD_TABLES = ("groups", "bundles", "sims", "orders", "cards", "renewals")
"""The tables `_insert_world` fills: a new state file gets them from the seeded template."""

_world_templates: dict[int, tuple[str, sqlite3.Connection]] = {}
_world_templates_lock = threading.Lock()


def _world_template(sims: int) -> str:
    """The URI of an in-memory database holding the seeded world of `sims` SIMs.

    Seeding is deterministic and costs seconds of CPU (150,000 SIMs: about 7 s), while copying
    a seeded world into a new state file costs a fraction of that: a process that makes many
    state files (a test session, a console making worlds) seeds each size once. The keeping
    connection lives as long as the process, since an in-memory database ends with its last one.
    """
    with _world_templates_lock:
        if sims not in _world_templates:
            uri = f"file:lf-bulk-world-{uuid.uuid4().hex}-{sims}?mode=memory&cache=shared"
            keeper = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
            _create_schema(keeper)
            keeper.execute("BEGIN")
            _insert_world(keeper, seed.build_world(sims))
            keeper.execute("COMMIT")
            _world_templates[sims] = (uri, keeper)
        return _world_templates[sims][0]


# ---------------------------------------------------------------- pure rules


def _sim_reason(
    operation: Operation,
    partner: str,
    group_id: str,
    locked: bool,
    injected: str,
    owner: str | None,
    current_group: str | None,
) -> str | None:
    """Why one SIM of an operation fails, or None when it succeeds."""
    if owner is None:
        return wire.REASON_SIM_NOT_FOUND
    if owner != partner:
        return wire.REASON_SIM_NOT_OWNED
    if locked:
        return wire.REASON_SIM_LOCKED
    if injected:
        return injected
    if operation is Operation.ADD:
        if current_group == group_id:
            return wire.REASON_ALREADY_IN_GROUP
        if current_group is not None:
            return wire.REASON_IN_OTHER_GROUP
        return None
    if current_group != group_id:
        return wire.REASON_NOT_IN_GROUP
    return None


def _final_status(succeeded: int, total: int) -> str:
    if succeeded == total:
        return OpStatus.SUCCESS.value
    if succeeded == 0:
        return OpStatus.FAILED.value
    return OpStatus.PARTIAL_SUCCESS.value


def _unfinished_status(started_at: float, now: float) -> str:
    return (OpStatus.PROCESSING if now >= started_at else OpStatus.PENDING).value


def _require_distinct(iccids: Sequence[str]) -> None:
    if len(set(iccids)) == len(iccids):
        return
    repeated = sorted(iccid for iccid, count in Counter(iccids).items() if count > 1)
    raise Refusal(
        wire.CODE_INVALID_PARAMETER,
        f"duplicate ICCIDs in one request: {', '.join(repeated[:5])}",
        {"duplicates": repeated},
    )


def _payment_status(order_id: str, status: str) -> str:
    if status == "FAILED" and zlib.crc32(order_id.encode()) % 3 == 0:
        return "CANCELED"  # a third of the failed payments were abandoned rather than declined
    return _PAY_STATUS_OF_ORDER.get(status, "PENDING")


def _whole_number(text: str, name: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 6 or int(text) < 1:
        shown = wire.shown_text(text, 40)
        raise Refusal(cards.INVALID_PARAMETER, f"{name} must be a whole number >= 1, not {shown}")
    return int(text)


def _amount(text: str) -> Decimal:
    try:
        amount = Decimal(text)
    except InvalidOperation:
        amount = Decimal("NaN")
    exponent = amount.as_tuple().exponent
    if not isinstance(exponent, int) or exponent < -2 or amount < 0:
        shown = wire.shown_text(text, 40)
        raise Refusal(cards.INVALID_PARAMETER, f"payAmount must be an exact amount, not {shown}")
    return amount


def _latest_paid_or_latest(orders: list[dict[str, Any]]) -> dict[str, Any]:
    paid = [order for order in orders if order["pay_status"] == "PAID"]
    if paid:
        return max(paid, key=lambda order: (order["paid_at"], order["created_at"]))
    return orders[0]  # already newest first


_ORDER_KEY_COLUMN = {key: key for key in wire.ORDER_KEYS}
_ORDER_COLUMNS = ", ".join((*wire.ORDER_FIELDS, "extra"))


def _mutation_of_row(row: Sequence[Any]) -> MutationRecord:
    at, method, path, group_id, count, iccids, request_id, http_status, code, dropped = row
    return MutationRecord(
        at=at,
        method=method,
        path=path,
        group_id=group_id,
        iccid_count=count,
        iccids=tuple(json.loads(iccids)),
        request_id=request_id,
        http_status=http_status,
        code=code,
        dropped=bool(dropped),
    )


def _order_of_row(row: Sequence[Any]) -> dict[str, Any]:
    order = dict(zip(wire.ORDER_FIELDS, row[:-1], strict=True))
    order.update(json.loads(row[-1]))
    return order


def _insert_world(db: sqlite3.Connection, world: seed.World) -> None:
    db.executemany(
        "INSERT INTO groups (group_id, partner_code, group_name) VALUES (?, ?, ?)",
        [(g.group_id, g.partner_code, g.group_name) for g in world.groups],
    )
    db.executemany(
        "INSERT INTO bundles (group_id, position, bundle_id, bundle_name, data_mb, validity_days)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [
            (g.group_id, n, b.bundle_id, b.bundle_name, b.data_mb, b.validity_days)
            for g in world.groups
            for n, b in enumerate(g.bundles)
        ],
    )
    db.executemany(
        "INSERT INTO sims (iccid, partner_code, group_id) VALUES (?, ?, ?)", sorted(world.sims)
    )
    _insert_orders(db, world.orders)
    _insert_cards(db, world.cards, world.renewals)


def _insert_orders(db: sqlite3.Connection, orders: Sequence[seed.SeedOrder]) -> None:
    placeholders = ", ".join("?" * (len(wire.ORDER_FIELDS) + 2))
    db.executemany(
        f"INSERT INTO orders ({', '.join(wire.ORDER_FIELDS)}, partner_code, extra)"
        f" VALUES ({placeholders})",
        [_order_row(order) for order in orders],
    )


def _insert_cards(
    db: sqlite3.Connection,
    seeded: Sequence[cards.CardSeed],
    renewals: Sequence[cards.RenewalSeed],
) -> None:
    db.executemany(
        "INSERT INTO cards (iccid, card_status, area, package_code, profile) VALUES (?, ?, ?, ?, ?)",
        seeded,
    )
    db.executemany(
        "INSERT INTO renewals (iccid, order_no, pay_id, package_code, order_period, since_days)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        renewals,
    )


def _add_cards(db: sqlite3.Connection) -> None:
    """Version 1 -> 2: the Vshop world (cards, renewals) for the SIMs the file has now."""
    _create_schema(db)
    if db.execute("SELECT 1 FROM cards LIMIT 1").fetchone() is not None:
        return  # seeded by this version already (a header reset by hand)
    sims = db.execute("SELECT iccid, partner_code, group_id FROM sims").fetchall()
    seeded = cards.build_cards(sims)
    _insert_cards(db, seeded, cards.build_renewals(seeded))


def _order_row(seeded: seed.SeedOrder) -> tuple[Any, ...]:
    order = seeded.order
    extra = {k: v for k, v in order.items() if k not in wire.ORDER_FIELDS}
    known = tuple(order.get(k) for k in wire.ORDER_FIELDS)
    return (*known, seeded.partner_code, json.dumps(extra))


def _create_schema(db: sqlite3.Connection) -> None:
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    pusher.create_outbox(db)


def _is_unversioned_state(db: sqlite3.Connection) -> bool:
    """A state file from before application ids: its meta row says schema 1."""
    if not {"key", "value"} <= sqlite.table_columns(db, "meta"):
        return False
    row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    return row is not None and row[0] == SCHEMA_VERSION and "sims" in _tables(db)


def _tables(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


STATE_FILE = sqlite.FileKind(
    name="sandbox state",
    application_id=APPLICATION_ID,
    version=2,
    create=_create_schema,
    # 0 -> 1: the same tables, now with a versioned header; 1 -> 2: contract v2's cards.
    # (The push outbox is made by `queue_pushes_from_now` in a file that lacks it.)
    migrations=(_create_schema, _add_cards),
    is_legacy=_is_unversioned_state,
)
