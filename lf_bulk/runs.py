"""Runs as a library: add or remove SIMs, drive a journaled run, resume, retry, cancel, reconcile.

Every function takes plain arguments (settings, a journal, a client) and returns a result
object; people watching get callbacks (`progress` builds the engine's `Progress` for a run of
`total` SIMs, `say` takes a line for people), never a terminal. `jobs/` is the Click shell
around these functions and prints what they return.

`journal` and `client` may be given as zero-argument callables: they are then opened only once
every check that can fail before them has passed (no journal file, no sandbox for a refusal).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

from lf_bulk import bulk, quota, store, wire
from lf_bulk import reconcile as rc
from lf_bulk.client import LinksfieldClient
from lf_bulk.engine import (
    RETRYABLE_FAILURES,
    DriveResult,
    EngineOptions,
    Progress,
    RunDriver,
    StopReason,
)
from lf_bulk.errors import (
    InputError,
    InvalidRowsError,
    PlanRefused,
    QuotaExhausted,
    ReportError,
    RunChanged,
    RunLocked,
    RunNotFound,
    RunRefused,
    RunStopped,
)
from lf_bulk.exitcodes import ExitCode
from lf_bulk.journal import (
    FINISHED,
    LOOKUP_KIND,
    NOT_FINISHED,
    NOT_RESUMABLE,
    TERMINAL_STATUSES,
    Journal,
    RunRecord,
    new_run_id,
)
from lf_bulk.locking import exclusive, exclusive_all, is_held
from lf_bulk.models import Operation, OutcomeCode
from lf_bulk.reports import prepare_report_dir
from lf_bulk.run_listing import (
    JOURNAL_NAME,
    counts_text,
    listing,
    open_journal,
    run_lock_name,
    shown_status,
    summary_line,
)
from lf_bulk.settings import Settings
from lf_bulk.sources import InputTable, read_iccids

# The wire profile's largest batch: the engine lowers it further to what the server allows.
DEFAULT_BATCH_SIZE = wire.DEFAULT_BATCH_SIZE

DEFAULT_OPTIONS = EngineOptions()
REASON_NOT_VERIFIED = "NOT_VERIFIED"

log = logging.getLogger(__name__)
T = TypeVar("T")
Lazy: TypeAlias = T | Callable[[], T]
Say = Callable[[str], None]
ProgressFactory = Callable[[int], AbstractContextManager[Progress]]


def _silent(message: str) -> None:
    pass


def no_progress(total: int) -> AbstractContextManager[Progress]:
    return nullcontext(Progress())


def _get(value: Lazy[T]) -> T:
    return value() if callable(value) else value


# Who wants to learn the id of each run driven in this context (the console's RunManager): told
# once the run's lock is held, so a run it is told about is one this thread really drives.
_run_watcher: ContextVar[Callable[[str], None] | None] = ContextVar("run_watcher", default=None)


@contextmanager
def watching_runs(watcher: Callable[[str], None]) -> Iterator[None]:
    """Call `watcher(run_id)` for every run driven in this context (thread), under its lock."""
    token = _run_watcher.set(watcher)
    try:
        yield
    finally:
        _run_watcher.reset(token)


def announce_run(run_id: str) -> None:
    """Tell the `watching_runs` watcher, if any, that `run_id` is being driven now."""
    watcher = _run_watcher.get()
    if watcher is not None:
        watcher(run_id)


@dataclass(frozen=True)
class RunResult:
    """Where a run ended: its exit code, outcome counts, and the folder of its reports."""

    run_id: str
    exit_code: ExitCode
    counts: dict[str, int]
    report_dir: Path
    stopped: str = ""  # why the run is not finished, when it is not
    retryable: int = 0  # failures `retry` could send again
    driven: bool = True  # False: nothing was sent (e.g. nothing to retry)


@dataclass(frozen=True)
class DryRun:
    run_id: str
    plan: bulk.DryRunPlan
    report_dir: Path


def endpoint_of(settings: Settings) -> str:
    """The API a run talks to, as the journal records it (never a password)."""
    return f"{settings.env} {settings.display_base_url or ''}".strip()


def check_same_endpoint(run: RunRecord, endpoint: str) -> None:
    if run.endpoint and run.endpoint != endpoint:
        env, _, url = run.endpoint.partition(" ")
        hint = f"--env {env}" + (f" --base-url {url}" if url else "")
        raise RunRefused(
            f"run {run.run_id} was started against {run.endpoint!r}; continue it with {hint}"
        )


def require_resumable(run: RunRecord) -> None:
    if run.status in NOT_RESUMABLE:
        why = run.details.get("stop_reason", "")
        raise RunRefused(
            f"run {run.run_id} is {run.status}"
            + (f" ({why})" if why else "")
            + "; it cannot be continued. Its report is in "
            + (run.report_dir or "its report folder")
        )


def write_reports(
    journal: Journal, run_id: str, exit_code: int, reporter: bulk.RunReporter | None = None
) -> Path:
    run = journal.run(run_id)
    try:
        if reporter is not None:
            return reporter.finish(exit_code)
        return bulk.write_reports(journal, run, exit_code)
    except OSError as exc:
        raise ReportError(
            f"run {run_id}: its reports could not be written to {run.report_dir} "
            f"({exc.strerror or exc}); the run itself is recorded in the journal: fix the "
            f"folder, then `lf-bulk runs wait {run_id}` writes them"
        ) from None


def drive(
    journal: Journal,
    client: Lazy[LinksfieldClient],
    run_id: str,
    settings: Settings,
    options: EngineOptions = DEFAULT_OPTIONS,
    *,
    progress: ProgressFactory = no_progress,
    say: Say = _silent,
    before: Callable[[], None] | None = None,
    retry_server_quota: bool = False,
) -> RunResult:
    """Drive the run to its end (or a stop) and write its reports where the run started.

    Everything that can fail before the first call is checked first: the endpoint, whether the
    run can go on at all, the report folder. `before` runs under the run's lock. A `RunStopped`
    or `QuotaExhausted` (the day's quota is spent: the run is `not_finished`, exit 5) carries the
    folder of the reports written for the stop in `report_dir`. `retry_server_quota`: send even
    though the server said today's quota is spent (it may have reset before our clock's midnight).
    """
    run = journal.run(run_id)
    if run.kind == LOOKUP_KIND:
        from lf_bulk import lookups  # it builds on this module

        return lookups.drive_lookup(
            journal, client, run_id, settings, timeout=options.timeout, progress=progress,
            say=say, retry_server_quota=retry_server_quota,
        )  # fmt: skip
    check_same_endpoint(run, endpoint_of(settings))
    require_resumable(run)
    say(f"run {run_id}")
    with exclusive(settings.home, run_lock_name(run_id), f"run {run_id}", holder=f"run {run_id}"):
        journal.verify_run(run_id)  # first: the report folder below is the journal's word
        # The folder the run started with may have gone since: find out before sending, not after.
        prepare_report_dir(Path(run.report_dir))
        try:
            announce_run(run_id)
            if before is not None:
                before()
            api = _get(client)
            if retry_server_quota:
                quota.retry_server(api)
            if run.kind == "reconcile":
                quota.allow_reserve(api)  # a reconcile's apply, resumed, may use what is kept
        except KeyboardInterrupt:
            # Ctrl-C while the client and the store's pacer, ledger and cache open (long on
            # PostgreSQL): the run exists, so it stops as the engine's Ctrl-C stops it.
            return _interrupted_before_driving(journal, run_id)
        # The reports are written while the batches finish: little is left for the end.
        reporter = bulk.RunReporter(journal, run_id)
        try:
            with progress(run.valid) as watcher:
                result = RunDriver(
                    journal, api, run_id, options=options, progress=watcher,
                    after_batches=reporter.advance,
                ).drive()  # fmt: skip
        except RunStopped as error:
            error.report_dir = write_reports(journal, run_id, ExitCode.FATAL, reporter)
            raise
        except QuotaExhausted as error:
            error.report_dir = write_reports(journal, run_id, ExitCode.NOT_FINISHED, reporter)
            raise
        except BaseException:
            reporter.abandon()
            raise
    log.info("run %s: writing reports", run_id)
    report_dir = write_reports(journal, run_id, result.exit_code, reporter)
    retryable = journal.failure_count(run_id, RETRYABLE_FAILURES)
    return RunResult(run_id, result.exit_code, result.counts, report_dir, result.stopped, retryable)


def _interrupted_before_driving(journal: Journal, run_id: str) -> RunResult:
    journal.set_run_status(run_id, NOT_FINISHED, ExitCode.NOT_FINISHED)
    report_dir = write_reports(journal, run_id, ExitCode.NOT_FINISHED)
    counts = journal.outcome_counts(run_id)
    return RunResult(run_id, ExitCode.NOT_FINISHED, counts, report_dir, StopReason.INTERRUPTED)


def _checked_input(
    table: InputTable,
    operation: Operation,
    group_id: str,
    report_dir: Path | None,
    *,
    skip_invalid: bool,
    say: Say,
    run_id: str | None = None,
) -> tuple[str, Path]:
    """A new run id (or `run_id`) and its report folder, once the input may be sent; else its
    refusal report."""
    counts = table.counts
    say(f"{table.source}: {table.counts.describe()}")
    run_id = run_id or new_run_id()
    target = prepare_report_dir(bulk.report_dir_for(run_id, report_dir))
    if (counts.invalid or counts.duplicates) and not skip_invalid:
        error = bulk.refuse_invalid(table, operation, group_id, target, run_id)
        refused = InvalidRowsError(
            table.source,
            error.rows,
            error.report_path,
            advice="Nothing was sent. Fix the file, or pass --skip-invalid to send only the "
            f"valid rows. The rejected rows are listed in {target / 'items.csv'}",
        )
        refused.report_dir = target
        raise refused
    if not counts.valid:
        # `--skip-invalid` with nothing left is a broken file, not a success: cron must notice.
        bulk.refuse_invalid(table, operation, group_id, target, run_id)
        empty = InputError(
            f"no valid ICCID to send ({counts.invalid} invalid, {counts.duplicates} duplicates); "
            f"nothing was sent. The rows and their reasons are in {target / 'items.csv'}",
            path=table.source,
        )
        empty.report_dir = target
        raise empty
    return run_id, target


def check_input(
    table: InputTable,
    operation: Operation,
    group_id: str,
    report_dir: Path | None,
    *,
    skip_invalid: bool,
    say: Say = _silent,
    run_id: str | None = None,
) -> None:
    """Refuse `table` as `start` would (`InvalidRowsError` or `InputError`, the refusal report
    written) without preparing anything when it may be sent: `enqueue` checks its input now."""
    counts = table.counts
    if counts.valid and (skip_invalid or not (counts.invalid or counts.duplicates)):
        return
    _checked_input(
        table, operation, group_id, report_dir, skip_invalid=skip_invalid, say=say, run_id=run_id
    )
    raise AssertionError("_checked_input refuses what check_input passes on")  # pragma: no cover


def dry_run(
    client: Lazy[LinksfieldClient],
    table: InputTable,
    operation: Operation,
    group_id: str,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    skip_invalid: bool = False,
    report_dir: Path | None = None,
    say: Say = _silent,
) -> DryRun:
    """What `start` would do, from read-only calls only; the plan is written as a report."""
    run_id, target = _checked_input(
        table, operation, group_id, report_dir, skip_invalid=skip_invalid, say=say
    )
    api = _get(client)
    calls = quota.calls_for_bulk(table.counts.valid, batch_size)
    needs = quota.client_plan(api, calls, check=False)
    if needs is not None:
        say(needs.line("the run"))
    bulk.require_group(api, group_id)
    plan = bulk.dry_run_plan(api, table, operation, group_id, batch_size)
    written = bulk.write_dry_run_report(target, run_id, table, operation, group_id, plan)
    return DryRun(run_id, plan, written)


def start(
    journal: Lazy[Journal],
    client: Lazy[LinksfieldClient],
    settings: Settings,
    table: InputTable,
    operation: Operation,
    group_id: str,
    options: EngineOptions = DEFAULT_OPTIONS,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    skip_invalid: bool = False,
    report_dir: Path | None = None,
    progress: ProgressFactory = no_progress,
    say: Say = _silent,
    run_id: str | None = None,
) -> RunResult:
    """Add (or remove) the ICCIDs of `table` to `group_id` as a journaled run, and drive it.

    Invalid or duplicate rows refuse the whole input (`InvalidRowsError`, its report written)
    unless `skip_invalid`; everything that can fail is checked before the run exists. `run_id`:
    the id to give the run (a worker's job chooses it when enqueued, so a retry of the job finds
    and resumes its run instead of starting another); default a new one.
    """
    run_id, target = _checked_input(
        table, operation, group_id, report_dir, skip_invalid=skip_invalid, say=say, run_id=run_id
    )
    api = _get(client)
    # Refused here when nothing at all is left today; a run that needs more than is left says so
    # and stops cleanly when the quota runs out (exit 5), to be resumed after the reset.
    needs = quota.client_plan(api, quota.calls_for_bulk(table.counts.valid, batch_size))
    if needs is not None:
        say(needs.line("the run"))
    bulk.require_group(api, group_id)
    return _record_and_drive(
        _get(journal), api, settings, table, operation, group_id, options, run_id=run_id,
        report_dir=target, batch_size=batch_size, progress=progress, say=say,
    )  # fmt: skip


def _record_and_drive(
    journal: Journal,
    api: LinksfieldClient,
    settings: Settings,
    table: InputTable,
    operation: Operation,
    group_id: str,
    options: EngineOptions,
    *,
    run_id: str,
    report_dir: Path,
    batch_size: int,
    progress: ProgressFactory,
    say: Say,
    preset: Mapping[int, bulk.Preset] | None = None,
    details: dict[str, Any] | None = None,
) -> RunResult:
    """The checked input journaled as run `run_id` (rows in `preset` never sent), then driven."""
    bulk.start_run(
        journal, table, operation, group_id, batch_size=batch_size, report_dir=report_dir,
        endpoint=endpoint_of(settings), run_id=run_id, preset=preset, details=details,
    )  # fmt: skip
    return drive(journal, api, run_id, settings, options, progress=progress, say=say)


def start_verified(
    journal: Lazy[Journal],
    client: Lazy[LinksfieldClient],
    settings: Settings,
    table: InputTable,
    operation: Operation,
    group_id: str,
    options: EngineOptions = DEFAULT_OPTIONS,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    skip_invalid: bool = False,
    report_dir: Path | None = None,
    max_age: float | None = None,
    progress: ProgressFactory = no_progress,
    say: Say = _silent,
    run_id: str | None = None,
    verify_run_id: str | None = None,
) -> RunResult:
    """`start` with `--verify`: every card is verified first, in a VERIFY look-up run of its own
    (its reports in `verify/` under the run's report folder), and only the verified ones are sent.

    `run_id`, `verify_run_id`: the ids of the two runs (a worker's job chooses them when it is
    enqueued): a verification begun before (its job was tried again) is resumed, or taken as it
    ended, never started again.

    Rejected cards are recorded in the add/remove run as `rejected`, with the Vshop code as the
    reason (exit 3); a card whose verification failed is `failed` (NOT_VERIFIED). When the
    verification does not finish (quota, Ctrl-C), nothing is sent and its result is returned:
    resume it, then start the job again (the answers are reused for `max_age`).
    """
    from lf_bulk import lookups  # it builds on this module

    run_id, target = _checked_input(
        table, operation, group_id, report_dir, skip_invalid=skip_invalid, say=say, run_id=run_id
    )
    api = _get(client)
    opened = _get(journal)
    begun = _recorded(opened, verify_run_id)
    if begun is not None:  # a job tried again, as `runs resume` tries: the server's day may
        quota.retry_server(api)  # have begun before ours
    bulk.require_group(api, group_id)
    say(f"run {run_id}: verifying every card first")
    if begun is None:
        verification = lookups.start_lookup(
            opened, api, settings, table, lookups.LookupKind.VERIFY, skip_invalid=True,
            report_dir=target / "verify", say=say, progress=progress,
            max_age=lookups.DEFAULT_MAX_AGE if max_age is None else max_age,
            run_id=verify_run_id,
        )  # fmt: skip
    elif begun.status in TERMINAL_STATUSES:
        if begun.status != FINISHED:
            # Cancelled or failed: some cards were never verified, and whoever stopped the
            # verification did not want them sent.
            raise RunStopped(
                f"run {run_id}: its verification {begun.run_id} ended {begun.status}; nothing "
                f"was sent to {group_id}. Start a new job to verify and send these cards"
            )
        ended = ExitCode.OK if begun.exit_code is None else ExitCode(begun.exit_code)
        verification = RunResult(begun.run_id, ended, {}, Path(begun.report_dir))
    else:
        verification = drive(opened, api, begun.run_id, settings, progress=progress, say=say)
    if verification.exit_code == ExitCode.NOT_FINISHED:
        return replace(
            verification,
            stopped=f"the verification is not finished ({verification.stopped}); nothing was "
            f"sent to {group_id}. `lf-bulk runs resume {verification.run_id}` finishes it; then "
            "run this command again (the answers are reused)",
        )
    checked = lookups.load_run(opened, verification.run_id)
    if checked.kind != lookups.LookupKind.VERIFY:
        raise RunStopped(
            f"run {run_id}: run {verification.run_id} is not a verification; nothing was sent"
        )
    preset = {}
    for answer in checked.answers:
        if answer.outcome == OutcomeCode.REJECTED:
            preset[answer.row] = bulk.Preset(
                OutcomeCode.REJECTED, answer.reason_code, answer.reason or answer.reason_code
            )
        elif answer.outcome in (OutcomeCode.FAILED, OutcomeCode.PENDING):
            # Only an answer says a card is verified: one still pending is not.
            why = (
                f"{answer.reason_code}: {answer.reason}"
                if answer.outcome == OutcomeCode.FAILED
                else "its verification got no answer"
            )
            preset[answer.row] = bulk.Preset(
                OutcomeCode.FAILED, REASON_NOT_VERIFIED, f"the card could not be verified ({why})"
            )
    verified = table.counts.valid - len(preset)
    needs = quota.client_plan(api, quota.calls_for_bulk(verified, batch_size))
    if needs is not None:
        say(needs.line(f"the {operation.lower()} of the {verified:,} verified card(s)"))
    return _record_and_drive(
        opened, api, settings, table, operation, group_id, options, run_id=run_id,
        report_dir=target, batch_size=batch_size, progress=progress, say=say, preset=preset,
        details={bulk.VERIFIED_BY: verification.run_id},
    )  # fmt: skip


def _recorded(journal: Journal, run_id: str | None) -> RunRecord | None:
    if run_id is None:
        return None
    try:
        return journal.run(run_id)
    except RunNotFound:
        return None


def resume(
    journal: Journal,
    client: Lazy[LinksfieldClient],
    settings: Settings,
    run_id: str | None = None,
    options: EngineOptions = DEFAULT_OPTIONS,
    *,
    progress: ProgressFactory = no_progress,
    say: Say = _silent,
) -> RunResult | None:
    """Continue `run_id` (default: the newest unfinished run); None when there is nothing to do.

    A run stopped by the day's quota is tried again even if the server said the quota is spent.
    """
    if run_id is None:
        newest = journal.newest_unfinished()
        if newest is None:
            say(
                "nothing to resume: every run in the journal is finished, failed or cancelled "
                "(`lf-bulk runs list` shows them)"
            )
            return None
        run_id = newest.run_id
    return drive(
        journal, client, run_id, settings, options, progress=progress, say=say,
        retry_server_quota=True,
    )  # fmt: skip


def retry(
    journal: Journal,
    client: Lazy[LinksfieldClient],
    settings: Settings,
    run_id: str,
    options: EngineOptions = DEFAULT_OPTIONS,
    *,
    progress: ProgressFactory = no_progress,
    say: Say = _silent,
) -> RunResult:
    """Send again the ICCIDs of a finished run whose failure may pass on a retry."""
    record = journal.run(run_id)
    require_resumable(record)
    if record.kind == LOOKUP_KIND:
        raise RunRefused(
            f"run {run_id} is a look-up run: look-ups are not retried; `lf-bulk runs resume "
            f"{run_id}` asks again for the rows still pending, or start the look-up again"
        )
    if is_held(settings.home, run_lock_name(run_id)):
        raise RunLocked(
            f"run {run_id} is being driven by another lf-bulk process; wait for it to finish, "
            "then retry"
        )
    if record.status != FINISHED:
        status = shown_status(record, settings.home)
        raise RunRefused(
            f"run {run_id} is {status}, not finished; `lf-bulk runs resume {run_id}` first"
        )
    if not journal.failure_count(run_id, RETRYABLE_FAILURES):
        say(
            f"run {run_id}: nothing to retry: no failure is one a retry could fix "
            f"(see {Path(record.report_dir) / 'items.csv'})"
        )
        code = ExitCode(record.exit_code) if record.exit_code is not None else ExitCode.OK
        counts = journal.outcome_counts(run_id)
        return RunResult(run_id, code, counts, Path(record.report_dir), driven=False)

    def requeue() -> None:
        # Under the run's lock: nobody else can have started driving it since the checks.
        if journal.run(run_id).status != FINISHED:
            raise RunChanged(f"run {run_id} changed meanwhile; `lf-bulk runs show {run_id}`")
        count = journal.requeue_failed(run_id, sorted(RETRYABLE_FAILURES), record.batch_size)
        say(f"run {run_id}: {count} retryable failure(s) to send again")

    return drive(
        journal, client, run_id, settings, options, progress=progress, say=say, before=requeue
    )


def cancel(journal: Journal, settings: Settings, run_id: str) -> RunResult:
    """Cancel a run for good and write its reports (`driven` False: nothing more is sent).

    ICCIDs never sent end `failed` (CANCELLED); ICCIDs already sent stay `pending`.
    """
    record = journal.run(run_id)
    if record.status in TERMINAL_STATUSES:
        raise RunRefused(f"run {run_id} is already {record.status}; nothing to cancel")
    lock = run_lock_name(run_id)
    with exclusive(settings.home, lock, f"run {run_id}", holder=f"run {run_id}"):
        journal.verify_run(run_id)  # the report folder below is the journal's word
        prepare_report_dir(Path(record.report_dir))
        if record.kind == LOOKUP_KIND:
            from lf_bulk import lookups  # it builds on this module

            return lookups.cancel_lookup(journal, run_id)
        journal.cancel_run(run_id, "cancelled with `lf-bulk runs cancel`", ExitCode.SOME_FAILED)
        report_dir = bulk.write_reports(journal, journal.run(run_id), ExitCode.SOME_FAILED)
    counts = journal.outcome_counts(run_id)
    return RunResult(run_id, ExitCode.SOME_FAILED, counts, report_dir, driven=False)


def details(journal: Journal, run_id: str, home: Path) -> dict[str, object]:
    """One run as `runs show` shows it: settings, batches by state, outcomes, what next."""
    record = journal.run(run_id)
    status = shown_status(record, home)
    batches: dict[str, int] = {}
    for batch in journal.batches(run_id):
        batches[batch.state] = batches.get(batch.state, 0) + 1
    looked_up: dict[str, object] = {}
    if record.kind == LOOKUP_KIND:
        looked_up["calls"] = journal.call_counts(run_id)
    return {
        "run_id": record.run_id,
        "kind": record.kind,
        "operation": record.operation,
        "group_id": record.group_id,
        "status": status,
        "stop_reason": record.details.get("stop_reason", ""),
        "next": bulk.next_step(journal, record, status),
        "source": record.source,
        "endpoint": record.endpoint,
        "input_rows": record.input_rows,
        "valid": record.valid,
        "invalid": record.invalid,
        "duplicates": record.duplicates,
        "batches": batches,
        "outcomes": journal.outcome_counts(run_id),
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "exit_code": record.exit_code,
        "report_dir": record.report_dir,
        **looked_up,
    }


# ---------------------------------------------------------------- reconcile


def read_desired(
    path: str | Path, *, sheet: str | None = None, column: str | None = None
) -> InputTable:
    """A desired-state file for `reconcile`: ICCIDs and, when it has one, their group column."""
    extra = {"group": list(rc.GROUP_COLUMN_ALIASES)}
    return read_iccids(path, sheet=sheet, column=column, extra_columns=extra)


def check_reconcile_input(
    table: InputTable,
    *,
    group_id: str | None,
    sheet_named: bool,
    skip_invalid: bool,
    run_id: str,
    report_dir: Path | None = None,
) -> None:
    """Refuse a desired state as `reconcile` would, before any call (`enqueue` checks its input
    now); a refusal writes its report, an accepted input leaves nothing behind."""
    rc.check_one_sheet(table, sheet_named=sheet_named)
    rc.check_columns(table)
    desired = rc.desired_rows(table, group_id)
    named = rc.named_groups(desired, group_id)
    invalid = sum(1 for row in desired if row.problem)
    if named and invalid < len(desired) and (skip_invalid or not invalid):
        return
    target = prepare_report_dir(bulk.report_dir_for(run_id, report_dir))
    rc.check_desired(
        table, desired, named, skip_invalid=skip_invalid, report_dir=target, run_id=run_id
    )


@contextmanager
def _report_dir_on_refusal(target: Path) -> Iterator[None]:
    try:
        yield
    except PlanRefused as error:
        error.report_dir = target
        raise


def reconcile(
    client: Lazy[LinksfieldClient],
    settings: Settings,
    table: InputTable,
    options: rc.ReconcileOptions,
    *,
    group_id: str | None = None,
    sheet_named: bool = False,
    skip_invalid: bool = False,
    report_dir: Path | None = None,
    journal: Callable[[], Journal] | None = None,
    progress: ProgressFactory = no_progress,
    say: Say = _silent,
    run_id: str | None = None,
) -> rc.ReconcileResult:
    """Compare the membership desired in `table` with the groups, and with `options.apply` fix
    the drift under the locks of every group it may touch; the report is written either way.

    `table` is read with its group column (`read_desired`);
    `journal` opens the run journal (default: the one under `settings.home`, closed at the end).
    `run_id`: the id to give the run (a worker's job chooses it when enqueued); default new.
    """
    rc.check_one_sheet(table, sheet_named=sheet_named)
    rc.check_columns(table)
    desired = rc.desired_rows(table, group_id)
    named = rc.named_groups(desired, group_id)
    run_id = run_id or new_run_id()
    say(f"run {run_id}")
    target = prepare_report_dir(bulk.report_dir_for(run_id, report_dir))
    try:
        rc.check_desired(
            table, desired, named, skip_invalid=skip_invalid, report_dir=target, run_id=run_id
        )
    except InvalidRowsError as error:
        refused = InvalidRowsError(
            table.source,
            error.rows,
            error.report_path,
            advice="Nothing was compared or sent. Fix the file, or pass --skip-invalid to apply "
            "only additions and moves (no removal while any row is invalid). The rejected rows "
            f"are listed in {target / rc.ITEMS_CSV}",
        )
        refused.report_dir = target
        raise refused from None
    except InputError as error:
        error.report_dir = target
        raise
    api = _get(client)
    quota.allow_reserve(api)  # the nightly reconcile must never be starved by other jobs
    with ExitStack() as stack:
        # A shared store keeps the groups' locks too: bound before they are taken below.
        stack.enter_context(store.bound_locks(settings.store_url, settings.home))

        def open_run_journal() -> Journal:
            if journal is not None:
                return journal()
            return stack.enter_context(open_journal(settings.home, settings.store_url))

        def drive_run(opened: Journal, run: str) -> DriveResult:
            record = opened.run(run)
            # The apply's sends and polls, then one read of the members to see it converged.
            calls = quota.calls_for_bulk(record.valid, record.batch_size) - 1 + len(named)
            needs = quota.client_plan(api, calls, check=False)
            if needs is not None:
                say(needs.line("the apply"))
            result = drive(opened, api, run, settings, progress=progress)
            return DriveResult(result.exit_code, result.counts, StopReason(result.stopped))

        # With all_groups a move may take a SIM out of any group of the account: lock them all.
        locked = rc.groups_to_lock(api, named, all_groups=options.all_groups)
        with (
            exclusive_all(
                settings.home,
                [f"group-{g}" for g in locked],
                f"reconcile of {', '.join(named)}",
                holder=f"reconcile run {run_id}",
            ),
            _report_dir_on_refusal(target),
        ):
            return rc.reconcile(
                api,
                desired,
                named,
                options,
                run_id=run_id,
                report_dir=target,
                journal=open_run_journal,
                drive=drive_run,
                source=table.source,
                endpoint=endpoint_of(settings),
                say=say,
            )


__all__ = (
    "DEFAULT_BATCH_SIZE",
    "JOURNAL_NAME",
    "DryRun",
    "RunResult",
    "cancel",
    "counts_text",
    "details",
    "drive",
    "dry_run",
    "listing",
    "open_journal",
    "read_desired",
    "reconcile",
    "resume",
    "retry",
    "start",
    "start_verified",
    "summary_line",
    "watching_runs",
)
