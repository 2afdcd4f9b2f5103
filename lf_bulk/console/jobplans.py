"""The console's jobs as data: what each action would do (the plan page), and the job that does it.

    Action           the actions of the New job page, each the library call of one CLI command
    plan_job         the plan of an action for a validated input: per-row plan, counts, calls
                     needed against today's quota, the mass-removal guard, the consent to type
    check_consent    refuse a confirmation whose typed number is not the one the plan asks for
    job_for          the job a Confirm launches: the same `runs` / `lookups` / `topups` start
                     function as the CLI, with the CLI's checks (and the consent checked again
                     against a fresh read of the group, before anything is sent)

Nothing here is Starlette: the pages render these, tests call them directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Final

from lf_bulk import bulk, fleet, lookups, quota, renewals, runs, topups
from lf_bulk import catalogue as _registers_the_plans_reporter  # noqa: F401
from lf_bulk.client import LinksfieldClient
from lf_bulk.errors import InputError, PlanRefused
from lf_bulk.journal import Journal
from lf_bulk.models import InputCounts, Operation, OutcomeCode
from lf_bulk.reconcile import GroupRemovals, over_ratio
from lf_bulk.reports import ItemOutcome
from lf_bulk.settings import DEFAULT_MAX_REMOVAL_RATIO, Settings
from lf_bulk.sources import InputTable

SHOWN_PLAN_ROWS: Final = 1000
WOULD_LOOK_UP: Final = "would_look_up"
WOULD_CREATE: Final = str(OutcomeCode.WOULD_CREATE)


class Action(StrEnum):
    """What the New job page can do; each is one CLI command's library call."""

    ADD = "add"  # sims add
    REMOVE = "remove"  # sims remove
    VERIFY = "verify"  # sims verify
    STATUS = "status"  # sims status (the fleet workbook)
    RENEWALS_CANCEL = "renewals_cancel"  # renewals cancel --yes
    TOPUPS = "topups"  # orders create

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def needs_group(self) -> bool:
        return self in (Action.ADD, Action.REMOVE)

    @property
    def reads_orders(self) -> bool:
        """The file is an orders file (columns iccid, package_code, amount...), not a SIM list."""
        return self is Action.TOPUPS

    @property
    def operation(self) -> Operation:
        return Operation.ADD if self is Action.ADD else Operation.REMOVE

    @property
    def lookup_kind(self) -> lookups.LookupKind:
        return _KINDS[self]


_LABELS: Final = {
    Action.ADD: "Add SIMs to a group",
    Action.REMOVE: "Remove SIMs from a group",
    Action.VERIFY: "Verify cards",
    Action.STATUS: "Fleet status workbook",
    Action.RENEWALS_CANCEL: "Cancel automatic renewals",
    Action.TOPUPS: "Create top-up orders",
}
_KINDS: Final = {
    Action.VERIFY: lookups.LookupKind.VERIFY,
    Action.STATUS: lookups.LookupKind.STATUS,
    Action.RENEWALS_CANCEL: lookups.LookupKind.CANCEL_RENEWAL,
    Action.TOPUPS: lookups.LookupKind.CREATE_ORDER,
}


@dataclass(frozen=True)
class RemovalGuard:
    """The mass-removal guard's numbers for a removal from one group (reconcile's guard)."""

    group_id: str
    members: int
    removals: int
    max_ratio: float = DEFAULT_MAX_REMOVAL_RATIO

    @property
    def removal(self) -> GroupRemovals:
        return GroupRemovals(self.group_id, self.members, self.removals)

    @property
    def tripped(self) -> bool:
        return bool(over_ratio([self.removal], self.max_ratio))

    @property
    def percent(self) -> str:
        return f"{float(self.removal.ratio) * 100:.4g}%"


@dataclass(frozen=True)
class JobPlan:
    action: Action
    group_id: str
    counts: InputCounts
    items: Sequence[ItemOutcome]
    """The per-row plan (at most `SHOWN_PLAN_ROWS` rows)."""
    outcomes: dict[str, int]
    """Planned outcome -> rows."""
    calls: int
    quota: quota.QuotaPlan | None
    to_change: int = 0
    already: int = 0
    members_before: int | None = None
    guard: RemovalGuard | None = None
    totals: dict[str, tuple[int, Decimal]] = field(default_factory=dict)
    """Top-ups: orders and exact amount per currency."""
    report_dir: Path | None = None
    """Where the plan was written as a report (add/remove, top-ups), if it was."""

    @property
    def consent(self) -> int | None:
        """The number the user must type to confirm; None when the Confirm button is enough."""
        if self.action is Action.REMOVE:
            return self.to_change if self.guard is not None and self.guard.tripped else None
        if self.action in (Action.RENEWALS_CANCEL, Action.TOPUPS):
            return self.counts.valid
        return None

    @property
    def more_rows(self) -> int:
        return max(0, self.counts.input_rows - len(self.items))


def _guard(group_id: str, plan: bulk.DryRunPlan) -> RemovalGuard:
    return RemovalGuard(group_id, plan.members_before, plan.to_change)


def plan_job(
    action: Action,
    client: runs.Lazy[LinksfieldClient],
    settings: Settings,
    rows: InputTable | topups.OrderInput,
    *,
    group_id: str = "",
    skip_invalid: bool = False,
    report_dir: Path | None = None,
) -> JobPlan:
    """What `action` would do with `rows`, from read-only calls only (the CLI's --dry-run where
    it has one). Raises what the CLI raises: invalid rows without `skip_invalid`, an unknown
    group, a plan with no valid row."""
    if isinstance(rows, topups.OrderInput):
        return _plan_orders(
            client, settings, rows, skip_invalid=skip_invalid, report_dir=report_dir
        )
    if action.needs_group:
        planned = runs.dry_run(
            client, rows, action.operation, group_id, skip_invalid=skip_invalid,
            report_dir=report_dir,
        )  # fmt: skip
        plan = planned.plan
        calls = quota.calls_for_bulk(plan.counts.valid, runs.DEFAULT_BATCH_SIZE)
        return JobPlan(
            action, group_id, plan.counts, plan.items[:SHOWN_PLAN_ROWS], _count(plan.items),
            calls, quota.client_plan(runs._get(client), calls, check=False),
            to_change=plan.to_change, already=plan.goal_already_met,
            members_before=plan.members_before,
            guard=_guard(group_id, plan) if action is Action.REMOVE else None,
            report_dir=planned.report_dir,
        )  # fmt: skip
    counts = rows.counts
    _refuse_unsendable(counts, rows.source, skip_invalid)
    items = [
        ItemOutcome(
            row.row,
            row.iccid if row.reason is None else row.raw,
            WOULD_LOOK_UP if row.reason is None else _rejected(row.reason),
            "" if row.reason is None else str(row.reason),
        )
        for row in rows.rows[:SHOWN_PLAN_ROWS]
    ]
    calls = counts.valid * len(lookups.CALLS[action.lookup_kind])
    outcomes = {WOULD_LOOK_UP: counts.valid}
    if counts.invalid:
        outcomes[str(OutcomeCode.INVALID)] = counts.invalid
    if counts.duplicates:
        outcomes[str(OutcomeCode.DUPLICATE)] = counts.duplicates
    return JobPlan(
        action, "", counts, items, outcomes, calls,
        quota.client_plan(runs._get(client), calls, check=False), to_change=counts.valid,
    )  # fmt: skip


def _rejected(reason: str) -> str:
    return str(OutcomeCode.DUPLICATE if reason == "duplicate" else OutcomeCode.INVALID)


def _count(items: Sequence[ItemOutcome]) -> dict[str, int]:
    counted: dict[str, int] = {}
    for item in items:
        counted[item.outcome] = counted.get(item.outcome, 0) + 1
    return counted


def _refuse_unsendable(counts: InputCounts, source: str, skip_invalid: bool) -> None:
    """The start functions' own refusal, before any call: rejected rows, or no valid row."""
    rejected = counts.invalid + counts.duplicates
    if rejected and not skip_invalid:
        raise InputError(
            f"{rejected} row(s) cannot be sent ({counts.invalid} invalid, {counts.duplicates} "
            "duplicates): fix the file, or go on with the valid rows only (--skip-invalid). "
            "Nothing was sent",
            path=source,
        )
    if not counts.valid:
        raise InputError(
            f"no valid row to send ({counts.invalid} invalid, {counts.duplicates} duplicates); "
            "nothing was sent",
            path=source,
        )


def _plan_orders(
    client: runs.Lazy[LinksfieldClient],
    settings: Settings,
    order_input: topups.OrderInput,
    *,
    skip_invalid: bool,
    report_dir: Path | None,
) -> JobPlan:
    counts = order_input.counts
    _refuse_unsendable(counts, order_input.source, skip_invalid)
    plan = topups.plan_orders(client, settings, order_input, report_dir=report_dir)
    items = [
        ItemOutcome(
            r.row,
            r.shown_iccid,
            WOULD_CREATE if r.top_up is not None else str(r.outcome),
            r.reason_code,
            r.reason,
        )
        for r in order_input.rows[:SHOWN_PLAN_ROWS]
    ]
    calls = counts.valid * len(lookups.CALLS[lookups.LookupKind.CREATE_ORDER])
    return JobPlan(
        Action.TOPUPS, "", counts, items, _count(items), calls,
        quota.client_plan(runs._get(client), calls, check=False), to_change=counts.valid,
        totals=plan.totals, report_dir=plan.report_dir,
    )  # fmt: skip


def check_consent(expected: int | None, typed: str) -> None:
    """Refuse (PlanRefused, nothing sent) unless `typed` is the number `expected`."""
    if expected is None:
        return
    if typed.strip().replace(",", "") != str(expected):
        raise PlanRefused(
            f"not confirmed: type {expected} (the number of SIMs this job changes) to confirm. "
            "Nothing was sent"
        )


# ---------------------------------------------------------------- the jobs a Confirm launches

Job = Callable[[runs.ProgressFactory, runs.Say], runs.RunResult]


def job_for(
    action: Action,
    journal: Callable[[], Journal],
    client: Callable[[], LinksfieldClient],
    settings: Settings,
    rows: InputTable | topups.OrderInput,
    *,
    group_id: str = "",
    skip_invalid: bool = False,
    consent: str = "",
    report_dir: Path | None = None,
) -> Job:
    """The job Confirm launches for `action`: the CLI command's own start function.

    `journal` opens a journal for the job's thread (closed when the job ends). A removal's
    consent is checked against the group as it is when the job starts, not as it was planned.
    """

    def run(progress: runs.ProgressFactory, say: runs.Say) -> runs.RunResult:
        with lazy_journal(journal) as open_once:
            return _start(action, open_once, client, settings, rows, group_id=group_id,
                          skip_invalid=skip_invalid, consent=consent, report_dir=report_dir,
                          progress=progress, say=say)  # fmt: skip

    return run


@contextmanager
def lazy_journal(opener: Callable[[], Journal]) -> Iterator[Callable[[], Journal]]:
    """A journal opener for the library's lazy `journal`: opened once, on first use, and
    closed when the block ends (a job's thread owns its journal connection)."""
    opened: list[Journal] = []

    def open_once() -> Journal:
        if not opened:
            opened.append(opener())
        return opened[0]

    try:
        yield open_once
    finally:
        for each in opened:
            each.close()


def group_status_job(
    group_id: str,
    journal: Callable[[], Journal],
    client: Callable[[], LinksfieldClient],
    settings: Settings,
    *,
    report_dir: Path | None = None,
) -> Job:
    """`lf-bulk sims status --group GROUP`: the fleet workbook of every SIM in the group."""

    def run(progress: runs.ProgressFactory, say: runs.Say) -> runs.RunResult:
        pairs = fleet.member_rows(client(), [group_id])
        say(f"{len(pairs)} SIMs in {group_id}")
        with lazy_journal(journal) as open_once:
            return lookups.start_lookup(
                open_once, client, settings, pairs, lookups.LookupKind.STATUS, options={},
                report_dir=report_dir, progress=progress, say=say,
            )  # fmt: skip

    return run


def _start(
    action: Action,
    journal: Callable[[], Journal],
    client: Callable[[], LinksfieldClient],
    settings: Settings,
    rows: InputTable | topups.OrderInput,
    *,
    group_id: str,
    skip_invalid: bool,
    consent: str,
    report_dir: Path | None,
    progress: runs.ProgressFactory,
    say: runs.Say,
) -> runs.RunResult:
    if isinstance(rows, topups.OrderInput):
        check_consent(rows.counts.valid, consent)
        return topups.start_orders(
            journal, client, settings, rows, skip_invalid=skip_invalid, report_dir=report_dir,
            progress=progress, say=say,
        )  # fmt: skip
    if action.needs_group:
        if action is Action.REMOVE:
            api = client()
            bulk.require_group(api, group_id)
            fresh = bulk.dry_run_plan(
                api, rows, Operation.REMOVE, group_id, runs.DEFAULT_BATCH_SIZE
            )
            guard = _guard(group_id, fresh)
            if guard.tripped:
                check_consent(fresh.to_change, consent)
        return runs.start(
            journal, client, settings, rows, action.operation, group_id,
            skip_invalid=skip_invalid, report_dir=report_dir, progress=progress, say=say,
        )  # fmt: skip
    if action is Action.RENEWALS_CANCEL:
        check_consent(rows.counts.valid, consent)
        return renewals.start_cancel(
            journal, client, settings, rows, yes=True, report_dir=report_dir,
            skip_invalid=skip_invalid, progress=progress, say=say,
        )  # fmt: skip
    return lookups.start_lookup(
        journal, client, settings, rows, action.lookup_kind, options={},
        report_dir=report_dir, skip_invalid=skip_invalid, progress=progress, say=say,
    )  # fmt: skip
