"""The run journal: every run, batch and ICCID, and each state change, in SQLite (WAL).

A batch moves planned → sending → submitted (request id known) → final, and each move is committed
before the next network call, so that after a crash:
- a `submitted` batch is only polled, never sent again;
- a `sending` batch (sent, answer unknown) becomes `answer_lost`;
- an `answer_lost` batch (the server may have taken it) is settled by the group's membership once
  the asynchronous window since its send has passed (`lost` when settled), never sent blindly;
- a `planned` batch was never sent.

A run is `running`, `not_finished` (stopped; resumable), `finished`, `failed` (stopped for a
permanent reason; not resumable) or `cancelled` (`runs cancel`). `interrupted` is never stored: it
is how a `running` run whose process is gone (nobody holds its lock) is shown.

An item is one change to one SIM (an ICCID, an operation, a group). Items get their final outcome in
the same transaction that closes their batch. A run may hold several operations and groups in
ordered phases (reconcile removes before it adds); the bulk job has one.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from json.encoder import encode_basestring_ascii as _json_text  # json.dumps' own C encoder
from pathlib import Path
from typing import Any, NamedTuple

from lf_bulk import sqlite
from lf_bulk.errors import RunNotFound, RunTampered
from lf_bulk.models import NO_INPUT, InputCounts, OutcomeCode
from lf_bulk.redaction import redact
from lf_bulk.wire import DEFAULT_BATCH_SIZE

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    operation TEXT NOT NULL,
    group_id TEXT NOT NULL,
    status TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT '',
    report_dir TEXT NOT NULL DEFAULT '',
    batch_size INTEGER NOT NULL,
    input_rows INTEGER NOT NULL DEFAULT 0,
    valid INTEGER NOT NULL DEFAULT 0,
    invalid INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0,
    endpoint TEXT NOT NULL DEFAULT '',
    details TEXT NOT NULL DEFAULT '{}',
    started_at TEXT NOT NULL,
    finished_at TEXT,
    exit_code INTEGER
);
CREATE TABLE IF NOT EXISTS batches (
    run_id TEXT NOT NULL,
    batch_id INTEGER NOT NULL,
    phase INTEGER NOT NULL,
    operation TEXT NOT NULL,
    group_id TEXT NOT NULL,
    state TEXT NOT NULL,
    request_id TEXT,
    sends INTEGER NOT NULL DEFAULT 0,
    polls INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    next_poll_at REAL,
    submitted_at REAL,
    api_status TEXT,
    error TEXT,
    PRIMARY KEY (run_id, batch_id)
);
CREATE INDEX IF NOT EXISTS batches_by_state ON batches (run_id, state);
CREATE INDEX IF NOT EXISTS batches_planned_due ON batches (run_id, phase, not_before, batch_id)
    WHERE state = 'planned';
CREATE INDEX IF NOT EXISTS batches_polls_due ON batches (run_id, next_poll_at)
    WHERE state = 'submitted';
CREATE INDEX IF NOT EXISTS batches_lost_due ON batches (run_id, submitted_at)
    WHERE state = 'answer_lost';
CREATE TABLE IF NOT EXISTS items (
    run_id TEXT NOT NULL,
    item_id INTEGER NOT NULL,
    row INTEGER NOT NULL,
    iccid TEXT NOT NULL,
    operation TEXT NOT NULL,
    group_id TEXT NOT NULL,
    phase INTEGER NOT NULL,
    batch_id INTEGER,
    outcome TEXT,
    reason_code TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    request_id TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, item_id)
);
CREATE INDEX IF NOT EXISTS items_by_batch_in_order ON items (run_id, batch_id, item_id);
CREATE INDEX IF NOT EXISTS items_pending_by_phase ON items (run_id, phase) WHERE outcome IS NULL;
CREATE TABLE IF NOT EXISTS answers (
    run_id TEXT NOT NULL,
    item_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    call TEXT NOT NULL,
    state TEXT NOT NULL,
    request TEXT NOT NULL DEFAULT '{}',
    answer TEXT NOT NULL DEFAULT '',
    fetched_at REAL,
    source TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, item_id, seq)
);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL,
    batch_id INTEGER,
    at TEXT NOT NULL,
    event TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
"""

APPLICATION_ID = 0x4C464A4E  # "LFJN" in the SQLite header: this file is an lf-bulk journal
SCHEMA_VERSION = 4
"""1: application id, schema version, and every run's integrity record (0: lf-bulk 0.1.0).
2: indexes that keep an engine tick proportional to the open batches, not to the run.
3: the `answers` of look-up runs: per item, each call in order, its request and its answer.
4: indexes of the open batches by when they are due (to send, to poll, to settle), which keep an
   engine tick proportional to the batches that are ready, not to the open ones."""


class RunStatus(StrEnum):
    RUNNING = "running"
    NOT_FINISHED = "not_finished"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # shown, never stored: `running` with no process holding its lock


class BatchState(StrEnum):
    PLANNED = "planned"
    SENDING = "sending"
    SUBMITTED = "submitted"
    FINAL = "final"
    SPLIT = "split"
    ANSWER_LOST = "answer_lost"  # sent, answer lost: to be settled by membership
    LOST = "lost"  # an answer-lost batch, settled
    CANCELLED = "cancelled"


# The module-level names other modules use, as aliases of the members.
RUNNING = RunStatus.RUNNING
NOT_FINISHED = RunStatus.NOT_FINISHED
FINISHED = RunStatus.FINISHED
FAILED = RunStatus.FAILED
CANCELLED = RunStatus.CANCELLED
INTERRUPTED = RunStatus.INTERRUPTED
TERMINAL_STATUSES = frozenset({FINISHED, FAILED, CANCELLED})
NOT_RESUMABLE = frozenset({FAILED, CANCELLED})

PLANNED = BatchState.PLANNED
SENDING = BatchState.SENDING
SUBMITTED = BatchState.SUBMITTED
FINAL = BatchState.FINAL
SPLIT = BatchState.SPLIT
ANSWER_LOST = BatchState.ANSWER_LOST
LOST = BatchState.LOST
CANCELLED_BATCH = BatchState.CANCELLED
OPEN_STATES = (PLANNED, SUBMITTED, ANSWER_LOST)
"""The states of a batch the engine still has to send, poll or settle."""

PENDING_LOST_MARK = "LOST"  # reason_code of a pending item whose last send's answer was lost

PENDING = OutcomeCode.PENDING

LOOKUP_SLOT = 0
"""The batch_id of every item of a look-up run (which has no batches) that is to be asked; NULL
keeps meaning "never to be sent" (invalid, duplicate), as the integrity record says."""


class CallState(StrEnum):
    """A look-up call in the `answers` table."""

    SENDING = "sending"  # a mutating call is (or was) on the wire; its answer not recorded
    ANSWERED = "answered"


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


class PlannedItem(NamedTuple):
    """One item of a run to be created. A named tuple, not a dataclass: a million-row input
    makes a million of them, and a frozen dataclass costs four times as much to build."""

    row: int
    iccid: str
    operation: str
    group_id: str
    phase: int = 0
    outcome: OutcomeCode | None = None  # set for rows that will never be sent (invalid, duplicate)
    reason_code: str = ""
    reason: str = ""


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    kind: str
    operation: str
    group_id: str
    status: str
    source: str
    report_dir: str
    batch_size: int
    input_rows: int
    valid: int
    invalid: int
    duplicates: int
    endpoint: str
    details: dict[str, Any]
    started_at: str
    finished_at: str | None
    exit_code: int | None


@dataclass(frozen=True)
class BatchRecord:
    run_id: str
    batch_id: int
    phase: int
    operation: str
    group_id: str
    state: str
    request_id: str | None
    sends: int
    polls: int
    not_before: float
    next_poll_at: float | None
    submitted_at: float | None


@dataclass(frozen=True)
class ItemRecord:
    item_id: int
    row: int
    iccid: str
    operation: str
    group_id: str
    phase: int
    batch_id: int | None
    outcome: str | None
    reason_code: str
    reason: str
    request_id: str
    attempts: int


ITEM_COLUMNS = tuple(ItemRecord.__dataclass_fields__)


@dataclass(frozen=True)
class CallRecord:
    """One call of a look-up item: `request` and `answer` are the JSON texts stored."""

    item_id: int
    seq: int
    call: str
    state: str
    request: str
    answer: str
    fetched_at: float | None
    source: str


@dataclass(frozen=True)
class Outcome:
    outcome: OutcomeCode
    reason_code: str = ""
    reason: str = ""


class Journal:
    """The journal file: opened through `lf_bulk.sqlite` (owner-only, no links, ours, migrated).

    A store other than SQLite passes `db`, a connection that speaks this module's SQL (see
    `lf_bulk.store.dialect`), with `path` naming it in messages, and `guard`, called before
    each write transaction (so before each send): it raises `RunStopped` when the store's lock
    of the run may have been lost.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        db: Any = None,
        guard: Callable[[], None] | None = None,
    ) -> None:
        self.path = path
        self._db = sqlite.connect(Path(path), JOURNAL_FILE) if db is None else db
        self._db.row_factory = sqlite3.Row
        self._guard = guard
        # Runs this object created, with the file's state just after: see `_unchanged_since`.
        self._created: dict[str, tuple[tuple[int, int], dict[str, Any], bool]] = {}

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        if self._guard is not None and not self._db.in_transaction:
            self._guard()
        with sqlite.transaction(self._db) as db:
            yield db

    def _event(self, run_id: str, batch_id: int | None, event: str, detail: str = "") -> None:
        self._db.execute(
            "INSERT INTO events (run_id, batch_id, at, event, detail) VALUES (?, ?, ?, ?, ?)",
            (run_id, batch_id, utc_now(), event, redact(detail)),
        )

    # ------------------------------------------------------------ runs

    def create_run(
        self,
        *,
        kind: str,
        operation: str,
        group_id: str,
        items: Sequence[PlannedItem],
        batch_size: int,
        source: str = "",
        report_dir: str = "",
        endpoint: str = "",
        counts: InputCounts = NO_INPUT,
        details: dict[str, Any] | None = None,
        run_id: str | None = None,
        lookup: bool = False,
    ) -> str:
        """Record a run, its items, and batches of `batch_size` per operation, group and phase.

        A `lookup` run gets no batch: every item to be asked is in the LOOKUP_SLOT.
        """
        run_id = run_id or new_run_id()
        # One pass over the items for the digest and the batches' members, one to insert them.
        digested: list[tuple[int, int, str, str, str, int, bool]] = []
        pending: list[tuple[int, int, str, str]] = []
        rows_in_order, last_row = True, None
        for item_id, (row, iccid, op, group, phase, outcome, _, _) in enumerate(items):
            digested.append((item_id, row, iccid, op, group, phase, outcome is not None))
            if outcome is None:
                pending.append((item_id, phase, op, group))
            if last_row is not None and row < last_row:
                rows_in_order = False
            last_row = row
        integrity = _integrity(kind, operation, group_id, report_dir, digested)
        del digested
        batch_of: list[int | None] = [None] * len(items)
        batches = [] if lookup else _chunk(pending, batch_size, first_id=1)
        if lookup:
            for item_id, *_ in pending:
                batch_of[item_id] = LOOKUP_SLOT
        for batch in batches:
            for item_id in batch.item_ids:
                batch_of[item_id] = batch.batch_id
        del pending
        rows = (
            (run_id, item_id, row, iccid, op, group, phase, batch_of[item_id], outcome,
             reason_code, reason)
            for item_id, (row, iccid, op, group, phase, outcome, reason_code, reason) in enumerate(
                items
            )
        )  # fmt: skip
        with self._tx() as db:
            db.execute(
                "INSERT INTO runs (run_id, kind, operation, group_id, status, source,"
                " report_dir, batch_size, input_rows, valid, invalid, duplicates, endpoint,"
                " details, started_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    kind,
                    operation,
                    group_id,
                    RUNNING,
                    source,
                    report_dir,
                    batch_size,
                    counts.input_rows,
                    counts.valid,
                    counts.invalid,
                    counts.duplicates,
                    endpoint,
                    json.dumps({**(details or {}), INTEGRITY: integrity}),
                    utc_now(),
                ),
            )
            for batch in batches:
                self._insert_batch(run_id, batch, not_before=0.0)
            db.executemany(
                "INSERT INTO items (run_id, item_id, row, iccid, operation, group_id, phase,"
                " batch_id, outcome, reason_code, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            self._event(run_id, None, "created", f"{len(items)} items")
            # Read before the commit, under the write lock: a commit by anyone else between
            # ours and this read would otherwise be taken as part of the run.
            version = self._data_version()
        mark = None if version is None else (version, self._db.total_changes)
        if mark is not None:
            self._created[run_id] = (mark, integrity, rows_in_order)
        return run_id

    def _write_mark(self) -> tuple[int, int] | None:
        """What changes when anything writes to the file: another connection's commit moves
        `data_version`, this connection's writes move `total_changes`. None off SQLite."""
        if not isinstance(self._db, sqlite3.Connection) or self._db.in_transaction:
            return None
        version = self._data_version()
        return None if version is None else (version, self._db.total_changes)

    def _data_version(self) -> int | None:
        if not isinstance(self._db, sqlite3.Connection):
            return None
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def _unchanged_since_created(self, run_id: str, recorded: dict[str, Any]) -> bool:
        """Whether this object created the run and nothing has written to the file since: its
        items are then the ones just digested, and digesting them again (seconds for a million)
        proves nothing. A run read from the file in any other way is checked in full."""
        return self._created_here_and_unchanged(run_id) and self._created[run_id][1] == recorded

    def _created_here_and_unchanged(self, run_id: str) -> bool:
        created = self._created.get(run_id)
        return created is not None and created[0] == self._write_mark()

    def _plain_rows(self, sql: str, params: Sequence[Any]) -> Any:
        """The rows of `sql` as plain tuples, no record per row: a 100,000-item report reads
        twice as fast."""
        cursor = self._db.cursor()
        cursor.row_factory = None
        return cursor.execute(sql, params)

    def verify_run(self, run_id: str) -> None:
        """Check a run's items and batches against what it planned, before anything is sent.

        The items (ids, rows, ICCIDs, operations, groups, phases, and which were never to be sent)
        must match the digest recorded when the run was created; every batch must hold only
        items of its own operation, group and phase. Raises `RunTampered` otherwise: a planted or
        edited journal must never turn into API calls.
        """
        run = self.run(run_id)

        def refuse(why: str) -> str:
            return (
                f"run {run_id}: {why}; nothing was sent. The journal {self.path} was changed by"
                " something other than lf-bulk: check it, or start the job again with a new --home"
            )

        recorded = run.details.get(INTEGRITY)
        if not isinstance(recorded, dict):
            raise RunTampered(refuse("it has no integrity record (not created by lf-bulk)"))
        if self._unchanged_since_created(run_id, recorded):
            return
        rows = self._db.execute(
            "SELECT item_id, row, iccid, operation, group_id, phase, batch_id IS NULL FROM items"
            " WHERE run_id = ? ORDER BY item_id",
            (run_id,),
        )
        actual = _integrity(run.kind, run.operation, run.group_id, run.report_dir, rows)
        if actual != recorded:
            raise RunTampered(refuse("its items differ from the ones it planned"))
        if run.kind != RECONCILE_KIND:
            # A look-up run's items name the group each SIM was found in, one operation for all.
            any_group = run.kind == LOOKUP_KIND
            stray = self._db.execute(
                "SELECT COUNT(*) FROM items WHERE run_id = ? AND (operation != ? OR"
                " (group_id != ? AND NOT ?))",
                (run_id, run.operation, run.group_id, any_group),
            ).fetchone()[0]
            if stray:
                raise RunTampered(
                    refuse(f"{stray} item(s) name another operation or group than the run")
                )
        mismatched = self._db.execute(
            "SELECT b.batch_id FROM batches b WHERE b.run_id = ? AND (EXISTS (SELECT 1 FROM items i"
            " WHERE i.run_id = b.run_id AND i.batch_id = b.batch_id AND (i.operation != b.operation"
            " OR i.group_id != b.group_id OR i.phase != b.phase)) OR NOT EXISTS (SELECT 1 FROM items"
            " i WHERE i.run_id = b.run_id AND i.operation = b.operation AND i.group_id = b.group_id"
            " AND i.phase = b.phase)) ORDER BY b.batch_id LIMIT 1",
            (run_id,),
        ).fetchone()
        if mismatched is not None:
            raise RunTampered(
                refuse(f"batch {mismatched[0]} names another operation or group than its items")
            )

    def _plan_batches(
        self,
        run_id: str,
        batch_size: int,
        *,
        not_before: float,
        state: BatchState = PLANNED,
        sent_at: float | None = None,
    ) -> list[int]:
        """Put every unbatched pending item into new batches; returns the new batch ids."""
        rows = self._db.execute(
            "SELECT item_id, phase, operation, group_id FROM items"
            " WHERE run_id = ? AND batch_id IS NULL AND outcome IS NULL",
            (run_id,),
        ).fetchall()
        pending = [(r["item_id"], r["phase"], r["operation"], r["group_id"]) for r in rows]
        new_ids = []
        for batch in _chunk(pending, batch_size, first_id=self._next_batch_id(run_id)):
            self._insert_batch(run_id, batch, not_before=not_before, state=state, sent_at=sent_at)
            self._db.executemany(
                "UPDATE items SET batch_id = ? WHERE run_id = ? AND item_id = ?",
                ((batch.batch_id, run_id, item_id) for item_id in batch.item_ids),
            )
            new_ids.append(batch.batch_id)
        return new_ids

    def _insert_batch(
        self,
        run_id: str,
        batch: _PlannedBatch,
        *,
        not_before: float,
        state: BatchState = PLANNED,
        sent_at: float | None = None,
    ) -> None:
        self._db.execute(
            "INSERT INTO batches (run_id, batch_id, phase, operation, group_id, state,"
            " not_before, submitted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                batch.batch_id,
                batch.phase,
                batch.operation,
                batch.group_id,
                state,
                not_before,
                sent_at,
            ),
        )

    def _next_batch_id(self, run_id: str) -> int:
        row = self._db.execute(
            "SELECT COALESCE(MAX(batch_id), 0) + 1 FROM batches WHERE run_id = ?", (run_id,)
        ).fetchone()
        return int(row[0])

    def run(self, run_id: str) -> RunRecord:
        row = self._db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFound(f"no run {run_id!r} in the journal {self.path} (see `runs list`)")
        return _run_record(row)

    def runs(self) -> list[RunRecord]:
        rows = self._db.execute("SELECT * FROM runs ORDER BY started_at DESC, run_id DESC")
        return [_run_record(r) for r in rows]

    def newest_unfinished(self) -> RunRecord | None:
        """The newest run that `runs resume` can continue (not finished, failed or cancelled)."""
        terminal = sorted(TERMINAL_STATUSES)
        row = self._db.execute(
            f"SELECT * FROM runs WHERE status NOT IN ({','.join('?' * len(terminal))})"
            " ORDER BY started_at DESC, run_id DESC LIMIT 1",
            terminal,
        ).fetchone()
        return _run_record(row) if row else None

    def set_run_status(
        self, run_id: str, status: RunStatus, exit_code: int | None, *, reason: str | None = None
    ) -> None:
        """Set the status; `reason` (why a run stopped, failed or was cancelled) goes to details."""
        finished_at = utc_now() if status in TERMINAL_STATUSES else None
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET status = ?, exit_code = ?, finished_at = ? WHERE run_id = ?",
                (status, exit_code, finished_at, run_id),
            )
            if reason is not None:
                self._update_details(run_id, stop_reason=reason)
            self._event(
                run_id, None, status, f"exit {exit_code}" + (f": {reason}" if reason else "")
            )

    def _update_details(self, run_id: str, **values: Any) -> None:
        row = self._db.execute("SELECT details FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        details = json.loads(row[0] or "{}") if row else {}
        if not isinstance(details, dict):
            details = {}
        details.update(values)
        self._db.execute(
            "UPDATE runs SET details = ? WHERE run_id = ?", (json.dumps(details), run_id)
        )

    def record_async_duration(self, run_id: str, seconds: float, *, keep: int = 20) -> None:
        """Remember how long one asynchronous operation took (the window for lost answers)."""
        with self._tx():
            learned = [*self.async_durations(run_id), round(float(seconds), 3)][-keep:]
            self._update_details(run_id, async_seconds=learned)

    def async_durations(self, run_id: str) -> list[float]:
        """Learned durations of this run, else of the newest run that learned some."""
        rows = self._db.execute(
            "SELECT run_id, details FROM runs WHERE run_id = ? OR details LIKE '%async_seconds%'"
            " ORDER BY run_id = ? DESC, started_at DESC LIMIT 2",
            (run_id, run_id),
        ).fetchall()
        for row in rows:
            try:
                details = json.loads(row[1] or "{}")
                values = details.get("async_seconds", []) if isinstance(details, dict) else []
                learned = [float(v) for v in values if isinstance(v, int | float) and v >= 0]
            except (TypeError, ValueError):
                learned = []
            if learned:
                return learned
        return []

    def cancel_run(self, run_id: str, reason: str, exit_code: int) -> None:
        """Stop a run for good: unsent items fail as CANCELLED; sent ones stay pending."""
        with self._tx() as db:
            db.execute(
                "UPDATE items SET outcome = ?, reason_code = 'CANCELLED',"
                " reason = 'the run was cancelled before this SIM was sent'"
                " WHERE run_id = ? AND outcome IS NULL AND (batch_id IS NULL OR batch_id IN"
                " (SELECT batch_id FROM batches WHERE run_id = ? AND state = ?))",
                (OutcomeCode.FAILED, run_id, run_id, PLANNED),
            )
            db.execute(
                "UPDATE items SET reason_code = 'CANCELLED', reason = 'the run was cancelled"
                " after this SIM was sent; its result was not read (see `lf-bulk ops status`"
                " with the request id, or the group)' WHERE run_id = ? AND outcome IS NULL",
                (run_id,),
            )
            db.execute(
                "UPDATE batches SET state = ? WHERE run_id = ? AND state IN (?, ?, ?, ?)",
                (CANCELLED_BATCH, run_id, PLANNED, SENDING, SUBMITTED, ANSWER_LOST),
            )
        self.set_run_status(run_id, CANCELLED, exit_code, reason=reason)

    def failure_count(self, run_id: str, reason_codes: Iterable[str]) -> int:
        codes = list(reason_codes)
        (count,) = self._db.execute(
            f"SELECT COUNT(*) FROM items WHERE run_id = ? AND outcome = ?"
            f" AND reason_code IN ({','.join('?' * len(codes))})",
            [run_id, OutcomeCode.FAILED, *codes],
        ).fetchone()
        return int(count)

    # ------------------------------------------------------------ batches

    def batches(self, run_id: str, states: Iterable[BatchState] | None = None) -> list[BatchRecord]:
        query = "SELECT * FROM batches WHERE run_id = ?"
        args: list[Any] = [run_id]
        order = " ORDER BY batch_id"
        if states is not None:
            wanted = list(states)
            query += f" AND state IN ({','.join('?' * len(wanted))})"
            args += wanted
            # Sorting the few in these states beats walking every batch of the run in id order.
            order = " ORDER BY +batch_id"
        rows = self._db.execute(query + order, args).fetchall()
        return [_batch_record(r) for r in rows]

    # The engine's questions of each tick, each answered from a partial index of the batches in
    # one state (the state is spelled in the SQL so that SQLite can use it): their cost is the
    # batches they return, whatever the number of open batches.

    def ready_to_send(self, run_id: str, phase: int, now: float, limit: int) -> list[BatchRecord]:
        """Up to `limit` planned batches of `phase` due by `now`: the earliest due first, then
        in batch order."""
        rows = self._db.execute(
            "SELECT * FROM batches WHERE run_id = ? AND state = 'planned' AND phase = ?"
            " AND not_before <= ? ORDER BY not_before, batch_id LIMIT ?",
            (run_id, phase, now, limit),
        ).fetchall()
        return [_batch_record(r) for r in rows]

    def polls_due(self, run_id: str, now: float, limit: int) -> list[BatchRecord]:
        """Up to `limit` submitted batches whose next poll is due by `now`, the earliest first."""
        unscheduled = self._db.execute(
            "SELECT * FROM batches WHERE run_id = ? AND state = 'submitted'"
            " AND next_poll_at IS NULL ORDER BY +batch_id LIMIT ?",
            (run_id, limit),
        ).fetchall()
        rows = self._db.execute(
            "SELECT * FROM batches WHERE run_id = ? AND state = 'submitted'"
            " AND next_poll_at <= ? ORDER BY next_poll_at LIMIT ?",
            (run_id, now, limit),
        ).fetchall()
        return [_batch_record(r) for r in [*unscheduled, *rows][:limit]]

    def lost_due(self, run_id: str, lost_by: float) -> list[BatchRecord]:
        """The answer-lost batches whose loss was seen by `lost_by`, the earliest first."""
        rows = self._db.execute(
            "SELECT * FROM batches WHERE run_id = ? AND state = 'answer_lost'"
            " AND IFNULL(submitted_at, 0) <= ? ORDER BY submitted_at, batch_id",
            (run_id, lost_by),
        ).fetchall()
        return [_batch_record(r) for r in rows]

    def has_planned(self, run_id: str, phase: int) -> bool:
        """Whether a batch of `phase` is still to be sent (due or not)."""
        row = self._db.execute(
            "SELECT 1 FROM batches WHERE run_id = ? AND state = 'planned' AND phase = ? LIMIT 1",
            (run_id, phase),
        ).fetchone()
        return row is not None

    def next_due(self, run_id: str, phase: int) -> tuple[float | None, float | None, float | None]:
        """When the next batch of each kind falls due: the earliest `not_before` of a planned
        batch of `phase`, `next_poll_at` of a submitted one (0 when one has none) and
        `submitted_at` of an answer-lost one (None: no such batch)."""
        send = self._db.execute(
            "SELECT MIN(not_before) FROM batches WHERE run_id = ? AND state = 'planned'"
            " AND phase = ?",
            (run_id, phase),
        ).fetchone()[0]
        poll = self._db.execute(
            "SELECT MIN(next_poll_at) FROM batches WHERE run_id = ? AND state = 'submitted'",
            (run_id,),
        ).fetchone()[0]
        if self._db.execute(
            "SELECT 1 FROM batches WHERE run_id = ? AND state = 'submitted'"
            " AND next_poll_at IS NULL LIMIT 1",
            (run_id,),
        ).fetchone():
            poll = 0.0
        lost = self._db.execute(
            "SELECT MIN(IFNULL(submitted_at, 0)) FROM batches WHERE run_id = ?"
            " AND state = 'answer_lost'",
            (run_id,),
        ).fetchone()[0]
        return send, poll, lost

    def batch_attempts(self, run_id: str, batch_id: int) -> dict[str, int]:
        """Pending ICCIDs of a batch with how often each has been sent (in any batch)."""
        rows = self._db.execute(
            "SELECT iccid, attempts FROM items"
            " WHERE run_id = ? AND batch_id = ? AND outcome IS NULL ORDER BY item_id",
            (run_id, batch_id),
        )
        return {r[0]: r[1] for r in rows}

    def pending_in_batch(self, run_id: str, batch_id: int) -> list[tuple[str, int, int, str]]:
        """The pending items of a batch in item order, each (ICCID, item id, sends so far in any
        batch, reason code): what `batch_attempts`, `lost_sends` and `close_batch` each read,
        in one query, for the engine to close a batch on."""
        rows = self._plain_rows(
            "SELECT iccid, item_id, attempts, reason_code FROM items"
            " WHERE run_id = ? AND batch_id = ? AND outcome IS NULL ORDER BY item_id",
            (run_id, batch_id),
        ).fetchall()
        return [tuple(r) for r in rows]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction around several of this object's writes (they join it): one commit
        for a batch's state change and what the engine learned from it."""
        with self._tx():
            yield

    def _pending_item_ids(self, run_id: str, batch_id: int) -> dict[str, list[int]]:
        """The pending items of a batch: their ids per ICCID."""
        ids: dict[str, list[int]] = {}
        for iccid, item_id in self._db.execute(
            "SELECT iccid, item_id FROM items WHERE run_id = ? AND batch_id = ?"
            " AND outcome IS NULL ORDER BY item_id",
            (run_id, batch_id),
        ):
            ids.setdefault(iccid, []).append(item_id)
        return ids

    def lost_sends(self, run_id: str, batch_id: int) -> set[str]:
        """Pending ICCIDs of a batch whose previous send's answer was lost."""
        rows = self._db.execute(
            "SELECT iccid FROM items WHERE run_id = ? AND batch_id = ? AND outcome IS NULL"
            " AND reason_code = ?",
            (run_id, batch_id, PENDING_LOST_MARK),
        )
        return {r[0] for r in rows}

    def mark_sending(self, run_id: str, batch_id: int, *, sent_at: float = 0.0) -> None:
        """Committed before the call: from here on the server may have the batch."""
        with self._tx() as db:
            db.execute(
                "UPDATE batches SET state = ?, sends = sends + 1, submitted_at = ?"
                " WHERE run_id = ? AND batch_id = ?",
                (SENDING, sent_at, run_id, batch_id),
            )
            db.execute(
                "UPDATE items SET attempts = attempts + 1 WHERE run_id = ? AND batch_id = ?",
                (run_id, batch_id),
            )
            self._event(run_id, batch_id, SENDING)

    def mark_submitted(
        self, run_id: str, batch_id: int, request_id: str, *, submitted_at: float, first_poll: float
    ) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE batches SET state = ?, request_id = ?, submitted_at = ?, next_poll_at = ?"
                " WHERE run_id = ? AND batch_id = ?",
                (SUBMITTED, request_id, submitted_at, first_poll, run_id, batch_id),
            )
            db.execute(
                "UPDATE items SET request_id = ? WHERE run_id = ? AND batch_id = ?",
                (request_id, run_id, batch_id),
            )
            self._event(run_id, batch_id, SUBMITTED, request_id)

    def mark_answer_lost(self, run_id: str, batch_id: int, error: str, *, lost_at: float) -> None:
        """The send may have taken effect but its answer was lost: settle it, never re-send it.

        `lost_at` is when the loss was seen. The server can have accepted the batch at any moment
        up to then (after transport retries the send refused, or after a crash), so the
        asynchronous window is counted from it, never from when the send began.
        """
        with self._tx() as db:
            db.execute(
                "UPDATE batches SET state = ?, error = ?, submitted_at = MAX(COALESCE(submitted_at,"
                " 0), ?) WHERE run_id = ? AND batch_id = ?",
                (ANSWER_LOST, error, lost_at, run_id, batch_id),
            )
            self._event(run_id, batch_id, ANSWER_LOST, error)

    def mark_unsent(self, run_id: str, batch_id: int, error: str) -> None:
        """The send failed in a way that proves nothing was accepted (e.g. a business error)."""
        with self._tx() as db:
            db.execute(
                "UPDATE batches SET state = ?, error = ? WHERE run_id = ? AND batch_id = ?",
                (PLANNED, redact(error), run_id, batch_id),
            )
            self._event(run_id, batch_id, "unsent", error)

    def split_batch(self, run_id: str, batch_id: int, size: int) -> list[int]:
        """Re-plan a batch the server found too large into batches of `size`."""
        with self._tx() as db:
            batch = db.execute(
                "SELECT not_before FROM batches WHERE run_id = ? AND batch_id = ?",
                (run_id, batch_id),
            ).fetchone()
            db.execute(
                "UPDATE batches SET state = ? WHERE run_id = ? AND batch_id = ?",
                (SPLIT, run_id, batch_id),
            )
            db.execute(
                "UPDATE items SET batch_id = NULL WHERE run_id = ? AND batch_id = ?"
                " AND outcome IS NULL",
                (run_id, batch_id),
            )
            new_ids = self._plan_batches(run_id, size, not_before=batch["not_before"])
            self._event(run_id, batch_id, SPLIT, f"into {len(new_ids)} of at most {size}")
            return new_ids

    def defer_first_polls(self, run_id: str, after: float) -> None:
        """Submitted batches never polled yet are first polled no sooner than `after` seconds
        after their send (one due at once, next_poll_at NULL, stays so)."""
        with self._tx() as db:
            db.execute(
                "UPDATE batches SET next_poll_at = submitted_at + ? WHERE run_id = ?"
                " AND state = 'submitted' AND polls = 0 AND submitted_at IS NOT NULL"
                " AND next_poll_at < submitted_at + ?",
                (after, run_id, after),
            )

    def schedule_poll(self, run_id: str, batch_id: int, next_poll_at: float, status: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE batches SET polls = polls + 1, next_poll_at = ?, api_status = ?"
                " WHERE run_id = ? AND batch_id = ?",
                (next_poll_at, status, run_id, batch_id),
            )

    def close_batch(
        self,
        run_id: str,
        batch_id: int,
        *,
        state: BatchState,
        api_status: str,
        outcomes: dict[str, Outcome],
        retry: Sequence[str] = (),
        retry_after: float = 0.0,
        max_batch: int = DEFAULT_BATCH_SIZE,
        error: str = "",
        retry_mark: str | None = None,
        resettle: Sequence[str] = (),
        resettle_from: float = 0.0,
        pending_ids: Mapping[str, list[int]] | None = None,
    ) -> None:
        """Record final outcomes for a batch; `retry` ICCIDs go into new planned batches (their
        pending reason_code set to `retry_mark` when given), `resettle` ICCIDs (a lost send still
        running on the server) into new answer-lost batches counted from `resettle_from`.
        `pending_ids`: the batch's pending item ids per ICCID when the caller has just read them
        (`pending_in_batch`); every update still requires its item to be pending in the batch."""
        with self._tx() as db:
            db.execute(
                "UPDATE batches SET state = ?, api_status = ?, polls = polls + 1, error = ?"
                " WHERE run_id = ? AND batch_id = ?",
                (state, api_status, redact(error), run_id, batch_id),
            )
            # Each item is updated by its key: matching ICCIDs within the batch instead costs
            # a walk of the batch per ICCID (0.25 s for a batch of 500).
            ids = self._pending_item_ids(run_id, batch_id) if pending_ids is None else pending_ids
            one = _the_one_outcome(outcomes, ids)
            if one is not None:  # the usual batch: one outcome for every pending item
                db.execute(
                    "UPDATE items SET outcome = ?, reason_code = ?, reason = ?"
                    " WHERE run_id = ? AND batch_id = ? AND outcome IS NULL",
                    (one.outcome, one.reason_code, redact(one.reason), run_id, batch_id),
                )
            else:
                self._record_outcomes(run_id, batch_id, outcomes, ids)
            if resettle:
                db.executemany(
                    "UPDATE items SET batch_id = NULL, reason_code = ? WHERE run_id = ?"
                    " AND item_id = ? AND batch_id = ? AND outcome IS NULL",
                    (
                        (PENDING_LOST_MARK, run_id, item_id, batch_id)
                        for iccid in resettle
                        for item_id in ids.get(iccid, ())
                    ),
                )
                self._plan_batches(
                    run_id, max_batch, not_before=0.0, state=ANSWER_LOST, sent_at=resettle_from
                )
            if retry:
                if retry_mark is None:
                    db.executemany(
                        "UPDATE items SET batch_id = NULL WHERE run_id = ? AND item_id = ?"
                        " AND batch_id = ? AND outcome IS NULL",
                        (
                            (run_id, item_id, batch_id)
                            for iccid in retry
                            for item_id in ids.get(iccid, ())
                        ),
                    )
                else:
                    db.executemany(
                        "UPDATE items SET batch_id = NULL, reason_code = ? WHERE run_id = ?"
                        " AND item_id = ? AND batch_id = ? AND outcome IS NULL",
                        (
                            (retry_mark, run_id, item_id, batch_id)
                            for iccid in retry
                            for item_id in ids.get(iccid, ())
                        ),
                    )
                self._plan_batches(run_id, max_batch, not_before=retry_after)
            self._event(
                run_id,
                batch_id,
                state,
                f"{api_status}: {len(outcomes)} final, {len(retry)} retry,"
                f" {len(resettle)} to settle again",
            )

    def _record_outcomes(
        self,
        run_id: str,
        batch_id: int,
        outcomes: Mapping[str, Outcome],
        ids: Mapping[str, list[int]],
    ) -> None:
        # One statement per distinct outcome (a batch has a handful), its items' ids passed
        # as one JSON list: a statement per item cost 30 us each, 15 ms per batch of 500.
        redacted: dict[str, str] = {}
        alike: dict[tuple[str, str, str], list[int]] = {}
        for iccid, o in outcomes.items():
            item_ids = ids.get(iccid)
            if not item_ids:
                continue
            reason = redacted.get(o.reason)
            if reason is None:
                reason = redacted[o.reason] = redact(o.reason)
            alike.setdefault((o.outcome, o.reason_code, reason), []).extend(item_ids)
        for (outcome, reason_code, reason), item_ids in alike.items():
            self._db.execute(
                "UPDATE items SET outcome = ?, reason_code = ?, reason = ?"
                " WHERE run_id = ? AND batch_id = ? AND outcome IS NULL"
                " AND item_id IN (SELECT value FROM json_each(?))",
                (outcome, reason_code, reason, run_id, batch_id, json.dumps(item_ids)),
            )

    def requeue_failed(self, run_id: str, reason_codes: Iterable[str], batch_size: int) -> int:
        """Make retryable failures pending again in new batches (`runs retry`)."""
        codes = list(reason_codes)
        with self._tx() as db:
            cursor = db.execute(
                f"UPDATE items SET outcome = NULL, batch_id = NULL, request_id = ''"
                f" WHERE run_id = ? AND outcome = ?"
                f" AND reason_code IN ({','.join('?' * len(codes))})",
                [run_id, OutcomeCode.FAILED, *codes],
            )
            self._plan_batches(run_id, batch_size, not_before=0.0)
            db.execute(
                "UPDATE runs SET status = ?, finished_at = NULL WHERE run_id = ?",
                (RUNNING, run_id),
            )
            self._event(run_id, None, "retry", f"{cursor.rowcount} items")
            return cursor.rowcount

    # ------------------------------------------------------------ items

    def items(self, run_id: str) -> list[ItemRecord]:
        rows = self._plain_rows(
            f"SELECT {', '.join(ITEM_COLUMNS)} FROM items WHERE run_id = ? ORDER BY row, item_id",
            (run_id,),
        )
        return [ItemRecord(*r) for r in rows]

    def rows_follow_item_ids(self, run_id: str) -> bool:
        """Whether the report order (row, then item id) is the item id order, as in every run
        made from an input file; then `items_from` reads the report in order, a piece at a time."""
        if self._created_here_and_unchanged(run_id):
            return self._created[run_id][2]  # seen when the items were planned
        row = self._db.execute(
            "SELECT 1 FROM (SELECT row, LAG(row) OVER (ORDER BY item_id) AS before FROM items"
            " WHERE run_id = ?) WHERE before > row LIMIT 1",
            (run_id,),
        ).fetchone()
        return row is None

    def items_from(self, run_id: str, item_id: int) -> Iterator[ItemRecord]:
        """The items from `item_id` on, in id order, read as they are taken (stop any time)."""
        rows = self._plain_rows(
            f"SELECT {', '.join(ITEM_COLUMNS)} FROM items WHERE run_id = ? AND item_id >= ?"
            " ORDER BY item_id",
            (run_id, item_id),
        )
        try:
            for r in rows:
                yield ItemRecord(*r)
        finally:
            rows.close()

    def final_report_rows_from(
        self, run_id: str, item_id: int
    ) -> list[tuple[int, str, str, str, str, str]]:
        """The report rows (row, ICCID, outcome, reason code, reason, request id) of the items
        from `item_id` on, in id order, up to the first one still pending (not included): what
        a streamed report adds after a batch, read as plain tuples (no record per item)."""
        rows = self._plain_rows(
            "SELECT row, iccid, outcome, reason_code, reason, request_id FROM items"
            " WHERE run_id = ? AND item_id >= ? ORDER BY item_id",
            (run_id, item_id),
        )
        final = []
        try:
            for r in rows:
                if r[2] is None:
                    break
                final.append(r)
        finally:
            rows.close()
        return final

    def outcome_counts(self, run_id: str) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT COALESCE(outcome, ?) AS o, COUNT(*) FROM items WHERE run_id = ? GROUP BY o",
            (PENDING, run_id),
        )
        return {r[0]: r[1] for r in rows}

    def first_pending_phase(self, run_id: str) -> int | None:
        """The lowest phase with a pending item (None: nothing pending), read from an index."""
        row = self._db.execute(
            "SELECT MIN(phase) FROM items WHERE run_id = ? AND outcome IS NULL", (run_id,)
        ).fetchone()
        return None if row[0] is None else int(row[0])

    # ------------------------------------------------------------ look-up calls

    def lookup_items(self, run_id: str) -> list[ItemRecord]:
        """The items of a look-up run still to be asked (pending, not invalid or duplicate)."""
        rows = self._plain_rows(
            f"SELECT {', '.join(ITEM_COLUMNS)} FROM items WHERE run_id = ? AND outcome IS NULL"
            " AND batch_id IS NOT NULL ORDER BY item_id",
            (run_id,),
        )
        return [ItemRecord(*r) for r in rows]

    def calls(self, run_id: str) -> dict[int, list[CallRecord]]:
        """Every recorded call of a look-up run, per item, in the order they were made."""
        rows = self._db.execute(
            "SELECT item_id, seq, call, state, request, answer, fetched_at, source FROM answers"
            " WHERE run_id = ? ORDER BY item_id, seq",
            (run_id,),
        )
        calls: dict[int, list[CallRecord]] = {}
        for r in rows:
            calls.setdefault(r[0], []).append(CallRecord(*r))
        return calls

    def record_answer(
        self,
        run_id: str,
        item_id: int,
        seq: int,
        call: str,
        answer: str,
        *,
        fetched_at: float,
        source: str,
        request: str = "{}",
    ) -> None:
        """Record the answer to call `seq` of an item (a `sending` call of that seq gets it)."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO answers (run_id, item_id, seq, call, state, request, answer,"
                " fetched_at, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id,"
                " item_id, seq) DO UPDATE SET state = excluded.state, answer = excluded.answer,"
                " fetched_at = excluded.fetched_at, source = excluded.source",
                (run_id, item_id, seq, call, CallState.ANSWERED, request, answer, fetched_at,
                 source),
            )  # fmt: skip

    def mark_call_sending(
        self, run_id: str, item_id: int, seq: int, call: str, request: str
    ) -> None:
        """Committed before a mutating call goes out: from here on the server may have it."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO answers (run_id, item_id, seq, call, state, request)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, item_id, seq, call, CallState.SENDING, request),
            )
            self._event(run_id, None, f"{call} sending", f"item {item_id}")

    def forget_unsent_call(self, run_id: str, item_id: int, seq: int) -> None:
        """A `sending` call whose failure proves the server did not act: as if never made."""
        with self._tx() as db:
            db.execute(
                "DELETE FROM answers WHERE run_id = ? AND item_id = ? AND seq = ? AND state = ?",
                (run_id, item_id, seq, CallState.SENDING),
            )

    def set_item_outcome(
        self, run_id: str, item_id: int, outcome: str | None, reason_code: str, reason: str
    ) -> None:
        """An item's final outcome, or (outcome None) why it is still pending."""
        with self._tx() as db:
            db.execute(
                "UPDATE items SET outcome = ?, reason_code = ?, reason = ?, attempts = ("
                "SELECT COUNT(*) FROM answers WHERE run_id = ? AND item_id = ? AND source != ?)"
                " WHERE run_id = ? AND item_id = ? AND outcome IS NULL",
                (outcome, reason_code, redact(reason), run_id, item_id, "cache", run_id, item_id),
            )

    def call_counts(self, run_id: str) -> dict[str, int]:
        """Calls of a look-up run by how they were answered: `<call> <source>`, or `<call>
        sending` for a mutating call whose answer is not recorded."""
        rows = self._db.execute(
            "SELECT call || ' ' || CASE WHEN state = ? THEN state ELSE source END, COUNT(*)"
            " FROM answers WHERE run_id = ? GROUP BY 1 ORDER BY 1",
            (CallState.SENDING, run_id),
        )
        return {r[0]: r[1] for r in rows}

    def cancel_lookup_run(self, run_id: str, reason: str, exit_code: int) -> int:
        """Stop a look-up run for good: items never asked fail as CANCELLED; an item whose
        mutating call may have reached the server stays pending. Returns the items failed."""
        with self._tx() as db:
            cursor = db.execute(
                "UPDATE items SET outcome = ?, reason_code = 'CANCELLED',"
                " reason = 'the run was cancelled before this SIM was looked up'"
                " WHERE run_id = ? AND outcome IS NULL AND NOT EXISTS (SELECT 1 FROM answers a"
                " WHERE a.run_id = items.run_id AND a.item_id = items.item_id AND a.state = ?)",
                (OutcomeCode.FAILED, run_id, CallState.SENDING),
            )
            db.execute(
                "UPDATE items SET reason_code = 'CANCELLED', reason = 'the run was cancelled"
                " while a change to this SIM was being sent; its result was not read'"
                " WHERE run_id = ? AND outcome IS NULL",
                (run_id,),
            )
        self.set_run_status(run_id, CANCELLED, exit_code, reason=reason)
        return int(cursor.rowcount)


INTEGRITY = "integrity"
RECONCILE_KIND = "reconcile"
LOOKUP_KIND = "lookup"


def _integrity(
    kind: str, operation: str, group_id: str, report_dir: str, items: Iterable[Sequence[object]]
) -> dict[str, Any]:
    """The digest of what a run planned: its kind, operation, group and report folder, and per
    item (in id order) the id, row, ICCID, operation, group, phase, and whether it was never to
    be sent.

    The last one is stable for the run's life: an item to be sent always belongs to some batch
    (re-planning moves it in the same transaction), and one never to be sent never does.
    """
    digest = hashlib.sha256(json.dumps([kind, str(operation), group_id, report_dir]).encode())
    count = 0
    text = _json_text
    lines: list[str] = []
    # The end of a line (operation, group, phase, never sent) is shared by nearly every item of
    # a run: written once per distinct value, not once per item (a million-item run is digested
    # when planned and again before it is driven by another process).
    tails: dict[tuple[str, str, int, bool], str] = {}
    for item_id, row, iccid, item_operation, item_group, phase, unsent in items:
        if (
            type(item_id) is int
            and type(row) is int
            and type(iccid) is str
            and type(phase) is int
            and type(item_group) is str
            and isinstance(item_operation, str)  # an Operation when planned, str when read
        ):
            key = (item_operation, item_group, phase, bool(unsent))
            tail = tails.get(key)
            if tail is None:
                tail = tails[key] = _line_tail(str(item_operation), item_group, phase, unsent)
            # What json.dumps writes for these types, without its per-call overhead.
            lines.append(f"\n[{item_id}, {row}, {text(iccid)}, {tail}")
            count += 1
            if len(lines) >= 10_000:
                digest.update("".join(lines).encode())
                lines.clear()
            continue
        # anything else (a journal edited by hand): exactly as json.dumps has it
        line = [item_id, row, iccid, str(item_operation), item_group, phase, bool(unsent)]
        lines.append("\n" + json.dumps(line))
        count += 1
    digest.update("".join(lines).encode())
    return {"items": count, "sha256": digest.hexdigest()}


def _the_one_outcome(
    outcomes: Mapping[str, Outcome], pending: Mapping[str, list[int]]
) -> Outcome | None:
    """The outcome given to every pending ICCID of a batch, when they all get the same one (as
    one object: the engine shares it); None otherwise."""
    if not outcomes or len(outcomes) != len(pending) or outcomes.keys() != pending.keys():
        return None
    first = next(iter(outcomes.values()))
    if any(o is not first for o in outcomes.values()):
        return None
    return first


def _line_tail(operation: str, group: str, phase: int, unsent: object) -> str:
    """The end of an item's digest line from its operation on, as json.dumps writes it."""
    state = "true" if unsent else "false"
    return f"{_json_text(operation)}, {_json_text(group)}, {phase}, {state}]"


def _create_schema(db: sqlite3.Connection) -> None:
    for statement in SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)


def _is_v0_1_0_journal(db: sqlite3.Connection) -> bool:
    expected = {
        "runs": {"run_id", "kind", "operation", "group_id", "status", "details", "batch_size"},
        "batches": {"run_id", "batch_id", "phase", "operation", "group_id", "state", "request_id"},
        "items": {"run_id", "item_id", "row", "iccid", "operation", "group_id", "batch_id"},
        "events": {"run_id", "event"},
    }
    return all(columns <= sqlite.table_columns(db, t) for t, columns in expected.items())


def _migrate_0_to_1(db: sqlite3.Connection) -> None:
    """0.1.0 files: the schema as it was (plus anything missing), and each run's digest."""
    _create_schema(db)
    for run_id, kind, operation, group_id, report_dir, details in db.execute(
        "SELECT run_id, kind, operation, group_id, report_dir, details FROM runs"
    ).fetchall():
        rows = db.execute(
            "SELECT item_id, row, iccid, operation, group_id, phase, batch_id IS NULL FROM items"
            " WHERE run_id = ? ORDER BY item_id",
            (run_id,),
        )
        recorded = json.loads(details or "{}")
        recorded[INTEGRITY] = _integrity(kind, operation, group_id, report_dir, rows)
        db.execute("UPDATE runs SET details = ? WHERE run_id = ?", (json.dumps(recorded), run_id))


def _migrate_1_to_2(db: sqlite3.Connection) -> None:
    """Indexes by batch state, by batch in item order, and of pending items by phase."""
    db.execute("DROP INDEX IF EXISTS items_by_batch")
    _create_schema(db)


def _migrate_2_to_3(db: sqlite3.Connection) -> None:
    """The answers table of look-up runs."""
    _create_schema(db)


def _migrate_3_to_4(db: sqlite3.Connection) -> None:
    """Indexes of the open batches by due time: planned, submitted, answer lost."""
    _create_schema(db)


JOURNAL_FILE = sqlite.FileKind(
    name="journal",
    application_id=APPLICATION_ID,
    version=SCHEMA_VERSION,
    create=_create_schema,
    migrations=(_migrate_0_to_1, _migrate_1_to_2, _migrate_2_to_3, _migrate_3_to_4),
    is_legacy=_is_v0_1_0_journal,
)


@dataclass(frozen=True)
class _PlannedBatch:
    batch_id: int
    phase: int
    operation: str
    group_id: str
    item_ids: list[int]


def _chunk(
    pending: Sequence[tuple[int, int, str, str]], batch_size: int, *, first_id: int
) -> list[_PlannedBatch]:
    """Batches of at most `batch_size` items of one phase, operation and group, in item order."""
    by_key: dict[tuple[int, str, str], list[int]] = {}
    for item_id, phase, operation, group_id in pending:
        by_key.setdefault((phase, operation, group_id), []).append(item_id)
    batches: list[_PlannedBatch] = []
    for key in sorted(by_key):  # a run has a handful of keys: sorting them, not the items
        phase, operation, group_id = key
        item_ids = by_key[key]
        item_ids.sort()  # in id order already when planned: a pass over the list
        for start in range(0, len(item_ids), batch_size):
            chunk = item_ids[start : start + batch_size]
            batches.append(
                _PlannedBatch(first_id + len(batches), phase, operation, group_id, chunk)
            )
    return batches


def _run_record(row: sqlite3.Row) -> RunRecord:
    data = dict(row)
    try:
        details = json.loads(data["details"] or "{}")
    except ValueError:
        details = None  # not written by lf-bulk: verify_run refuses the run
    data["details"] = details if isinstance(details, dict) else {}
    return RunRecord(**data)


def _batch_record(row: sqlite3.Row) -> BatchRecord:
    data = dict(row)
    data.pop("api_status")
    data.pop("error")
    return BatchRecord(**data)
