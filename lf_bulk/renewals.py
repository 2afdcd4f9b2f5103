"""Auto-renewals: `renewals list` (who renews, as a workbook) and `renewals cancel` (its report).

    write_renewal_list(Path("renewals.xlsx"), build_renewal_list(answers))   # .csv: Renewals only
    write_cancel_report(report_dir, answers, run_id=..., planned=False)

The list: sheet Renewals, one row per SIM with an active auto-renewal (`iccid`, `order_no`,
`pay_id`, `plan`, `periods`, `since` as a date, then `group_id`): as a .csv it is a valid input of
`renewals cancel`, which finds its `iccid` column. Sheet Without renewal: every other input row
and why (no renewal, not found, failed, not looked up yet, invalid, duplicate).

The cancel report, in the run's report folder: `items.csv` (`row, iccid, outcome, reason_code,
reason, order_no, pay_id, plan`, one line per input row; outcomes `cancelled`, `no_renewal`,
`failed`, `invalid`, `duplicate`, `pending`), `report.xlsx` (Summary with a chart, Items) and
`summary.json`. Without `yes` the run is a plan: a SIM whose renewal would be cancelled is
`pending` with reason code `WOULD_CANCEL`, and nothing was sent.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Final

from lf_bulk import runs
from lf_bulk.api_values import Renewal
from lf_bulk.exitcodes import ExitCode
from lf_bulk.files import atomic_file, make_folders, neutralise
from lf_bulk.fleet import OPTION_OUTPUT
from lf_bulk.journal import Journal
from lf_bulk.lookups import (
    OPTION_YES,
    LookupClient,
    LookupKind,
    LookupRun,
    SimAnswers,
    default_reporter,
    register_reporter,
    start_lookup,
)
from lf_bulk.models import OutcomeCode
from lf_bulk.settings import Settings
from lf_bulk.sources import InputTable
from lf_bulk.xlsx import Column, Sheet, Summary, write_workbook

__all__ = [
    "CANCEL_ITEM_FIELDS",
    "CANCEL_OUTCOMES",
    "RENEWAL_COLUMNS",
    "RenewalList",
    "build_renewal_list",
    "cancel_exit_code",
    "report_cancel",
    "report_renewals",
    "start_cancel",
    "write_cancel_report",
    "write_renewal_list",
]

WOULD_CANCEL: Final = "WOULD_CANCEL"

RENEWAL_COLUMNS: Final = (
    Column("iccid", "text", width=24),
    Column("order_no", "text", width=22),
    Column("pay_id", "text", width=22),
    Column("plan", "text", width=32),
    Column("periods", "int", width=9),
    Column("since", "date", width=12),
    Column("group_id", "text", width=14),
)

OTHER_COLUMNS: Final = (
    Column("row", "int", width=8),
    Column("iccid", "text", width=24),
    Column("group_id", "text", width=14),
    Column("outcome", "text", width=12),
    Column("reason_code", "text", width=18),
    Column("reason", "text", width=50),
)


def since_date(text: str) -> date | None:
    """A renewal's `subscriptionTime` (`yyyy.MM.dd`; `yyyy-MM-dd` too) as a date, else None."""
    for form in ("%Y.%m.%d", "%Y-%m-%d"):
        try:
            return datetime.strptime(text.strip(), form).date()
        except ValueError:
            continue
    return None


def renewal_values(renewal: Renewal, iccid: str, group_id: str) -> list[object]:
    # The ICCID as the input (or the group) gave it, not as the API echoed it.
    return [
        iccid,
        renewal.order_no,
        renewal.pay_id,
        renewal.plan_name,
        renewal.periods,
        since_date(renewal.subscription_time),
        group_id,
    ]


@dataclass(frozen=True)
class RenewalList:
    source: str
    renewing: list[list[object]]
    others: list[list[object]]
    outcomes: dict[str, int]
    run_id: str = ""

    @property
    def exit_code(self) -> ExitCode:
        """5 while any row is pending; 3 when a look-up failed or a card is unknown; else 0."""
        if self.outcomes.get(OutcomeCode.PENDING):
            return ExitCode.NOT_FINISHED
        if self.outcomes.get(OutcomeCode.FAILED) or self.outcomes.get(OutcomeCode.NOT_FOUND):
            return ExitCode.SOME_FAILED
        return ExitCode.OK

    def summary_line(self) -> str:
        rows = len(self.renewing) + len(self.others)
        return f"{len(self.renewing)} SIM(s) renew automatically, of {rows} row(s)"


def build_renewal_list(
    answers: Sequence[SimAnswers], *, source: str = "", run_id: str = ""
) -> RenewalList:
    renewing: list[list[object]] = []
    others: list[list[object]] = []
    for sim in answers:
        if sim.renewal is not None and sim.outcome not in _NOT_LOOKED_UP:
            renewing.append(renewal_values(sim.renewal, sim.iccid, sim.group_id))
        else:
            outcome = sim.outcome
            if outcome == OutcomeCode.LOOKED_UP:
                outcome = OutcomeCode.NO_RENEWAL
            others.append([sim.row, sim.iccid, sim.group_id, outcome, sim.reason_code, sim.reason])
    return RenewalList(
        source=source,
        renewing=renewing,
        others=others,
        outcomes=dict(Counter(a.outcome for a in answers)),
        run_id=run_id,
    )


_NOT_LOOKED_UP: Final = frozenset({OutcomeCode.INVALID, OutcomeCode.DUPLICATE})


def write_renewal_list(path: Path, listing: RenewalList) -> None:
    """The workbook (.xlsx), or the Renewals sheet alone (.csv), written atomically."""
    if path.suffix.lower() == ".csv":
        with atomic_file(path, newline="") as out:
            writer = csv.writer(out)
            writer.writerow([column.header for column in RENEWAL_COLUMNS])
            writer.writerows([_csv_cell(v) for v in row] for row in listing.renewing)
        return
    counts = Counter(str(row[3]) for row in listing.others)
    summary = Summary(
        title="lf-bulk auto-renewals",
        facts=[
            ("Run", listing.run_id),
            ("Source", listing.source),
            ("SIMs renewing", len(listing.renewing)),
            ("Other rows", len(listing.others)),
        ],
        counts=[("renewing", len(listing.renewing)), *sorted(counts.items())],
        counts_header=("SIMs", "Count"),
    )
    write_workbook(
        path,
        [
            Sheet("Renewals", RENEWAL_COLUMNS, listing.renewing),
            Sheet("Without renewal", OTHER_COLUMNS, listing.others),
        ],
        summary=summary,
    )


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, int | date):
        return str(value)
    return neutralise(str(value))


def report_renewals(run: LookupRun) -> ExitCode:
    """The RENEWALS look-up's reporter: the list at the run's output; its exit code."""
    listing = build_renewal_list(run.answers, source=run.record.source, run_id=run.record.run_id)
    default_reporter(run)  # items.csv and summary.json: every input row, once
    output = run.options.get(OPTION_OUTPUT) or run.report_dir / "renewals.xlsx"
    write_renewal_list(Path(str(output)), listing)
    return listing.exit_code


# ---------------------------------------------------------------- cancel

CANCEL_OUTCOMES: Final = (
    OutcomeCode.CANCELLED,
    OutcomeCode.NO_RENEWAL,
    OutcomeCode.FAILED,
    OutcomeCode.INVALID,
    OutcomeCode.DUPLICATE,
    OutcomeCode.PENDING,
)
CANCEL_ITEM_FIELDS: Final = (
    "row", "iccid", "outcome", "reason_code", "reason", "order_no", "pay_id", "plan",
)  # fmt: skip
_ITEM_COLUMNS: Final = (
    Column("row", "int", width=8),
    Column("iccid", "text", width=24),
    Column("outcome", "text", width=12),
    Column("reason_code", "text", width=18),
    Column("reason", "text", width=44),
    Column("order_no", "text", width=22),
    Column("pay_id", "text", width=22),
    Column("plan", "text", width=30),
)


def cancel_item(sim: SimAnswers, *, planned: bool) -> list[object]:
    renewal = sim.renewal
    outcome, code, reason = sim.outcome, sim.reason_code, sim.reason
    if planned and outcome in (OutcomeCode.PENDING, OutcomeCode.LOOKED_UP):
        if renewal is not None:
            outcome, code = OutcomeCode.PENDING, WOULD_CANCEL
            reason = "would be cancelled with --yes; nothing was sent"
        elif outcome == OutcomeCode.LOOKED_UP:
            outcome = OutcomeCode.NO_RENEWAL
    if outcome not in CANCEL_OUTCOMES:  # e.g. not_found: a card with nothing we could cancel
        outcome = OutcomeCode.FAILED
    order_no = renewal.order_no if renewal is not None else ""
    pay_id = renewal.pay_id if renewal is not None else ""
    plan = renewal.plan_name if renewal is not None else ""
    return [sim.row, sim.iccid, outcome, code, reason, order_no, pay_id, plan]


def cancel_exit_code(items: Sequence[Sequence[object]]) -> ExitCode:
    """5 while a row is pending (a plan's WOULD_CANCEL rows are its answer, not pending), 3 when
    any failed, else 0: a plan whose queries all came back is 0."""
    outcomes = {row[2] for row in items if row[3] != WOULD_CANCEL}
    if OutcomeCode.PENDING in outcomes:
        return ExitCode.NOT_FINISHED
    if OutcomeCode.FAILED in outcomes:
        return ExitCode.SOME_FAILED
    return ExitCode.OK


def write_cancel_report(
    report_dir: Path, answers: Sequence[SimAnswers], *, run_id: str, source: str, planned: bool
) -> ExitCode:
    """items.csv, report.xlsx and summary.json (last) in `report_dir`; the run's exit code."""
    items = [cancel_item(sim, planned=planned) for sim in answers]
    code = cancel_exit_code(items)
    make_folders(report_dir)
    with atomic_file(report_dir / "items.csv", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(CANCEL_ITEM_FIELDS)
        writer.writerows([_csv_cell(v) for v in row] for row in items)
    counted = Counter(str(row[2]) for row in items)
    outcomes = {str(o): counted.get(o, 0) for o in CANCEL_OUTCOMES}
    would = sum(1 for row in items if row[3] == WOULD_CANCEL)
    facts: list[tuple[str, object]] = [
        ("Run", run_id),
        ("Source", source),
        ("Mode", "plan only: nothing was sent" if planned else "cancelled"),
        ("Would cancel", would if planned else None),
        ("Exit code", int(code)),
    ]
    write_workbook(
        report_dir / "report.xlsx",
        [Sheet("Items", _ITEM_COLUMNS, items)],
        summary=Summary(f"lf-bulk renewals cancel {run_id}", facts, list(outcomes.items())),
    )
    summary = {
        "run_id": run_id,
        "operation": LookupKind.CANCEL_RENEWAL.value,
        "source": source,
        "planned": planned,
        "input_rows": len(items),
        "would_cancel": would,
        "outcomes": outcomes,
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "exit_code": int(code),
    }
    with atomic_file(report_dir / "summary.json") as out:
        out.write(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return code


def report_cancel(run: LookupRun) -> ExitCode:
    """The CANCEL_RENEWAL look-up's reporter (see the module docstring)."""
    return write_cancel_report(
        run.report_dir,
        run.answers,
        run_id=run.record.run_id,
        source=run.record.source,
        planned=not run.options.get(OPTION_YES),
    )


def start_cancel(
    journal: runs.Lazy[Journal],
    client: runs.Lazy[LookupClient],
    settings: Settings,
    rows: InputTable | Sequence[tuple[str, str]],
    *,
    yes: bool,
    report_dir: Path | None = None,
    skip_invalid: bool = False,
    timeout: float | None = None,
    progress: runs.ProgressFactory = runs.no_progress,
    say: runs.Say = runs._silent,
    run_id: str | None = None,
) -> runs.RunResult:
    """`renewals cancel`: a CANCEL_RENEWAL run; with `yes` the cancels are sent, otherwise only
    the plan is written. Every renewal is looked up afresh (a cached answer may be stale).
    `run_id`: the id to give the run (a worker's job chooses it when enqueued)."""
    return start_lookup(
        journal, client, settings, rows, LookupKind.CANCEL_RENEWAL, options={OPTION_YES: yes},
        max_age=0, report_dir=report_dir, skip_invalid=skip_invalid, timeout=timeout,
        progress=progress, say=say, run_id=run_id,
    )  # fmt: skip


register_reporter(LookupKind.RENEWALS, report_renewals)
register_reporter(LookupKind.CANCEL_RENEWAL, report_cancel)
