"""The daily request quota: a ledger in `<home>/quota.db` that counts every request we send.

Linksfield allows a partner code a number of requests per UTC day over every service and call
(assumed 5,000; `linksfield-api.md` §5). The ledger counts each attempt before it leaves (the
client calls `take()`), per account and UTC day, across threads and processes (one
`BEGIN IMMEDIATE` transaction per request), so that a job stops cleanly *before* the server
refuses it, and the last `reserve` requests of the day are kept for `reconcile`, the nightly job
that must never be starved by look-ups.

The account is the partner code at one server: the ledger stores only a salted, slow hash of it
(the code is the credential), with the salt in the same private file. A partner code is short, so
the hash slows guessing; what keeps the file from other users is its owner-only mode.

A server that answers 429 with `data.quota == "DAILY"` has the last word: the day is marked spent
until the reset time it gave, for every process. `LedgerGate(retry_server=True)` (what `runs
resume` uses) sends one request anyway, since the server may have reset earlier than our clock
thinks; a second DAILY answer marks the day again.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from lf_bulk import sqlite
from lf_bulk.defaults import DEFAULT_DAILY_QUOTA, DEFAULT_QUOTA_RESERVE
from lf_bulk.errors import QuotaExhausted

log = logging.getLogger(__name__)

QUOTA_FILE = "quota.db"
# Days of counts kept; older ones are dropped when the ledger is opened.
KEEP_DAYS = 31
# PBKDF2 rounds for the account key: about 12 ms once per home and process; a guess costs as much.
HASH_ROUNDS = 20_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS salt (
    only INTEGER PRIMARY KEY CHECK (only = 1),
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS usage (
    account TEXT NOT NULL,
    day TEXT NOT NULL,
    used INTEGER NOT NULL CHECK (typeof(used) = 'integer' AND used >= 0),
    PRIMARY KEY (account, day)
);
CREATE TABLE IF NOT EXISTS server_spent (
    account TEXT PRIMARY KEY,
    until TEXT NOT NULL,
    seen_at TEXT NOT NULL
);
"""

APPLICATION_ID = 0x4C465141  # "LFQA" in the SQLite header: this file is an lf-bulk quota ledger
SCHEMA_VERSION = 1

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class QuotaSource(StrEnum):
    """Who said the day's quota is spent."""

    LEDGER = "ledger"
    SERVER = "server"


def _create(db: sqlite3.Connection) -> None:
    for statement in SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)


LEDGER_KIND = sqlite.FileKind(
    name="quota ledger",
    application_id=APPLICATION_ID,
    version=SCHEMA_VERSION,
    create=_create,
    migrations=(_create,),
    is_legacy=lambda db: False,
)


def next_reset(now: datetime) -> datetime:
    """The next UTC midnight after `now`: when the server's day (and ours) starts again."""
    today = now.astimezone(UTC).date()
    return datetime.combine(today + timedelta(days=1), time(0), UTC)


def describe_reset(resets_at: datetime, now: datetime) -> str:
    """``'00:00 UTC, in 5 h 12 min'``; a date is added when it is not within the next day."""
    at = resets_at.astimezone(UTC)
    wait = max(timedelta(0), at - now)
    shown = (
        at.strftime("%H:%M UTC") if wait < timedelta(days=1) else at.strftime("%Y-%m-%d %H:%M UTC")
    )
    minutes = int(wait.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    span = f"{hours} h {minutes} min" if hours else f"{minutes} min"
    return f"{shown}, in {span}"


@lru_cache(maxsize=8)
def account_key(salt: bytes, identity: str) -> str:
    """The name the ledger knows an account by: never the partner code itself."""
    return hashlib.pbkdf2_hmac("sha256", identity.encode(), salt, HASH_ROUNDS).hex()


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


class QuotaLedger:
    """Requests sent per account per UTC day, in a private SQLite file shared by processes.

    `identity` names the account (the partner code and the server it is used at); only its salted
    hash is stored. `daily_quota` is the day's limit, `reserve` how many of them only a gate with
    `spend_reserve` (reconcile's) may use.
    """

    def __init__(
        self,
        path: Path,
        identity: str,
        *,
        daily_quota: int = DEFAULT_DAILY_QUOTA,
        reserve: int = DEFAULT_QUOTA_RESERVE,
        clock: Clock = utc_now,
        db: Any = None,
    ) -> None:
        """`db`: a connection of another store speaking this module's SQL (`path` then only
        names it in messages); by default the SQLite file at `path`."""
        if daily_quota < 1 or not 0 <= reserve < daily_quota:
            raise ValueError(
                f"a daily quota of {daily_quota} with a reserve of {reserve}: the quota must be "
                "at least 1 and the reserve below it"
            )
        self.path = Path(path)
        self.daily_quota = daily_quota
        self.reserve = reserve
        self.clock = clock
        # Re-entrant: `exhausted` reads the count inside `take` and on its own.
        self._lock = threading.RLock()
        self._db = (
            sqlite.connect(self.path, LEDGER_KIND, check_same_thread=False) if db is None else db
        )
        try:
            self._account = account_key(self._salt(), identity)
            self._forget_old_days()
        except BaseException:
            self._db.close()
            raise

    @classmethod
    def in_home(
        cls,
        home: Path,
        identity: str,
        *,
        daily_quota: int = DEFAULT_DAILY_QUOTA,
        reserve: int = DEFAULT_QUOTA_RESERVE,
        clock: Clock = utc_now,
    ) -> QuotaLedger:
        return cls(
            Path(home) / QUOTA_FILE, identity, daily_quota=daily_quota, reserve=reserve, clock=clock
        )

    def __enter__(self) -> QuotaLedger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------ reading

    @property
    def account(self) -> str:
        """The account's key: the salted hash of its identity (never the partner code)."""
        return self._account

    def budget(self, *, spend_reserve: bool = False) -> int:
        """The requests a day allows to a gate that may (or may not) spend the reserve."""
        return self.daily_quota if spend_reserve else self.daily_quota - self.reserve

    def used_today(self) -> int:
        with self._lock:
            return self._used(self._today())

    def left_today(self, *, spend_reserve: bool = False) -> int:
        """Requests still allowed today: 0 while the server says the day is spent."""
        with self._lock:
            if self._server_spent_until() is not None:
                return 0
            return max(0, self.budget(spend_reserve=spend_reserve) - self._used(self._today()))

    def resets_at(self) -> datetime:
        """When more requests are allowed: the server's word when it gave one, else UTC midnight."""
        with self._lock:
            return self._server_spent_until() or next_reset(self.clock())

    def server_spent_until(self) -> datetime | None:
        with self._lock:
            return self._server_spent_until()

    def describe(self, *, spend_reserve: bool = False) -> str:
        """Today's quota in one line, e.g. for `doctor`."""
        now = self.clock()
        used, left = self.used_today(), self.left_today(spend_reserve=spend_reserve)
        server = self.server_spent_until()
        kept = f" ({self.reserve:,} kept for reconcile)" if self.reserve else ""
        text = f"{used:,} of {self.daily_quota:,} requests used today{kept}; {left:,} left"
        if server is not None:
            text += "; the server said the day's quota is spent"
        return f"{text}; resets {describe_reset(self.resets_at(), now)}"

    # ------------------------------------------------------------ counting

    def take(self, *, spend_reserve: bool = False, ignore_server_mark: bool = False) -> None:
        """Count one request about to be sent; raise `QuotaExhausted` (and count nothing) when
        the day's budget is spent, by our count or by the server's word."""
        with self._lock, sqlite.transaction(self._db):
            now = self.clock()
            server = None if ignore_server_mark else self._server_spent_until()
            if server is not None:
                raise self.exhausted(QuotaSource.SERVER, server, spend_reserve=spend_reserve)
            day = self._today()
            used = self._used(day)
            budget = self.budget(spend_reserve=spend_reserve)
            if used >= budget:
                raise self.exhausted(
                    QuotaSource.LEDGER, next_reset(now), spend_reserve=spend_reserve
                )
            self._db.execute(
                "INSERT INTO usage (account, day, used) VALUES (?, ?, 1) "
                "ON CONFLICT (account, day) DO UPDATE SET used = usage.used + 1",
                (self._account, day),
            )

    def mark_server_exhausted(self, resets_at: datetime | None) -> None:
        """The server answered 429 DAILY: no request until `resets_at` (default: UTC midnight)."""
        now = self.clock()
        until = resets_at if resets_at is not None and resets_at > now else next_reset(now)
        with self._lock, sqlite.transaction(self._db):
            self._db.execute(
                "INSERT INTO server_spent (account, until, seen_at) VALUES (?, ?, ?) "
                "ON CONFLICT (account) DO UPDATE SET until = excluded.until, "
                "seen_at = excluded.seen_at",
                (self._account, until.astimezone(UTC).isoformat(), now.isoformat()),
            )
        log.info("the server says the daily quota is spent until %s", until.isoformat())

    def gate(self, *, spend_reserve: bool = False, retry_server: bool = False) -> LedgerGate:
        """A `client.QuotaGate` counting in this ledger."""
        return LedgerGate(self, spend_reserve=spend_reserve, retry_server=retry_server)

    # ------------------------------------------------------------ plumbing

    def _today(self) -> str:
        return self.clock().astimezone(UTC).date().isoformat()

    def _used(self, day: str) -> int:
        row = self._db.execute(
            "SELECT used FROM usage WHERE account = ? AND day = ?", (self._account, day)
        ).fetchone()
        return int(row[0]) if row else 0

    def _server_spent_until(self) -> datetime | None:
        row = self._db.execute(
            "SELECT until FROM server_spent WHERE account = ?", (self._account,)
        ).fetchone()
        if row is None:
            return None
        try:
            until = datetime.fromisoformat(str(row[0]))
        except ValueError:
            log.warning("quota ledger %s: an unreadable server mark is ignored", self.path)
            return None
        if until.tzinfo is None:
            until = until.replace(tzinfo=UTC)
        now = self.clock()
        # A mark further away than a day is not what a server's Retry-After meant: cap it.
        return min(until, next_reset(now) + timedelta(days=1)) if until > now else None

    def _salt(self) -> bytes:
        with sqlite.transaction(self._db):
            # "only" quoted: a reserved word in PostgreSQL, whose store runs this SQL too.
            row = self._db.execute('SELECT value FROM salt WHERE "only" = 1').fetchone()
            if row is not None and isinstance(row[0], bytes | memoryview) and len(row[0]) >= 16:
                return bytes(row[0])
            salt = secrets.token_bytes(16)
            self._db.execute(
                'INSERT INTO salt ("only", value) VALUES (1, ?)'
                ' ON CONFLICT ("only") DO UPDATE SET value = excluded.value',
                (salt,),
            )
            return salt

    def _forget_old_days(self) -> None:
        oldest = (self.clock().astimezone(UTC).date() - timedelta(days=KEEP_DAYS)).isoformat()
        with sqlite.transaction(self._db):
            self._db.execute("DELETE FROM usage WHERE day < ?", (oldest,))

    def exhausted(
        self, source: QuotaSource, resets_at: datetime, *, spend_reserve: bool = False
    ) -> QuotaExhausted:
        """The error that says the day is spent, with the numbers."""
        now = self.clock()
        with self._lock:
            used = self._used(self._today())
        budget = self.budget(spend_reserve=spend_reserve)
        reset = describe_reset(resets_at, now)
        if source is QuotaSource.SERVER:
            message = (
                "the daily request quota is spent: the server said so (HTTP 429, quota DAILY; "
                f"{used:,} requests counted here today); it resets at {reset}"
            )
        else:
            kept = (
                f"; {self.reserve:,} more are kept for reconcile"
                if self.reserve and not spend_reserve
                else ""
            )
            message = (
                f"the daily request quota is spent: {used:,} of {budget:,} requests used today "
                f"by our ledger (--daily-quota {self.daily_quota:,}{kept}); it resets at {reset}"
            )
        return QuotaExhausted(
            message, resets_at=resets_at, used=used, limit=budget, source=source.value
        )


@dataclass
class LedgerGate:
    """A `client.QuotaGate` over a ledger: what one session may spend.

    `spend_reserve`: reconcile's gate, which may use the whole day. `retry_server`: send a request
    even though the server said the day is spent (until it says so again).
    """

    ledger: QuotaLedger
    spend_reserve: bool = False
    retry_server: bool = False

    def take(self) -> None:
        self.ledger.take(spend_reserve=self.spend_reserve, ignore_server_mark=self.retry_server)

    def server_exhausted(self, resets_at: datetime) -> None:
        self.retry_server = False
        self.ledger.mark_server_exhausted(resets_at)


def retry_server(client: object) -> None:
    """Let `client` send once more although the server said today's quota is spent (what `runs
    resume` does: the server may have reset before our clock's midnight)."""
    gate = ledger_gate(client)
    if gate is not None:
        gate.retry_server = True


def allow_reserve(client: object) -> None:
    """Let `client` spend the requests kept for reconcile: only reconcile's calls do."""
    gate = ledger_gate(client)
    if gate is not None:
        gate.spend_reserve = True


# ---------------------------------------------------------------- plans


@dataclass(frozen=True)
class QuotaPlan:
    """What a job needs against what is left today."""

    needed: int
    left: int
    resets_at: datetime
    now: datetime

    @property
    def fits(self) -> bool:
        return self.needed <= self.left

    def describe(self) -> str:
        """``'needs 15,000 calls; 4,200 left today (resets 00:00 UTC, in 5 h 12 min)'``."""
        return (
            f"needs {_plural(self.needed, 'call')}; {self.left:,} left today "
            f"(resets {describe_reset(self.resets_at, self.now)})"
        )

    def line(self, what: str) -> str:
        """``'quota: the run needs 31 calls; 4,200 left today (...)'``, with the advice if any."""
        advice = self.advice()
        return f"quota: {what} {self.describe()}" + (f"; {advice}" if advice else "")

    def advice(self) -> str:
        """What a job that does not fit will do; empty when it fits."""
        if self.fits:
            return ""
        return (
            f"the quota runs out after about {self.left:,} of them: the run then stops (exit 5), "
            "and `lf-bulk runs resume` continues it after the reset"
        )


def plan_for(calls_needed: int, ledger: QuotaLedger, *, spend_reserve: bool = False) -> QuotaPlan:
    return QuotaPlan(
        calls_needed,
        ledger.left_today(spend_reserve=spend_reserve),
        ledger.resets_at(),
        ledger.clock(),
    )


def describe_plan(calls_needed: int, ledger: QuotaLedger, *, spend_reserve: bool = False) -> str:
    """``'needs 15,000 calls; 4,200 left today (resets 00:00 UTC, in 5 h 12 min)'``."""
    return plan_for(calls_needed, ledger, spend_reserve=spend_reserve).describe()


def check_plan(calls_needed: int, ledger: QuotaLedger, *, spend_reserve: bool = False) -> QuotaPlan:
    """Before a job starts: refuse it (`QuotaExhausted`, nothing sent) when no request at all is
    left today; otherwise the plan, whose `advice()` says what happens when it does not fit."""
    plan = plan_for(calls_needed, ledger, spend_reserve=spend_reserve)
    if calls_needed > 0 and plan.left == 0:
        source = QuotaSource.SERVER if ledger.server_spent_until() else QuotaSource.LEDGER
        error = ledger.exhausted(source, plan.resets_at, spend_reserve=spend_reserve)
        raise QuotaExhausted(
            f"{error}; the job needs {_plural(calls_needed, 'call')}: nothing was sent, run it "
            "again after the reset",
            resets_at=error.resets_at,
            used=error.used,
            limit=error.limit,
            source=error.source,
        )
    return plan


def ledger_gate(client: object) -> LedgerGate | None:
    """The ledger gate `client` counts its requests in; None when it counts in none."""
    gate = getattr(client, "quota", None)
    return gate if isinstance(gate, LedgerGate) else None


def client_plan(client: object, calls_needed: int, *, check: bool = True) -> QuotaPlan | None:
    """The quota plan of a job on `client` (None when it counts in no ledger); `check` refuses
    the job when nothing at all is left today (see `check_plan`)."""
    gate = ledger_gate(client)
    if gate is None:
        return None
    if check:
        return check_plan(calls_needed, gate.ledger, spend_reserve=gate.spend_reserve)
    return plan_for(calls_needed, gate.ledger, spend_reserve=gate.spend_reserve)


def calls_for_bulk(valid: int, batch_size: int, *, polls_each: int = 2) -> int:
    """About how many requests an add/remove of `valid` ICCIDs costs: the group check, one send
    per batch and a few polls each (operations usually finish within two polls)."""
    batches = -(-valid // max(1, batch_size))
    return 1 + batches * (1 + polls_each)


__all__ = (
    "DEFAULT_DAILY_QUOTA",
    "DEFAULT_QUOTA_RESERVE",
    "QUOTA_FILE",
    "LedgerGate",
    "QuotaLedger",
    "QuotaPlan",
    "QuotaSource",
    "allow_reserve",
    "calls_for_bulk",
    "check_plan",
    "client_plan",
    "describe_plan",
    "describe_reset",
    "ledger_gate",
    "next_reset",
    "plan_for",
    "retry_server",
)
