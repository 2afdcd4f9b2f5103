"""The PostgreSQL store: one database shared by every machine (psycopg 3, imported only here).

- The journal and the quota ledger run their own (SQLite) SQL through `dialect.PgConnection`.
- Schemas: `lf_bulk_meta` holds each kind's schema version; creating or upgrading one happens in
  one transaction under an advisory lock, so two machines starting at once do it once. A kind
  whose tables exist without a version (another application's) is refused untouched, like a
  foreign SQLite file; so is a version newer than this code.
- Locks: `pg_try_advisory_lock` on the store's own connection, which holds every lock of the
  store; a killed process's session ends and its locks with it (like flock). Before each journal
  write (so before each send) the connection is checked: if it was lost, the lock may be in
  another driver's hands, and the run stops (`RunStopped`) instead of going on beside it.
- The shared pacer of each account (`SharedPacer`): one `UPDATE ... RETURNING` per request
  reserves the next send time on the server's clock; in-flight slots are advisory locks (freed
  when the answer comes, or by the server when the process dies); `Retry-After` pushes the next
  send time back for everyone.

Advisory lock keys hash the schema's name with the lock's, so two stores in two schemas of one
database do not see each other's locks.
"""

from __future__ import annotations

import hashlib
import os
import re
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from lf_bulk import answers as answers_module
from lf_bulk import journal as journal_module
from lf_bulk import locking
from lf_bulk.answers import AnswerCache
from lf_bulk.errors import (
    DatabaseTooNew,
    ForeignDatabase,
    RunLocked,
    RunStopped,
    StoreUnavailable,
)
from lf_bulk.journal import Journal
from lf_bulk.quota import QuotaLedger, utc_now
from lf_bulk.store import StoreKind, shown_url
from lf_bulk.store.dialect import PgConnection, translate

CONNECT_TIMEOUT_SECONDS = 10
# A process waiting for an in-flight slot asks again after 5 ms, then less often, up to every
# 40 ms: a request holds its slot for a round trip (tens of milliseconds at least), and every ask
# is a query that each waiting thread of every process would otherwise send 200 times a second.
SLOT_POLL_SECONDS = (0.005, 0.04)
_HOLDER_LIMIT = 60

QUOTA_SCHEMA = """
CREATE TABLE IF NOT EXISTS salt (
    "only" INTEGER PRIMARY KEY CHECK ("only" = 1),
    value BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS usage (
    account TEXT NOT NULL,
    day TEXT NOT NULL,
    used INTEGER NOT NULL CHECK (used >= 0),
    PRIMARY KEY (account, day)
);
CREATE TABLE IF NOT EXISTS server_spent (
    account TEXT PRIMARY KEY,
    until TEXT NOT NULL,
    seen_at TEXT NOT NULL
)
"""

PACER_SCHEMA = """
CREATE TABLE IF NOT EXISTS pacer (
    account TEXT PRIMARY KEY,
    next_start DOUBLE PRECISION NOT NULL
)
"""

Migration = Callable[[Any], None]


def _run_script(db: Any, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


@dataclass(frozen=True)
class SchemaKind:
    """One kind of data the store keeps: its tables, how to create and upgrade them."""

    name: str
    version: int
    tables: tuple[str, ...]
    create: Migration
    migrations: Sequence[Migration]  # migrations[n]: version n to n + 1 (through the dialect)
    renames: tuple[tuple[str, str], ...] = ()  # its SQL's table names -> the store's


JOURNAL = SchemaKind(
    name="journal",
    version=journal_module.SCHEMA_VERSION,
    tables=("runs", "batches", "items", "answers", "events"),
    create=journal_module.JOURNAL_FILE.create,
    migrations=journal_module.JOURNAL_FILE.migrations,
)
QUOTA = SchemaKind(
    name="quota ledger",
    version=1,
    tables=("salt", "usage", "server_spent"),
    create=lambda db: _run_script(db, QUOTA_SCHEMA),
    migrations=(lambda db: _run_script(db, QUOTA_SCHEMA),),
)
PACER = SchemaKind(
    name="pacer",
    version=1,
    tables=("pacer",),
    create=lambda db: _run_script(db, PACER_SCHEMA),
    migrations=(lambda db: _run_script(db, PACER_SCHEMA),),
)
# The answer cache's tables, as the shared database names them: the journal has an `answers`.
ANSWER_CACHE_RENAMES = (("answers", "answer_cache"), ("meta", "answer_cache_meta"))
ANSWER_CACHE = SchemaKind(
    name="answer cache",
    version=answers_module.CACHE_FILE.version,
    tables=("answer_cache", "answer_cache_meta"),
    create=answers_module.CACHE_FILE.create,
    migrations=answers_module.CACHE_FILE.migrations,
    renames=ANSWER_CACHE_RENAMES,
)
KINDS = (JOURNAL, QUOTA, PACER, ANSWER_CACHE)


def advisory_key(namespace: str, name: str) -> int:
    """A signed 64-bit advisory lock key for `name` in the schema `namespace`."""
    digest = hashlib.sha256(f"lf-bulk\n{namespace}\n{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _lock_columns(key: int) -> tuple[int, int]:
    """How pg_locks shows a bigint advisory key: (classid, objid), high and low 32 bits."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return unsigned >> 32, unsigned & 0xFFFFFFFF


def _holder_text(raw: object) -> str:
    text = str(raw or "")[:_HOLDER_LIMIT]
    return re.sub(r"[^\w .:,()/-]", "?", text).strip() or "unknown"


class PostgresStore:
    kind = StoreKind.POSTGRESQL

    def __init__(self, url: str) -> None:
        self.url = url
        self.shown = shown_url(url)
        self._mutex = threading.RLock()
        self._locks_db: psycopg.Connection[Any] | None = None
        self._held: dict[str, tuple[int, str]] = {}  # lock name -> (key, what)
        self._lost = ""
        self._slots_held: dict[str, set[int]] = {}
        self._spare: psycopg.Connection[Any] | None = None
        admin = self.connect("schema")
        try:
            self.namespace = str(admin.execute("SELECT current_schema()").fetchone()[0])  # type: ignore[index]
            for kind in KINDS:
                self._prepare(admin, kind)
        except BaseException:
            admin.close()
            raise
        # Kept for the first connection asked for next (every user of a store asks for one):
        # a new session costs the server about as much CPU as all the preparing above.
        self._spare = admin

    # ------------------------------------------------------------ connections

    def connect(self, purpose: str = "") -> psycopg.Connection[Any]:
        """A connection of its own (autocommit) for `purpose`, shown in pg_stat_activity."""
        name = f"lf-bulk {purpose} {socket.gethostname()} pid {os.getpid()}".replace("  ", " ")
        with self._mutex:
            spare, self._spare = self._spare, None
        if spare is not None and not spare.closed and not spare.broken:
            with suppress(psycopg.Error):
                spare.execute("SELECT set_config('application_name', %s, false)", (name[:63],))
                return spare
            spare.close()
        try:
            return psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                application_name=name[:63],
            )
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreUnavailable(
                f"the store {self.shown} cannot be reached ({reason}); check --store, the server, "
                "and PGPASSWORD or ~/.pgpass"
            ) from None

    def key(self, name: str) -> int:
        return advisory_key(self.namespace, name)

    def _prepare(self, db: psycopg.Connection[Any], kind: SchemaKind) -> None:
        """Create or upgrade `kind`'s tables, once, in one transaction under the schema lock."""
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (self.key("schema"),))
            db.execute(
                "CREATE TABLE IF NOT EXISTS lf_bulk_meta (kind TEXT PRIMARY KEY,"
                " version INTEGER NOT NULL)"
            )
            row = db.execute(
                "SELECT version FROM lf_bulk_meta WHERE kind = %s", (kind.name,)
            ).fetchone()
            adapter = PgConnection(db, self.key(f"write {kind.name}"), renames=kind.renames)
            if row is None:
                present = [
                    t
                    for t in kind.tables
                    if db.execute("SELECT to_regclass(%s)", (t,)).fetchone()[0] is not None  # type: ignore[index]
                ]
                if present:
                    raise ForeignDatabase(
                        f"the store {self.shown} has tables ({', '.join(present)}) that lf-bulk's "
                        f"{kind.name} did not make (another application's?); use another database "
                        "or schema for lf-bulk"
                    )
                kind.create(adapter)
                db.execute(
                    "INSERT INTO lf_bulk_meta (kind, version) VALUES (%s, %s)",
                    (kind.name, kind.version),
                )
                return
            version = int(row[0])
            if version > kind.version:
                raise DatabaseTooNew(
                    f"the {kind.name} in the store {self.shown} has schema version {version}, "
                    f"newer than this lf-bulk understands ({kind.version}); upgrade lf-bulk"
                )
            if version < kind.version:
                for migrate in kind.migrations[version:]:
                    migrate(adapter)
                db.execute(
                    "UPDATE lf_bulk_meta SET version = %s WHERE kind = %s",
                    (kind.version, kind.name),
                )

    # ------------------------------------------------------------ the journal and the ledger

    def journal(self) -> Journal:
        db = PgConnection(self.connect("journal"), self.key("write journal"))
        return Journal(self.shown, db=db, guard=self.check_locks)

    def journal_for(self, home: Path) -> Journal:
        """The journal for one user of the store (a command, a job): while it is open, the
        locks `lf_bulk.locking` takes for `home` are this store's; closing it closes the store."""

        def closed() -> None:
            locking.unbind(home, self)
            self.close()

        db = PgConnection(self.connect("journal"), self.key("write journal"), on_close=closed)
        locking.bind(home, self)
        return Journal(self.shown, db=db, guard=self.check_locks)

    def quota_ledger(
        self,
        identity: str,
        *,
        daily_quota: int,
        reserve: int,
        clock: Callable[[], datetime] | None = None,
    ) -> QuotaLedger:
        db = PgConnection(self.connect("quota"), self.key("write quota ledger"))
        try:
            return QuotaLedger(
                Path(self.shown),
                identity,
                daily_quota=daily_quota,
                reserve=reserve,
                clock=clock or utc_now,
                db=db,
            )
        except BaseException:
            db.close()
            raise

    def answer_cache(self) -> AnswerCache:
        db = PgConnection(
            self.connect("answers"),
            self.key("write answer cache"),
            renames=ANSWER_CACHE_RENAMES,
        )
        try:
            return AnswerCache(Path(self.shown), db=db)
        except BaseException:
            db.close()
            raise

    def pacer(self, account_key: str, rate: float, concurrency: int) -> SharedPacer:
        return SharedPacer(self, account_key, rate, concurrency)

    # ------------------------------------------------------------ locks

    def _lock_connection(self) -> psycopg.Connection[Any]:
        if self._locks_db is None or self._locks_db.closed or self._locks_db.broken:
            self._locks_db = self.connect("locks")
            self._lost = ""
        return self._locks_db

    @contextmanager
    def lock(self, name: str, what: str, *, holder: str = "") -> Iterator[None]:
        key = self.key(name)
        with self._mutex:
            if name in self._held:  # flock's rule: one holder, even within a process
                raise RunLocked(f"{what} is being driven by this lf-bulk process already")
            db = self._lock_connection()
            try:
                taken = db.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]  # type: ignore[index]
            except psycopg.Error as exc:
                raise StoreUnavailable(f"the store {self.shown} failed ({exc})") from None
            if not taken:
                raise RunLocked(
                    f"{what} is being driven by another lf-bulk process ({self._holder(key)}); "
                    "wait for it to finish, or stop it first"
                )
            self._held[name] = (key, what)
            # Who holds it, for whoever finds it taken (pg_stat_activity shows it to them).
            me = f"lf-bulk pid {os.getpid()}, {holder or 'a run'} on {socket.gethostname()}"
            with suppress(psycopg.Error):
                db.execute("SELECT set_config('application_name', %s, false)", (me[:63],))
        try:
            yield
        finally:
            with self._mutex:
                self._held.pop(name, None)
                if not db.closed and not db.broken:
                    with suppress(psycopg.Error):  # a lost session's locks went with it
                        db.execute("SELECT pg_advisory_unlock(%s)", (key,))

    def _holder(self, key: int) -> str:
        high, low = _lock_columns(key)
        try:
            row = (
                self._lock_connection()
                .execute(
                    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                    " WHERE l.locktype = 'advisory' AND l.classid = %s AND l.objid = %s"
                    " AND l.objsubid = 1 AND l.granted LIMIT 1",
                    (high, low),
                )
                .fetchone()
            )
        except psycopg.Error:
            row = None
        return _holder_text(row[0] if row else "")

    def is_held(self, name: str) -> bool:
        high, low = _lock_columns(self.key(name))
        with self._mutex:
            if name in self._held:
                return True
            row = (
                self._lock_connection()
                .execute(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
                    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                    " AND classid = %s AND objid = %s AND objsubid = 1 AND granted)",
                    (high, low),
                )
                .fetchone()
            )
        return bool(row and row[0])

    def check_locks(self) -> None:
        with self._mutex:
            if not self._held:
                return
            whats = ", ".join(what for _, what in self._held.values())
            if not _alive(self._locks_db):
                self._lost = whats
                raise RunStopped(
                    f"the connection to the store {self.shown} that held the lock of {whats} "
                    "was lost: another lf-bulk process may drive it now, so this one stopped "
                    "before sending more. `lf-bulk runs show` says where it is; `lf-bulk runs "
                    "resume` continues it when nobody else does"
                ) from None

    def close(self) -> None:
        with self._mutex:
            if self._spare is not None:
                self._spare.close()
                self._spare = None
            if self._locks_db is not None:
                self._locks_db.close()
                self._locks_db = None


def _alive(db: psycopg.Connection[Any] | None) -> bool:
    """Whether an idle connection still holds its session, asked without a round trip when the
    server has said nothing: a terminated session's server sends an error and closes, which
    makes the socket readable; only then is the connection asked."""
    if db is None or db.closed or db.broken:
        return False
    try:
        readable, _, _ = select.select([db.fileno()], [], [], 0)
        if readable:
            db.execute("SELECT 1")
    except (psycopg.Error, OSError, ValueError):
        return False
    return True


class SharedPacer:
    """The request pacer of one account, shared through the store by every process using it.

    `slot()` first takes one of `concurrency` in-flight slots (advisory locks, so a dead
    process's slot is freed by the server at once), then reserves the next send time: one
    `UPDATE ... RETURNING` on the server's clock, `1/rate` after the previous reservation of any
    process, and sleeps until then. `hold_off(seconds)` (the server said Retry-After) pushes
    every process's next send back.
    """

    def __init__(
        self,
        store: PostgresStore,
        account: str,
        rate: float,
        concurrency: int,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or concurrency < 1:
            raise ValueError("rate must be positive and concurrency at least 1")
        self.store = store
        self.account = account
        self.interval = 1.0 / rate
        self.max_in_flight = concurrency
        self._sleep = sleep
        self._db = store.connect("pacer")
        self._mutex = threading.Lock()
        self._mine: set[int] = set()
        self._slot_keys = [store.key(f"slot {account} {n}") for n in range(concurrency)]
        # How long each reservation took, and the send times reserved (the database's clock).
        self.reservations: list[float] = []
        self.starts: list[float] = []
        self._reserve_sql = translate(
            "INSERT INTO pacer (account, next_start) SELECT ?, now_s + ? FROM"
            " (SELECT EXTRACT(EPOCH FROM clock_timestamp())::DOUBLE PRECISION AS now_s) AS c"
            " ON CONFLICT (account) DO UPDATE SET next_start ="
            " GREATEST(pacer.next_start, EXCLUDED.next_start - ?) + ?"
            " RETURNING next_start - ?,"
            " EXTRACT(EPOCH FROM clock_timestamp())::DOUBLE PRECISION"
        )

    def close(self) -> None:
        self._db.close()

    def _take_slot(self) -> int:
        wait, longest = SLOT_POLL_SECONDS
        while True:
            with self._mutex:
                for number, key in enumerate(self._slot_keys):
                    if number in self._mine:
                        continue
                    row = self._db.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
                    if row and row[0]:
                        self._mine.add(number)
                        return number
            self._sleep(wait)
            wait = min(2 * wait, longest)

    def _give_slot(self, number: int) -> None:
        with self._mutex:
            self._mine.discard(number)
            if not self._db.closed and not self._db.broken:
                self._db.execute("SELECT pg_advisory_unlock(%s)", (self._slot_keys[number],))

    def reserve(self) -> float:
        """Reserve the next send time; returns how long to wait for it (seconds)."""
        began = time.perf_counter()
        with self._mutex:
            interval = self.interval
            row = self._db.execute(
                self._reserve_sql, (self.account, interval, interval, interval, interval)
            ).fetchone()
        self.reservations.append(time.perf_counter() - began)
        if row is None:
            return 0.0
        start, now = float(row[0]), float(row[1])
        self.starts.append(start)
        return max(0.0, start - now)

    @contextmanager
    def slot(self) -> Iterator[None]:
        try:
            number = self._take_slot()
        except psycopg.Error as exc:
            raise StoreUnavailable(f"the store {self.store.shown} failed ({exc})") from None
        try:
            wait = self.reserve()
            if wait > 0:
                self._sleep(wait)
            yield
        finally:
            with suppress(psycopg.Error):  # a lost session's slot went with it
                self._give_slot(number)

    def hold_off(self, seconds: float) -> None:
        with self._mutex:
            self._db.execute(
                translate(
                    "INSERT INTO pacer (account, next_start) VALUES"
                    " (?, EXTRACT(EPOCH FROM clock_timestamp())::DOUBLE PRECISION + ?)"
                    " ON CONFLICT (account) DO UPDATE SET next_start ="
                    " GREATEST(pacer.next_start, EXCLUDED.next_start)"
                ),
                (self.account, float(seconds)),
            )


__all__ = ("PostgresStore", "SharedPacer", "advisory_key")
