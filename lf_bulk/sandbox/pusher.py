"""The sandbox's Recharge Success pushes (contract v2 section 8): an outbox in the state file and a
delivery thread that POSTs it to a receiver (`lf-bulk sandbox serve --push-url URL`).

Every order that SynOrderInfo creates queues one event in the `push_outbox` table, in the same
transaction as the order: an order never exists without its event, and a restarted sandbox
delivers what was still queued. The delivery thread sends what is due, signed with the
notification key (`wire.sign_push`, a fresh timestamp per try), and records each try before the
next one:

    queued --2xx--> delivered
       \\--no 2xx (any status, a refused connection, a timeout)--> queued again, next try at
           `RETRY_OFFSETS[tries]`; after `MAX_TRIES` tries: dropped

The schedule is the documented one (30 tries within 24 hours), times `push_time_scale` from the
faults spec, so that a test runs the whole of it in a second. A try keeps its event's
transaction id. Under the `push_dup` fault a delivered event is sent once more a little later as a
new outbox row: a new transaction id, the same business data (a receiver stores it once).

The outbox is the truth for tests (`records`, `counts`). The key is never logged or shown.
"""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from lf_bulk import wire
from lf_bulk.lazy import lazy_module
from lf_bulk.tls import tls_verification

if TYPE_CHECKING:
    import httpx

    from lf_bulk.sandbox.state import SandboxState
else:
    httpx = lazy_module("httpx")  # `lf-bulk sandbox --help` needs no HTTP client

log = logging.getLogger(__name__)

MAX_TRIES = 30
"""Tries of one event before it is dropped (the documented 30 within 24 hours)."""
FIRST_RETRY_SECONDS = 5.0
LONGEST_RETRY_SECONDS = 3600.0


def _retry_offsets() -> tuple[float, ...]:
    """Seconds from queueing to each try: at once, then 5 s, doubling, at most an hour apart."""
    offsets, gap, at = [0.0], FIRST_RETRY_SECONDS, 0.0
    while len(offsets) < MAX_TRIES:
        at += gap
        offsets.append(at)
        gap = min(gap * 2, LONGEST_RETRY_SECONDS)
    return tuple(offsets)


RETRY_OFFSETS = _retry_offsets()
assert RETRY_OFFSETS[-1] < 24 * 3600, "the last try falls within 24 hours"
RESEND_AFTER_SECONDS = 60.0
"""How long after a delivery the `push_dup` fault sends the event again (scaled as the retries)."""
TRY_TIMEOUT = 10.0
"""Seconds one POST may take (Linksfield expects the answer within 5)."""
IDLE_POLL_SECONDS = 0.2
"""How often an idle pusher looks for events another process queued in the same state file."""
EVENTS_PER_PASS = 64
"""Events taken per pass, so that stopping never waits for a long queue."""


class PushStatus(StrEnum):
    QUEUED = "queued"
    DELIVERED = "delivered"
    DROPPED = "dropped"


OUTBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS push_outbox (
    id INTEGER PRIMARY KEY, transaction_id TEXT NOT NULL UNIQUE, order_id TEXT NOT NULL,
    resend_of INTEGER, data TEXT NOT NULL, status TEXT NOT NULL, tries INTEGER NOT NULL,
    queued_at REAL NOT NULL, next_at REAL NOT NULL, finished_at REAL,
    last_status INTEGER, last_error TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS push_outbox_due ON push_outbox (next_at) WHERE status = 'queued';
"""


@dataclass(frozen=True)
class PushTarget:
    """Where and how the sandbox pushes. `key_hex` is the notification key (never shown)."""

    url: str
    key_id: str
    key_hex: str = field(repr=False)

    def __post_init__(self) -> None:
        check_push_url(self.url)
        if not wire.is_valid_id(self.key_id):
            shown = wire.shown_text(self.key_id)
            raise ValueError(f"the push key id {shown} is not an id ({wire.ID_ALPHABET})")
        wire.push_key(self.key_hex)  # its ValueError never quotes the key


def check_push_url(url: str) -> None:
    """http(s) with a host; plain http only to a loopback address (the events are signed, not
    encrypted, and carry order data)."""
    parts = urlsplit(url)
    loopback = parts.hostname in ("localhost", "::1") or (parts.hostname or "").startswith("127.")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the push URL {wire.shown_text(url)} is not an http(s) URL with a host")
    if parts.scheme == "http" and not loopback:
        raise ValueError(
            f"the push URL {wire.shown_text(url)} is plain http to another machine: use https, "
            "or a receiver on 127.0.0.1"
        )


@dataclass(frozen=True)
class PushRecord:
    """One outbox row: an event and what became of it."""

    id: int
    transaction_id: str
    order_id: str
    resend_of: int | None
    data: Mapping[str, str]
    status: PushStatus
    tries: int
    queued_at: float
    next_at: float
    finished_at: float | None
    last_status: int | None
    last_error: str


# ---------------------------------------------------------------- the outbox (SQL)


def create_outbox(db: sqlite3.Connection) -> None:
    for statement in OUTBOX_SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)


def event_data(order: Mapping[str, Any]) -> dict[str, str]:
    """A Recharge Success event's `data` for an order row of the sandbox state."""
    return {
        "orderNo": str(order["purchase_order_id"]),
        "order_id": str(order["order_id"]),
        "deviceCode": str(order["sim_id"]),
        "packageCode": str(order.get("bundle_id") or ""),
        "servicePlanShowName": str(order.get("bundle_name") or ""),
        "orderPeriod": str(order.get("periods") or ""),
        "payAmount": str(order["amount"]),
        "payCurrency": str(order["currency"]),
        "payId": str(order.get("pay_id") or ""),
        "payTime": str(order.get("paid_at") or order.get("created_at") or ""),
        "startDate": str(order.get("start_time") or "")[:10],
        "expireDate": str(order.get("expire_time") or "")[:10],
    }


def queue_event(
    db: sqlite3.Connection,
    data: Mapping[str, str],
    now: float,
    *,
    resend_of: int | None = None,
    delay: float = 0.0,
) -> int:
    """Queue one event (inside the caller's transaction); its first try is due after `delay`."""
    cursor = db.execute(
        "INSERT INTO push_outbox (transaction_id, order_id, resend_of, data, status, tries,"
        " queued_at, next_at, last_error) VALUES (?, ?, ?, ?, ?, 0, ?, ?, '')",
        (
            f"T{uuid.uuid4().hex}",
            data["order_id"],
            resend_of,
            json.dumps(dict(data), sort_keys=True),
            PushStatus.QUEUED,
            now + delay,
            now + delay,
        ),
    )
    return int(cursor.lastrowid or 0)


_COLUMNS = (
    "id, transaction_id, order_id, resend_of, data, status, tries, queued_at, next_at,"
    " finished_at, last_status, last_error"
)


def _record(row: Sequence[Any]) -> PushRecord:
    return PushRecord(
        id=row[0],
        transaction_id=row[1],
        order_id=row[2],
        resend_of=row[3],
        data=json.loads(row[4]),
        status=PushStatus(row[5]),
        tries=row[6],
        queued_at=row[7],
        next_at=row[8],
        finished_at=row[9],
        last_status=row[10],
        last_error=row[11],
    )


def records(state: SandboxState) -> list[PushRecord]:
    """Every event the sandbox queued, in order (the truth behind the pushes, for tests)."""
    with state.reading() as db:
        rows = db.execute(f"SELECT {_COLUMNS} FROM push_outbox ORDER BY id").fetchall()
    return [_record(row) for row in rows]


def counts(state: SandboxState) -> Counter[PushStatus]:
    """Events per status: queued, delivered, dropped."""
    with state.reading() as db:
        rows = db.execute("SELECT status, COUNT(*) FROM push_outbox GROUP BY status").fetchall()
    return Counter({PushStatus(status): number for status, number in rows})


# ---------------------------------------------------------------- delivery


class Pusher:
    """Delivers the outbox of one state to one target, in a daemon thread (`start`/`stop`), or
    one pass at a time (`deliver_due`, for tests). `time_scale` and `resend_rate` are the faults
    spec's `push_time_scale` and `push_dup`."""

    def __init__(
        self,
        state: SandboxState,
        target: PushTarget,
        *,
        time_scale: float = 1.0,
        resend_rate: float = 0.0,
        seed: int | None = None,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not time_scale > 0:
            raise ValueError("push_time_scale must be above 0")
        self.state = state
        self.target = target
        self.time_scale = time_scale
        self.resend_rate = resend_rate
        self._clock = clock
        self._dice = random.Random(seed)
        self._http = httpx.Client(
            timeout=TRY_TIMEOUT,
            transport=transport,
            verify=tls_verification(trust_env=False),
            trust_env=False,
        )
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lf-bulk-pusher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(TRY_TIMEOUT + 1)
        self._http.close()

    def wake(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        self._wake.set()

    def deliver_due(self) -> int:
        """Try every event due now (at most `EVENTS_PER_PASS`); the number of tries made."""
        with self.state.reading() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM push_outbox WHERE status = ? AND next_at <= ?"
                " ORDER BY next_at, id LIMIT ?",
                (PushStatus.QUEUED, self._clock(), EVENTS_PER_PASS),
            ).fetchall()
        for row in rows:
            if self._stop.is_set():
                break
            self._try(_record(row))
        return len(rows)

    def seconds_to_next(self) -> float | None:
        with self.state.reading() as db:
            row = db.execute(
                "SELECT MIN(next_at) FROM push_outbox WHERE status = ?", (PushStatus.QUEUED,)
            ).fetchone()
        return None if row[0] is None else max(0.0, row[0] - self._clock())

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.deliver_due() >= EVENTS_PER_PASS:
                    continue
                wait = self.seconds_to_next()
            except Exception:  # a pusher that stops would silently lose every later event
                log.exception("the sandbox pusher failed; trying again")
                wait = IDLE_POLL_SECONDS
            self._wake.wait(IDLE_POLL_SECONDS if wait is None else min(wait, IDLE_POLL_SECONDS))
            self._wake.clear()

    def _try(self, event: PushRecord) -> None:
        body = wire.make_recharge_event(
            event.transaction_id, round(event.queued_at * 1000), event.data
        )
        headers = wire.sign_push(body, self.target.key_id, self.target.key_hex)
        status: int | None = None
        error = ""
        try:
            status = self._http.post(
                self.target.url, content=wire.push_body_bytes(body), headers=headers
            ).status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except httpx.HTTPError as failure:
            error = type(failure).__name__
        self._record_try(event, status, error)

    def _record_try(self, event: PushRecord, status: int | None, error: str) -> None:
        now = self._clock()
        tries = event.tries + 1
        with self.state.writing() as db:
            if not error:
                db.execute(
                    "UPDATE push_outbox SET status = ?, tries = ?, finished_at = ?,"
                    " last_status = ?, last_error = '' WHERE id = ?",
                    (PushStatus.DELIVERED, tries, now, status, event.id),
                )
                if event.resend_of is None and self._dice.random() < self.resend_rate:
                    delay = RESEND_AFTER_SECONDS * self.time_scale
                    queue_event(db, event.data, now, resend_of=event.id, delay=delay)
            elif tries >= MAX_TRIES:
                db.execute(
                    "UPDATE push_outbox SET status = ?, tries = ?, finished_at = ?,"
                    " last_status = ?, last_error = ? WHERE id = ?",
                    (PushStatus.DROPPED, tries, now, status, error, event.id),
                )
            else:
                due = event.queued_at + RETRY_OFFSETS[tries] * self.time_scale
                db.execute(
                    "UPDATE push_outbox SET tries = ?, next_at = ?, last_status = ?,"
                    " last_error = ? WHERE id = ?",
                    (tries, due, status, error, event.id),
                )
        if error and tries >= MAX_TRIES:
            log.warning(
                "push of order %s dropped after %d tries (last: %s)", event.order_id, tries, error
            )
        elif error:
            log.debug("push of order %s not delivered (%s); try %d", event.order_id, error, tries)
