"""The bulk job as a library: from a validated input table to a journaled run, a dry-run plan,
and the reports of a run."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from lf_bulk.client import LinksfieldClient
from lf_bulk.engine import RETRYABLE_FAILURES
from lf_bulk.errors import InputError, InvalidRowsError, RejectedRow
from lf_bulk.exitcodes import ExitCode
from lf_bulk.iccid import EXPLANATIONS, Reason
from lf_bulk.journal import (
    FINISHED,
    INTERRUPTED,
    LOOKUP_KIND,
    NOT_FINISHED,
    ItemRecord,
    Journal,
    PlannedItem,
    RunRecord,
    new_run_id,
    utc_now,
)
from lf_bulk.models import InputCounts, Operation, OutcomeCode
from lf_bulk.reports import (
    DRY_RUN_OUTCOMES,
    OUTCOMES,
    WORKBOOK_PROCESS_ITEMS,
    ItemOutcome,
    RunSummary,
    StreamedRunReport,
    count_outcomes,
    write_run_report,
)
from lf_bulk.run_listing import run_lock_name as run_lock_name  # the lock of a run, one name
from lf_bulk.sources import InputRows, InputTable

log = logging.getLogger(__name__)
DEFAULT_REPORT_ROOT = Path("lf-bulk-reports")
VERIFIED_BY: Final = "verified_by"
"""Run details key of an add/remove run with `--verify`: the id of its VERIFY look-up run."""


VERIFIED_OUTCOMES: Final = (*OUTCOMES, OutcomeCode.REJECTED)
"""The outcomes of an add/remove run with `--verify`: a rejected card is never sent."""


@dataclass(frozen=True)
class Preset:
    """The outcome of a valid row decided before the run (a card `--verify` rejected)."""

    outcome: OutcomeCode
    reason_code: str
    reason: str


def planned_items(
    table: InputTable,
    operation: Operation,
    group_id: str,
    preset: Mapping[int, Preset] | None = None,
) -> list[PlannedItem]:
    """One item per input row; rows that will never be sent carry their outcome already
    (invalid, duplicate, or what `preset` says for their row number)."""
    decided = preset or {}
    rows = table.rows
    if isinstance(rows, InputRows) and not decided and len(rows):
        # The input kept as columns: no row object per valid row (a million of them).
        first = rows[0].row
        return [
            PlannedItem(number, iccid, operation, group_id)
            if reason is None
            else _refused_item(number, raw, reason, operation, group_id)
            for number, raw, iccid, reason in zip(
                range(first, first + len(rows)), rows.raws, rows.iccids, rows.reasons, strict=True
            )
        ]
    items = []
    for row in rows:
        if row.reason is None and row.row in decided:
            known = decided[row.row]
            items.append(
                PlannedItem(row.row, row.iccid, operation, group_id, outcome=known.outcome,
                            reason_code=known.reason_code, reason=known.reason)
            )  # fmt: skip
        elif row.reason is None:
            items.append(PlannedItem(row.row, row.iccid, operation, group_id))
        else:
            items.append(_refused_item(row.row, row.raw, row.reason, operation, group_id))
    return items


def _refused_item(
    number: int, raw: str, reason: Reason, operation: Operation, group_id: str
) -> PlannedItem:
    """The item of a row that will never be sent (invalid, duplicate)."""
    outcome = OutcomeCode.DUPLICATE if reason is Reason.DUPLICATE else OutcomeCode.INVALID
    return PlannedItem(
        number,
        raw,  # what the user typed: the normalised text of an invalid value helps no one
        operation,
        group_id,
        outcome=outcome,
        reason_code=str(reason),
        reason=EXPLANATIONS[reason],
    )


def rejected_rows(table: InputTable) -> list[RejectedRow]:
    return [
        RejectedRow(row.row, row.raw, str(row.reason))
        for row in table.rows
        if row.reason is not None
    ]


def report_dir_for(run_id: str, requested: Path | None) -> Path:
    return (requested or DEFAULT_REPORT_ROOT / run_id).absolute()


def _refused_outcomes(table: InputTable, operation: Operation, group_id: str) -> list[ItemOutcome]:
    """The rows that will never be sent (invalid, duplicate), with their reasons."""
    return [
        ItemOutcome(p.row, p.iccid, p.outcome, p.reason_code, p.reason)
        for p in planned_items(table, operation, group_id)
        if p.outcome
    ]


def _plan_outcomes(
    table: InputTable, operation: Operation, group_id: str, members: frozenset[str]
) -> list[ItemOutcome]:
    """Every row with what a run would do to it, given the group's current `members`."""
    adding = operation is Operation.ADD
    if adding:
        met, change = OutcomeCode.ALREADY_MEMBER, OutcomeCode.WOULD_ADD
    else:
        met, change = OutcomeCode.NOT_MEMBER, OutcomeCode.WOULD_REMOVE
    items = []
    for p in planned_items(table, operation, group_id):
        if p.outcome:
            items.append(ItemOutcome(p.row, p.iccid, p.outcome, p.reason_code, p.reason))
        else:
            goal_met = (p.iccid in members) == adding
            items.append(ItemOutcome(p.row, p.iccid, met if goal_met else change))
    return items


def _unsent_summary(
    run_id: str,
    operation: Operation,
    group_id: str,
    counts: InputCounts,
    items: Sequence[ItemOutcome],
    *,
    batches: int,
    exit_code: int,
    vocabulary: tuple[OutcomeCode, ...] = OUTCOMES,
) -> RunSummary:
    """The summary of a run that sent nothing (a dry run, or an input refused)."""
    now = utc_now()
    return RunSummary(
        run_id=run_id,
        operation=str(operation),
        group_id=group_id,
        input_rows=counts.input_rows,
        valid=counts.valid,
        invalid=counts.invalid,
        duplicates=counts.duplicates,
        batches=batches,
        outcomes=count_outcomes(items, vocabulary),
        started_at=now,
        finished_at=now,
        exit_code=exit_code,
        vocabulary=vocabulary,
    )


def refuse_invalid(
    table: InputTable, operation: Operation, group_id: str, report_dir: Path, run_id: str
) -> InvalidRowsError:
    """Write the report of an input that cannot be sent, and the error that says why."""
    items = _refused_outcomes(table, operation, group_id)
    summary = _unsent_summary(
        run_id,
        operation,
        group_id,
        table.counts,
        items,
        batches=0,
        exit_code=ExitCode.BAD_INPUT,
    )
    write_run_report(report_dir, items, summary)
    return InvalidRowsError(table.source, rejected_rows(table), str(report_dir))


def require_group(client: LinksfieldClient, group_id: str) -> None:
    """Refuse, before any run exists, a group the account does not have."""
    if group_id not in {group.group_id for group in client.list_groups()}:
        raise InputError(
            f"group {group_id} does not exist for this partner code; nothing was sent "
            f"(`lf-bulk groups list` shows the groups)"
        )


def start_run(
    journal: Journal,
    table: InputTable,
    operation: Operation,
    group_id: str,
    *,
    batch_size: int,
    report_dir: Path | None,
    endpoint: str,
    kind: str = "sims",
    run_id: str | None = None,
    preset: Mapping[int, Preset] | None = None,
    details: dict[str, Any] | None = None,
) -> str:
    run_id = run_id or new_run_id()
    return journal.create_run(
        run_id=run_id,
        kind=kind,
        operation=str(operation),
        group_id=group_id,
        items=planned_items(table, operation, group_id, preset),
        details=details,
        batch_size=batch_size,
        source=table.source,
        report_dir=str(report_dir_for(run_id, report_dir)),
        endpoint=endpoint,
        counts=table.counts,
    )


@dataclass(frozen=True)
class DryRunPlan:
    counts: InputCounts
    batches: int
    goal_already_met: int
    to_change: int
    members_before: int
    items: tuple[ItemOutcome, ...] = ()
    """Every input row with its planned outcome (DRY_RUN_OUTCOMES)."""


def dry_run_plan(
    client: LinksfieldClient,
    table: InputTable,
    operation: Operation,
    group_id: str,
    batch_size: int,
) -> DryRunPlan:
    """What a run would do, from read-only calls only."""
    members = frozenset(client.list_members(group_id))
    items = _plan_outcomes(table, operation, group_id, members)
    planned = Counter(item.outcome for item in items)
    met = planned[OutcomeCode.ALREADY_MEMBER] + planned[OutcomeCode.NOT_MEMBER]
    to_change = planned[OutcomeCode.WOULD_ADD] + planned[OutcomeCode.WOULD_REMOVE]
    return DryRunPlan(
        counts=table.counts,
        # A run sends every valid ICCID: the server, not this plan, has the last word.
        batches=-(-(met + to_change) // batch_size),
        goal_already_met=met,
        to_change=to_change,
        members_before=len(members),
        items=tuple(items),
    )


def write_dry_run_report(
    report_dir: Path,
    run_id: str,
    table: InputTable,
    operation: Operation,
    group_id: str,
    plan: DryRunPlan,
) -> Path:
    items = list(plan.items)
    summary = _unsent_summary(
        run_id,
        operation,
        group_id,
        plan.counts,
        items,
        batches=plan.batches,
        exit_code=ExitCode.OK,
        vocabulary=DRY_RUN_OUTCOMES,
    )
    extra = [
        ("dry run", "yes: nothing was sent"),
        ("members before", plan.members_before),
        ("goal already met", plan.goal_already_met),
        ("to change", plan.to_change),
    ]
    return write_run_report(report_dir, items, summary, extra_facts=extra)


def _item_outcome(i: ItemRecord) -> ItemOutcome:
    outcome = i.outcome or OutcomeCode.PENDING
    return ItemOutcome(i.row, i.iccid, outcome, i.reason_code, i.reason, i.request_id)


def _run_summary(
    journal: Journal, run: RunRecord, exit_code: int, outcomes: Counter[str]
) -> tuple[RunSummary, list[tuple[str, object]]]:
    """The summary of a run as the journal has it now, and its extra Summary-sheet facts."""
    run = journal.run(run.run_id)
    vocabulary = VERIFIED_OUTCOMES if run.details.get(VERIFIED_BY) else OUTCOMES
    sent_batches = [b for b in journal.batches(run.run_id) if b.request_id]
    summary = RunSummary(
        run_id=run.run_id,
        operation=run.operation,
        group_id=run.group_id,
        input_rows=run.input_rows,
        valid=run.valid,
        invalid=run.invalid,
        duplicates=run.duplicates,
        batches=len(sent_batches),
        outcomes=count_outcomes((), vocabulary) | dict(outcomes),
        started_at=run.started_at,
        finished_at=run.finished_at,
        exit_code=exit_code,
        vocabulary=vocabulary,
    )
    summary.to_json()  # an outcome outside the vocabulary fails here, before anything is written
    verified = run.details.get(VERIFIED_BY)
    return summary, [("Verified by run", str(verified))] if verified else []


def write_reports(journal: Journal, run: RunRecord, exit_code: int) -> Path:
    """The run's reports as the journal has them now, in the directory the run started with."""
    items = [_item_outcome(i) for i in journal.items(run.run_id)]
    summary, extra = _run_summary(journal, run, exit_code, Counter(item.outcome for item in items))
    return write_run_report(Path(run.report_dir), items, summary, extra_facts=extra)


class RunReporter:
    """A run's reports written while it is driven: after each batch the items that are final,
    from the first row on up to the first one still pending, go to a `StreamedRunReport`
    (batches are sent in row order and mostly finish in it), so that `finish` has only the
    last batches to write when the run ends.

    A reporter starts from the first row in every process: a resumed run writes its reports
    whole, from the journal, like one never interrupted. A run whose rows do not follow its
    items (none made from a file) is written at the end only. Streaming is a way to be quick,
    never a way to fail: when it cannot go on (the folder went away), `finish` writes the
    reports as `write_reports` does, and raises what that raises.
    """

    def __init__(self, journal: Journal, run_id: str) -> None:
        self.journal = journal
        self.run = journal.run(run_id)
        self._next_item = 0
        self._outcomes: Counter[str] = Counter()
        self._stream: StreamedRunReport | None = None
        if journal.rows_follow_item_ids(run_id):
            try:
                self._stream = StreamedRunReport(
                    Path(self.run.report_dir),
                    separate_process=self.run.valid >= WORKBOOK_PROCESS_ITEMS,
                )
            except OSError as error:
                log.info("run %s: reports written at the end (%s)", run_id, error)

    def advance(self) -> None:
        """Write the items that became final since the last call (up to the first pending)."""
        if self._stream is None:
            return
        self._add_rows(self.journal.final_report_rows_from(self.run.run_id, self._next_item))

    def finish(self, exit_code: int) -> Path:
        """Write what is left (pending items too) and the summary; return the report folder."""
        stream = self._stream
        if stream is None:
            return write_reports(self.journal, self.run, exit_code)
        self._add(
            [_item_outcome(i) for i in self.journal.items_from(self.run.run_id, self._next_item)]
        )
        if self._stream is None:  # it failed on the way
            return write_reports(self.journal, self.run, exit_code)
        summary, extra = _run_summary(self.journal, self.run, exit_code, self._outcomes)
        try:
            return stream.finish(summary, extra_facts=extra)
        except OSError:
            return write_reports(self.journal, self.run, exit_code)

    def abandon(self) -> None:
        """Give up streaming; the folder keeps what it had."""
        if self._stream is not None:
            self._stream.abandon()
            self._stream = None

    def _add(self, items: list[ItemOutcome]) -> None:
        self._add_rows(
            [(i.row, i.iccid, i.outcome, i.reason_code, i.reason, i.request_id) for i in items]
        )

    def _add_rows(self, rows: list[tuple[int, str, str, str, str, str]]) -> None:
        if not rows or self._stream is None:
            return
        try:
            self._stream.add_rows(rows)
        except OSError as error:
            log.info("run %s: reports written at the end (%s)", self.run.run_id, error)
            self.abandon()
            return
        self._next_item += len(rows)
        self._outcomes.update(row[2] for row in rows)


# ---------------------------------------------------------------- runs as people see them


def next_step(journal: Journal, run: RunRecord, shown: str) -> str:
    """The command that continues a run, or "" when there is none."""
    if shown in (INTERRUPTED, NOT_FINISHED):
        return f"lf-bulk runs resume {run.run_id}"
    retried = run.kind != LOOKUP_KIND  # a look-up is resumed or started again, never retried
    if shown == FINISHED and retried and journal.failure_count(run.run_id, RETRYABLE_FAILURES):
        return f"lf-bulk runs retry {run.run_id}"
    return ""
