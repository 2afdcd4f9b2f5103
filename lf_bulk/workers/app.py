"""The Procrastinate app over the shared PostgreSQL store: one task runs any enqueued command.

- `lock` = the partner's name: one partner's jobs run one at a time, whichever worker takes
  them, so the partner's rate, in-flight limit and quota are spent by one driver at a time;
- `queueing_lock` = the command's digest: a second trigger of a job still waiting is refused;
- a job's run id is chosen when it is enqueued: the job starts that run, or (tried again) resumes
  it from the journal, never a second run;
- the day's quota spent (`QuotaExhausted`): the job is tried again after the next 00:00 UTC;
- a run that ends not finished for any other reason fails its job (`RunStopped`): the job list
  shows it, and `lf-bulk runs resume` continues the run;
- a worker killed mid-job stops sending heartbeats: every worker sweeps such stalled jobs back to
  `todo` and one of them resumes the run, the journal telling what the server already took.

Imports procrastinate and psycopg: only the worker commands load this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import procrastinate
import psycopg
from procrastinate import exceptions as pq_exceptions
from procrastinate.retry import BaseRetryStrategy, RetryDecision

from lf_bulk import quota, runs
from lf_bulk import reconcile as rc
from lf_bulk.engine import EngineOptions
from lf_bulk.errors import InvalidSetting, QuotaExhausted, RunLocked, RunNotFound, RunStopped
from lf_bulk.exitcodes import ExitCode
from lf_bulk.journal import FINISHED, TERMINAL_STATUSES, Journal
from lf_bulk.models import Operation
from lf_bulk.quota import QuotaSource
from lf_bulk.settings import Settings, open_session
from lf_bulk.store import opened_store
from lf_bulk.workers import partners
from lf_bulk.workers.spec import ROWS_LOOKUPS, JobCommand, JobSpec, partner_lock

log = logging.getLogger(__name__)

TASK_NAME = "lf_bulk.run_command"
RUNNER = "lf_bulk_runner"
# After 00:00 UTC the server's count is new; a minute later our clocks surely agree.
QUOTA_MARGIN = timedelta(minutes=1)
# Another driver holds the run (a worker thought stalled is still alive): look again later.
LOCKED_RETRY = timedelta(seconds=30)
LOCKED_ATTEMPTS = 20
# Procrastinate runs a lock's waiting jobs by priority, then id: a job waiting for the next day's
# quota goes below the default (0), so that the jobs queued after it are not held back.
QUOTA_WAIT_PRIORITY = -1
# A worker whose heartbeat is this many intervals old is dead; its jobs go back to `todo`.
STALLED_HEARTBEATS = 3
DEFAULT_HEARTBEAT = 10.0
SCHEMA_LOCK = 0x1F_B0_16  # advisory lock id: two workers applying the schema at once wait
SCHEMA_MARKER = "procrastinate_jobs"
EXPORT_NAME = "orders.xlsx"  # an `orders export` job's workbook, in its report folder


# Procrastinate names a job in its log lines by its call, arguments included: a job's spec
# holds every ICCID of its input, customer data that has no place in a log.
_CALL = re.compile(
    rf"({re.escape(TASK_NAME)}\[\d+\])\(.*\)(?= ended with status| \(started|$)", re.S
)


class HideJobArguments(logging.Filter):
    """Shortens `lf_bulk.run_command[7](spec={...})` to `lf_bulk.run_command[7]` in Procrastinate's
    log lines, and drops the arguments from the records' extra fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and TASK_NAME in record.msg:
            record.msg = _CALL.sub(r"\1", record.msg)
        job = getattr(record, "job", None)
        if isinstance(job, dict):
            record.job = {k: v for k, v in job.items() if k not in ("task_kwargs", "call_string")}
        return True


def hide_job_arguments() -> None:
    target = logging.getLogger("procrastinate")
    if not any(isinstance(f, HideJobArguments) for f in target.filters):
        target.addFilter(HideJobArguments())


class JobRetries(BaseRetryStrategy):
    """Quota spent: after the next UTC midnight; run locked by a live driver: shortly; else no
    retry (the job is `failed`, its run in the journal for `runs resume`)."""

    def get_retry_decision(
        self, *, exception: BaseException, job: procrastinate.jobs.Job
    ) -> RetryDecision | None:
        if isinstance(exception, QuotaExhausted):
            # Below the default priority: a job waiting for tomorrow must not hold back the
            # partner's later jobs (a reconcile may still spend the reserve today).
            return RetryDecision(
                retry_at=exception.resets_at + QUOTA_MARGIN, priority=QUOTA_WAIT_PRIORITY
            )
        if isinstance(exception, RunLocked) and job.attempts < LOCKED_ATTEMPTS:
            return RetryDecision(retry_at=datetime.now(UTC) + LOCKED_RETRY)
        return None


@dataclass
class JobRunner:
    """What a worker knows besides the job: its own settings (home, rate, ...), where reports
    go, and the store (for the partners table)."""

    settings: Settings
    store_url: str
    report_root: Path
    say: Callable[[str], None] = field(default=log.info)

    def run(self, spec: JobSpec) -> dict[str, Any]:
        partner = self.partner(spec.partner)
        settings = partner.settings(
            self.settings, partners.partner_code(partner.name, self.settings.home)
        )
        # The partner's own folder when it has one, else the one every worker shares.
        report_root = Path(partner.report_dir) if partner.report_dir else self.report_root
        with (
            # One attempt of a job at a time, even before its run exists: an attempt begun while
            # another still runs (its worker passed for dead) waits (`RunLocked`, tried later).
            opened_store(self.store_url, settings.home) as store,
            store.lock(f"job-{spec.run_id}", f"the job of run {spec.run_id}"),
            open_session(settings) as session,
            contextlib.closing(runs.open_journal(settings.home, settings.store_url)) as journal,
        ):
            run_id, exit_code, report_dir = self._start_or_resume(
                journal, session.client, settings, spec, report_root
            )
            if exit_code == ExitCode.NOT_FINISHED:
                spent = quota_spent(session.client, run_id)
                if spent is not None:
                    raise spent
                # Some calls failed and stay pending: the job fails (visible in `jobs list`)
                # rather than end as done; the run waits in the journal for a resume.
                raise RunStopped(
                    f"run {run_id} ended not finished: its pending SIMs are in the journal and "
                    f"the report ({report_dir}); continue it with `lf-bulk runs resume {run_id}`"
                )
        self.say(
            f"job {spec.command} for {spec.partner}: run {run_id} exit {int(exit_code)}; "
            f"reports in {report_dir}"
        )
        return {"run_id": run_id, "exit_code": int(exit_code)}

    def partner(self, name: str) -> partners.Partner:
        with connect(self.store_url) as db:
            return partners.get(db, name)

    def _start_or_resume(
        self, journal: Journal, client: Any, settings: Settings, spec: JobSpec, report_root: Path
    ) -> tuple[str, ExitCode, Path]:
        options = EngineOptions(wait=True)
        try:
            run = journal.run(spec.run_id)
        except RunNotFound:
            run = None
        if run is not None:
            if run.status in TERMINAL_STATUSES:
                # The job ran to the run's end before (its worker died just after): say how it
                # ended, send nothing.
                self.say(f"run {run.run_id} is {run.status} already: nothing to do")
                fallback = ExitCode.OK if run.status == FINISHED else ExitCode.FATAL
                ended = fallback if run.exit_code is None else ExitCode(run.exit_code)
                return run.run_id, ended, Path(run.report_dir)
            self.say(f"resuming run {spec.run_id} ({spec.command} for {spec.partner})")
            resumed = runs.resume(journal, client, settings, spec.run_id, options, say=self.say)
            assert resumed is not None  # a run id was given
            return resumed.run_id, resumed.exit_code, resumed.report_dir
        given, report_dir = spec.options, report_root / spec.run_id
        if spec.command is JobCommand.RECONCILE:
            checked = rc.ReconcileOptions(
                apply=bool(given["apply"]), all_groups=bool(given["all_groups"]),
                max_changes=int(given["max_changes"]),
                max_removal_ratio=float(given["max_removal_ratio"]),
            )  # fmt: skip
            compared = runs.reconcile(
                client, settings, spec.table(), checked, group_id=given["group"],
                sheet_named=bool(given["sheet_named"]), skip_invalid=bool(given["skip_invalid"]),
                report_dir=report_dir, journal=lambda: journal, say=self.say, run_id=spec.run_id,
            )  # fmt: skip
            return compared.run_id, compared.exit_code, compared.report_dir
        if spec.command in ROWS_LOOKUPS:
            return self._rows_lookup(journal, client, settings, spec, report_dir)
        if spec.command is JobCommand.VERIFY:
            from lf_bulk import lookups

            verified = lookups.start_lookup(
                journal, client, settings, spec.table(), lookups.LookupKind.VERIFY, options={},
                report_dir=report_dir, skip_invalid=bool(given["skip_invalid"]), say=self.say,
                run_id=spec.run_id,
            )  # fmt: skip
            return verified.run_id, verified.exit_code, verified.report_dir
        if spec.command is JobCommand.CANCEL_RENEWALS:
            from lf_bulk import renewals

            cancelled = renewals.start_cancel(
                lambda: journal, client, settings, spec.table(), yes=bool(given["yes"]),
                report_dir=report_dir, skip_invalid=bool(given["skip_invalid"]), say=self.say,
                run_id=spec.run_id,
            )  # fmt: skip
            return cancelled.run_id, cancelled.exit_code, cancelled.report_dir
        if spec.command is JobCommand.CREATE_ORDERS:
            return self._orders(journal, client, settings, spec, report_dir)
        if spec.command is JobCommand.CHECK_PAYMENTS:
            from lf_bulk import topups

            paid = topups.start_payments(
                lambda: journal, client, settings, topups.pay_ids_of(spec.table()),
                skip_invalid=bool(given["skip_invalid"]), report_dir=report_dir, say=self.say,
                run_id=spec.run_id,
            )  # fmt: skip
            return paid.run_id, paid.exit_code, paid.report_dir
        if spec.command is JobCommand.EXPORT_ORDERS:
            return self._export(client, spec, report_dir)
        operation = Operation.ADD if spec.command is JobCommand.ADD else Operation.REMOVE
        if given.get("verify_run_id"):  # --verify: its verification run's id chosen at enqueue
            started = runs.start_verified(
                journal, client, settings, spec.table(), operation, given["group"], options,
                batch_size=int(given["batch_size"]), skip_invalid=bool(given["skip_invalid"]),
                report_dir=report_dir, say=self.say, run_id=spec.run_id,
                verify_run_id=str(given["verify_run_id"]),
            )  # fmt: skip
            return started.run_id, started.exit_code, started.report_dir
        started = runs.start(
            journal, client, settings, spec.table(), operation, given["group"], options,
            batch_size=int(given["batch_size"]), skip_invalid=bool(given["skip_invalid"]),
            report_dir=report_dir, say=self.say, run_id=spec.run_id,
        )  # fmt: skip
        return started.run_id, started.exit_code, started.report_dir

    def _rows_lookup(
        self, journal: Journal, client: Any, settings: Settings, spec: JobSpec, report_dir: Path
    ) -> tuple[str, ExitCode, Path]:
        """`sims status`, `sims plans`, `renewals list`: of FILE's rows, or of the groups'
        members read now; the workbook in the run's report folder."""
        from lf_bulk import fleet, lookups

        given = spec.options
        rows: Any = spec.table()
        if not given["from_file"]:
            groups = None if given["all_groups"] else list(given["groups"])
            rows = fleet.member_rows(client, groups)
        options: dict[str, Any] = {}
        if "expiring_within" in given:
            options[fleet.OPTION_EXPIRING_WITHIN] = int(given["expiring_within"])
        if given.get("area"):
            options[lookups.OPTION_AREA] = str(given["area"])
        looked_up = lookups.start_lookup(
            journal, client, settings, rows, lookups.LookupKind(ROWS_LOOKUPS[spec.command]),
            options=options,
            max_age=float(given["max_age"]), report_dir=report_dir,
            skip_invalid=bool(given["skip_invalid"]), say=self.say, run_id=spec.run_id,
        )  # fmt: skip
        return looked_up.run_id, looked_up.exit_code, looked_up.report_dir

    def _orders(
        self, journal: Journal, client: Any, settings: Settings, spec: JobSpec, report_dir: Path
    ) -> tuple[str, ExitCode, Path]:
        from lf_bulk import topups

        # The order numbers generated when the job was enqueued, not new ones: every attempt
        # of the job, and the run it records, pays the same orders.
        fixed: dict[str, str] = dict(spec.options["order_nos"])
        order_input = topups.orders_of(spec.table(), make_order_no=lambda row: fixed[str(row)])
        created = topups.start_orders(
            lambda: journal, client, settings, order_input,
            skip_invalid=bool(spec.options["skip_invalid"]), report_dir=report_dir,
            say=self.say, run_id=spec.run_id,
        )  # fmt: skip
        return created.run_id, created.exit_code, created.report_dir

    def _export(self, client: Any, spec: JobSpec, report_dir: Path) -> tuple[str, ExitCode, Path]:
        """`orders export` on a worker: not a run (nothing to resume; tried again, it reads
        again); the workbook is <report folder>/<job's run id>/orders.xlsx."""
        from zoneinfo import ZoneInfo

        from lf_bulk import order_export, orders
        from lf_bulk.reports import prepare_report_dir

        group = spec.options["group"]
        keys = (
            orders.group_keys(group, client.list_members(group))
            if group
            else orders.keys_of(spec.table())
        )
        order_export.check_quota(client, keys)
        timed = order_export.export_orders(client, keys, ZoneInfo(str(spec.options["timezone"])))
        target = prepare_report_dir(report_dir) / EXPORT_NAME
        orders.write_xlsx(timed.export, target)
        self.say(f"job orders export for {spec.partner}: {timed.summary()}")
        return spec.run_id, ExitCode.OK, report_dir


def quota_spent(client: Any, run_id: str) -> QuotaExhausted | None:
    """The quota stop of a run that ended not finished while the partner's day is spent.

    An add or remove run raises `QuotaExhausted` itself; a look-up run (verify, status,
    renewals, top-ups) stops cleanly with exit 5. Either way its job must wait for the next UTC
    day (`JobRetries`), not end as if it were done."""
    gate = quota.ledger_gate(client)
    if gate is None or gate.ledger.left_today(spend_reserve=gate.spend_reserve) > 0:
        return None
    ledger = gate.ledger
    source = QuotaSource.SERVER if ledger.server_spent_until() else QuotaSource.LEDGER
    spent = ledger.exhausted(source, ledger.resets_at(), spend_reserve=gate.spend_reserve)
    stop = QuotaExhausted(
        f"run {run_id} stopped: {spent}. Its job is tried again after the reset and resumes it",
        resets_at=spent.resets_at, used=spent.used, limit=spent.limit, source=spent.source,
    )  # fmt: skip
    return stop


@contextlib.contextmanager
def connect(url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(url, autocommit=True) as db:
        yield db


def run_command(context: procrastinate.JobContext, spec: dict[str, Any]) -> dict[str, Any]:
    runner: JobRunner = context.additional_context[RUNNER]
    return runner.run(JobSpec.from_json(spec))


def make_app(store_url: str) -> procrastinate.App:
    # The pool opens one connection and grows to what the worker uses at once (its fetch, its
    # LISTEN, the heartbeat): psycopg_pool's default opens four up front, for each enqueue too.
    connector = procrastinate.PsycopgConnector(conninfo=store_url, min_size=1, max_size=4)
    app = procrastinate.App(connector=connector)
    app.task(name=TASK_NAME, pass_context=True, retry=JobRetries())(run_command)
    return app


def ensure_schema(store_url: str) -> bool:
    """Apply Procrastinate's schema unless it is there already; True when it was applied now."""
    from procrastinate.schema import SchemaManager

    with connect(store_url) as db:
        db.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
        try:
            found = db.execute("SELECT to_regclass(%s)", (SCHEMA_MARKER,)).fetchone()
            if found is not None and found[0] is not None:
                return False
            db.execute(SchemaManager.get_schema())
            return True
        finally:
            db.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))


def enqueue(store_url: str, spec: JobSpec, *, queue: str = "default") -> int:
    """Defer `spec`; `AlreadyQueued` (an `InvalidSetting`) when the same job is waiting already."""
    ensure_schema(store_url)
    with contextlib.ExitStack() as held:
        if spec.command is JobCommand.CREATE_ORDERS:
            # The check and the queueing as one step per partner: two enqueues at once would
            # otherwise both find no earlier job holding their pay_ids, and both pay.
            paying = held.enter_context(connect(store_url))
            paying.execute(
                "SELECT pg_advisory_lock(hashtextextended(%s, 0))", (paying_lock(spec.partner),)
            )
            refuse_paid_before(store_url, spec)
        return _defer(store_url, spec, queue)


def paying_lock(partner: str) -> str:
    """The advisory lock (by name) an `orders create` enqueue holds from its check to its job."""
    return f"lf-bulk enqueue orders create {partner}"


def _defer(store_url: str, spec: JobSpec, queue: str) -> int:
    app = make_app(store_url)
    with app.open():
        task = app.tasks[TASK_NAME]
        try:
            return task.configure(
                lock=partner_lock(spec.partner), queueing_lock=spec.queueing_lock(), queue=queue
            ).defer(spec=spec.to_json())
        except pq_exceptions.AlreadyEnqueued:
            raise AlreadyQueued(
                f"the same {spec.command} for partner {spec.partner} (same options and input) "
                "is waiting in the queue already: nothing was added (`lf-bulk jobs list` shows "
                "it)"
            ) from None


class AlreadyQueued(InvalidSetting):
    """A duplicate trigger: the same job is still waiting (exit 2, nothing added)."""


class EnqueuedBefore(AlreadyQueued):
    """A top-up's payment (its pay_id) was enqueued before for the partner, whatever became of
    that job: its run is the one to continue (exit 2, nothing added)."""


def paid_rows(spec: JobSpec) -> dict[str, int]:
    """The pay_ids an `orders create` job pays, each with its row (its valid rows only)."""
    from lf_bulk import topups

    fixed: dict[str, str] = dict(spec.options["order_nos"])
    checked = topups.orders_of(spec.table(), make_order_no=lambda row: fixed.get(str(row), "-"))
    return {r.top_up.pay_id: r.row for r in checked.rows if r.top_up is not None}


def refuse_paid_before(store_url: str, spec: JobSpec) -> None:
    """Refuse an `orders create` job one of whose payments an earlier job of the partner holds
    (waiting, running, done or failed): a file enqueued twice, or rows of it again."""
    mine = paid_rows(spec)
    if not mine:
        return
    with connect(store_url) as db:
        # The jobs that may share a pay_id, found by the database; then checked row by row.
        candidates = db.execute(
            "SELECT DISTINCT j.id, j.status::text, j.args->'spec' FROM procrastinate_jobs AS j,"
            " jsonb_array_elements(j.args->'spec'->'rows') AS r"
            " WHERE j.task_name = %s AND j.args->'spec'->>'command' = %s"
            " AND j.args->'spec'->>'partner' = %s AND r->4->>'pay_id' = ANY(%s) ORDER BY j.id",
            (TASK_NAME, str(JobCommand.CREATE_ORDERS), spec.partner, list(mine)),
        ).fetchall()
    for job_id, status, data in candidates:
        earlier = JobSpec.from_json(data)
        shared = sorted(set(mine) & set(paid_rows(earlier)), key=mine.__getitem__)
        if shared:
            more = f" and {len(shared) - 1} more" if len(shared) > 1 else ""
            raise EnqueuedBefore(
                f"row {mine[shared[0]]}: pay_id {shared[0]}{more} was enqueued before for "
                f"partner {spec.partner}, in job {job_id} ({status}) of run {earlier.run_id}: "
                "nothing was added, so nothing is paid twice. `lf-bulk runs show "
                f"{earlier.run_id}` says what became of it; `lf-bulk runs resume "
                f"{earlier.run_id}` continues it"
            )


def list_jobs(store_url: str) -> list[dict[str, Any]]:
    ensure_schema(store_url)
    with connect(store_url) as db:
        rows = db.execute(
            "SELECT id, status, queue_name, lock, attempts, scheduled_at, "
            "args->'spec'->>'command', args->'spec'->>'partner', args->'spec'->>'run_id' "
            "FROM procrastinate_jobs WHERE task_name = %s ORDER BY id DESC",
            (TASK_NAME,),
        ).fetchall()
    names = ("id", "status", "queue", "lock", "attempts", "scheduled_at", "command", "partner")
    return [
        {
            **dict(zip(names, row[:8], strict=True)),
            "scheduled_at": row[5].isoformat() if row[5] else None,
            "run_id": row[8],
        }
        for row in rows
    ]


async def sweep_stalled(app: procrastinate.App, heartbeat: float, stop: asyncio.Event) -> None:
    """Put the jobs of dead workers (no heartbeat for STALLED_HEARTBEATS intervals) back to
    `todo`, every interval, until `stop`; any worker may then take them and resume their runs."""
    while not stop.is_set():
        try:
            stalled = await app.job_manager.get_stalled_jobs(
                seconds_since_heartbeat=heartbeat * STALLED_HEARTBEATS
            )
            for job in stalled:
                log.warning("job %s: its worker stopped; retrying it (its run resumes)", job.id)
                await app.job_manager.retry_job(job)
        except Exception as exc:  # a lost connection must not stop the worker's own jobs
            log.warning("sweeping stalled jobs failed: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=heartbeat)


async def run_worker(
    runner: JobRunner,
    *,
    concurrency: int = 1,
    queues: list[str] | None = None,
    heartbeat: float = DEFAULT_HEARTBEAT,
    name: str | None = None,
) -> None:
    """One worker until SIGINT/SIGTERM (running jobs finish first), sweeping stalled jobs."""
    ensure_schema(runner.store_url)
    hide_job_arguments()
    app = make_app(runner.store_url)
    stop = asyncio.Event()
    async with app.open_async():
        sweeper = asyncio.create_task(sweep_stalled(app, heartbeat, stop))
        options: dict[str, Any] = {"queues": queues} if queues else {}
        if name:
            options["name"] = name
        try:
            await app.run_worker_async(
                concurrency=concurrency, additional_context={RUNNER: runner},
                update_heartbeat_interval=heartbeat,
                stalled_worker_timeout=heartbeat * STALLED_HEARTBEATS,
                fetch_job_polling_interval=min(heartbeat, 5.0), install_signal_handlers=True,
                **options,
            )  # fmt: skip
        finally:
            stop.set()
            await sweeper
