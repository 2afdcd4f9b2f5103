"""The fleet's commercial state (`sims status`): flags per SIM, the fleet workbook, its exit code.

    rows = fleet_rows(answers, today, expiring_within=7)   # pure: answers in, typed rows out
    report = build_report(answers, today, expiring_within=7, source="G1000001")
    write_fleet(Path("fleet.xlsx"), report)                  # or .csv: the Fleet sheet alone
    report.exit_code                                         # 0, 4 flagged, 3 failed, 5 pending

A SIM's flags, in this order (design notes §6):

    no_plan        nothing in use and nothing bought-not-started
    pending_only   bought, not started, and nothing in use
    expiring       the in-use plan that runs longest ends within `expiring_within` days
    card_inactive  the card's status is not ACTIVE (or the API said CARD_INACTIVE)
    not_found      the API does not know the card, or it is another partner's (no other flag)

A look-up that failed or did not run yet knows nothing: no flag, its outcome says why. Dates are
the API's `yyyy-MM-dd` text read as dates; an in-use plan without one falls back on its
`remainingDays`. The workbook: Summary (facts, counts per flag with a chart, counts per group),
Fleet (one row per SIM), Not found (unknown and foreign cards, and input rows that were never
looked up: invalid or duplicate, with their reason). ICCIDs are text cells; `expire_date` a date.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Final

from lf_bulk import wire
from lf_bulk.api_values import HeldPlan, MemberPage
from lf_bulk.client import LinksfieldClient
from lf_bulk.errors import InputError
from lf_bulk.exitcodes import ExitCode
from lf_bulk.files import atomic_file, neutralise
from lf_bulk.lookups import LookupKind, LookupRun, SimAnswers, default_reporter, register_reporter
from lf_bulk.models import CardStatus, HeldStatus, OutcomeCode
from lf_bulk.xlsx import Column, Sheet, Summary, Table, write_workbook

__all__ = [
    "DEFAULT_EXPIRING_WITHIN",
    "FLEET_COLUMNS",
    "Flag",
    "FleetReport",
    "FleetRow",
    "NotFoundRow",
    "api_date",
    "build_report",
    "flags_of",
    "fleet_rows",
    "member_rows",
    "report_status",
    "write_fleet",
]

DEFAULT_EXPIRING_WITHIN: Final = 7
OPTION_OUTPUT: Final = "output"
"""`options` key of a look-up run: the absolute path of the workbook (or .csv) to write."""
OPTION_EXPIRING_WITHIN: Final = "expiring_within"


class Flag(StrEnum):
    NO_PLAN = "no_plan"
    PENDING_ONLY = "pending_only"
    EXPIRING = "expiring"
    CARD_INACTIVE = "card_inactive"
    NOT_FOUND = "not_found"


# The Vshop codes of a card that is not ours to look at (unknown, or another partner's).
NOT_FOUND_CODES: Final = frozenset({wire.VSHOP_CARD_NOT_FOUND, wire.VSHOP_CARD_NOT_OWNED})

# Rows that never reached the API: they belong on the Not found sheet, not the Fleet sheet.
NOT_LOOKED_UP: Final = frozenset({OutcomeCode.INVALID, OutcomeCode.DUPLICATE})
KNOWS_NOTHING: Final = frozenset({OutcomeCode.FAILED, OutcomeCode.PENDING, *NOT_LOOKED_UP})

NO_GROUP: Final = "(none)"
"""The per-group table's label for SIMs read from a file, which names no group."""

_DATE_FORMATS: Final = ("%Y-%m-%d", "%Y.%m.%d", "%Y/%m/%d")


def api_date(text: str) -> date | None:
    """An API date (`yyyy-MM-dd`; `yyyy.MM.dd` as renewals write it) or None when absent/unreadable."""
    text = text.strip()
    for form in _DATE_FORMATS:
        try:
            return datetime.strptime(text, form).date()
        except ValueError:
            continue
    return None


def is_not_found(answers: SimAnswers) -> bool:
    return answers.outcome == OutcomeCode.NOT_FOUND or (
        answers.card is None and answers.reason_code in NOT_FOUND_CODES
    )


def _plans(answers: SimAnswers, status: HeldStatus) -> list[HeldPlan]:
    return [plan for plan in answers.held or () if plan.status == status]


def _ends(plan: HeldPlan, today: date) -> date | None:
    ends = api_date(plan.expire_date)
    if ends is None and plan.remaining_days is not None:
        ends = today + timedelta(days=plan.remaining_days)
    return ends


def _longest_in_use(answers: SimAnswers, today: date) -> tuple[HeldPlan | None, date | None]:
    """The plan in use that runs longest (a SIM is covered until it ends) and its end."""
    best: tuple[HeldPlan | None, date | None] = (None, None)
    for plan in _plans(answers, HeldStatus.IN_USE):
        ends = _ends(plan, today)
        if best[0] is None or (ends is not None and (best[1] is None or ends > best[1])):
            best = (plan, ends)
    return best


def flags_of(answers: SimAnswers, today: date, expiring_within: int) -> list[Flag]:
    """The flags of one SIM's answers, in `Flag` order (see the module docstring)."""
    if is_not_found(answers):
        return [Flag.NOT_FOUND]
    if answers.outcome in KNOWS_NOTHING:
        return []
    flags: list[Flag] = []
    if answers.held is not None:
        in_use, ends = _longest_in_use(answers, today)
        if in_use is None:
            pending = _plans(answers, HeldStatus.NOT_STARTED)
            flags.append(Flag.PENDING_ONLY if pending else Flag.NO_PLAN)
        elif ends is not None and (ends - today).days <= expiring_within:
            flags.append(Flag.EXPIRING)
    card = answers.card
    inactive = card is not None and card.card_status != CardStatus.ACTIVE
    if inactive or answers.reason_code == wire.VSHOP_CARD_INACTIVE:
        flags.append(Flag.CARD_INACTIVE)
    return flags


@dataclass(frozen=True)
class FleetRow:
    """One SIM on the Fleet sheet."""

    row: int
    iccid: str
    group_id: str
    card_status: str
    plan_in_use: str
    expire_date: date | None
    remaining_days: int | None
    pending_plans: str
    auto_renewal: str
    flags: tuple[Flag, ...]
    outcome: str
    reason: str

    def values(self) -> list[object]:
        return [
            self.iccid,
            self.group_id,
            self.card_status,
            self.plan_in_use,
            self.expire_date,
            self.remaining_days,
            self.pending_plans,
            self.auto_renewal,
            " ".join(self.flags),
            self.outcome,
            self.reason,
        ]


FLEET_COLUMNS: Final = (
    Column("iccid", "text", width=24),
    Column("group_id", "text", width=14),
    Column("card_status", "text", width=12),
    Column("plan_in_use", "text", width=30),
    Column("expire_date", "date", width=13),
    Column("remaining_days", "int", width=16),
    Column("pending_plans", "text", width=30),
    Column("auto_renewal", "text", width=30),
    Column("flags", "text", width=28),
    Column("outcome", "text", width=12),
    Column("reason", "text", width=40),
)
"""The design notes' columns, then the look-up's outcome and reason (why a row knows nothing)."""


def fleet_row(answers: SimAnswers, today: date, expiring_within: int) -> FleetRow:
    in_use, ends = _longest_in_use(answers, today)
    remaining = None
    if in_use is not None:
        remaining = in_use.remaining_days
        if remaining is None and ends is not None:
            remaining = (ends - today).days
    pending = _plans(answers, HeldStatus.NOT_STARTED)
    return FleetRow(
        row=answers.row,
        iccid=answers.iccid,
        group_id=answers.group_id,
        card_status=answers.card.card_status if answers.card is not None else "",
        plan_in_use=in_use.name if in_use is not None else "",
        expire_date=ends,
        remaining_days=remaining,
        pending_plans="; ".join(plan.name for plan in pending),
        auto_renewal=answers.renewal.plan_name if answers.renewal is not None else "",
        flags=tuple(flags_of(answers, today, expiring_within)),
        outcome=answers.outcome,
        reason=answers.reason,
    )


def fleet_rows(
    answers: Iterable[SimAnswers], today: date, expiring_within: int = DEFAULT_EXPIRING_WITHIN
) -> list[FleetRow]:
    """One row per SIM that was (or is to be) looked up, in input order."""
    return [fleet_row(a, today, expiring_within) for a in answers if a.outcome not in NOT_LOOKED_UP]


@dataclass(frozen=True)
class NotFoundRow:
    row: int
    iccid: str
    group_id: str
    outcome: str
    reason_code: str
    reason: str


NOT_FOUND_COLUMNS: Final = (
    Column("row", "int", width=8),
    Column("iccid", "text", width=24),
    Column("group_id", "text", width=14),
    Column("outcome", "text", width=12),
    Column("reason_code", "text", width=18),
    Column("reason", "text", width=50),
)


def not_found_rows(answers: Iterable[SimAnswers]) -> list[NotFoundRow]:
    """Cards the API does not know (or that are not ours), and rows never looked up."""
    return [
        NotFoundRow(a.row, a.iccid, a.group_id, a.outcome, a.reason_code, a.reason)
        for a in answers
        if a.outcome in NOT_LOOKED_UP or is_not_found(a)
    ]


@dataclass(frozen=True)
class FleetReport:
    source: str
    today: date
    expiring_within: int
    rows: list[FleetRow]
    not_found: list[NotFoundRow]
    outcomes: dict[str, int]
    """Input rows per look-up outcome (invalid and duplicate rows included)."""
    oldest_answer: datetime | None = None
    run_id: str = ""

    @property
    def flag_counts(self) -> dict[Flag, int]:
        counted = Counter(flag for row in self.rows for flag in row.flags)
        return {flag: counted.get(flag, 0) for flag in Flag}

    @property
    def flagged(self) -> int:
        return sum(1 for row in self.rows if row.flags)

    def by_group(self) -> list[list[object]]:
        """Per group: SIMs, flagged, then the count of each flag."""
        groups: dict[str, list[FleetRow]] = {}
        for row in self.rows:
            groups.setdefault(row.group_id, []).append(row)
        table: list[list[object]] = []
        for group_id in sorted(groups):
            rows = groups[group_id]
            counted = Counter(flag for row in rows for flag in row.flags)
            table.append(
                [group_id or NO_GROUP, len(rows), sum(1 for r in rows if r.flags)]
                + [counted.get(flag, 0) for flag in Flag]
            )
        return table

    @property
    def exit_code(self) -> ExitCode:
        """5 not finished, 3 some look-ups failed, 4 some SIM flagged, else 0."""
        if self.outcomes.get(OutcomeCode.PENDING, 0):
            return ExitCode.NOT_FINISHED
        if self.outcomes.get(OutcomeCode.FAILED, 0):
            return ExitCode.SOME_FAILED
        if self.flagged:
            return ExitCode.DRIFT
        return ExitCode.OK

    def summary_line(self) -> str:
        counts = self.flag_counts
        flags = ", ".join(f"{flag} {n}" for flag, n in counts.items() if n) or "none"
        failed = self.outcomes.get(OutcomeCode.FAILED, 0)
        pending = self.outcomes.get(OutcomeCode.PENDING, 0)
        tail = (f", {failed} failed" if failed else "") + (
            f", {pending} not looked up yet" if pending else ""
        )
        return f"{len(self.rows)} SIMs, {self.flagged} flagged ({flags}){tail}"

    def to_json(self) -> dict[str, object]:
        return {
            "run_id": self.run_id,
            "source": self.source,
            "today": self.today.isoformat(),
            "expiring_within": self.expiring_within,
            "sims": len(self.rows),
            "flagged": self.flagged,
            "flags": {str(flag): n for flag, n in self.flag_counts.items()},
            "outcomes": dict(self.outcomes),
            "exit_code": int(self.exit_code),
        }


def build_report(
    answers: Sequence[SimAnswers],
    today: date,
    expiring_within: int = DEFAULT_EXPIRING_WITHIN,
    *,
    source: str = "",
    run_id: str = "",
) -> FleetReport:
    fetched = [a.fetched_at for a in answers if a.fetched_at is not None]
    oldest = (
        datetime.fromtimestamp(min(fetched), UTC).replace(tzinfo=None, microsecond=0)
        if fetched
        else None
    )
    return FleetReport(
        source=source,
        today=today,
        expiring_within=expiring_within,
        rows=fleet_rows(answers, today, expiring_within),
        not_found=not_found_rows(answers),
        outcomes=dict(Counter(a.outcome for a in answers)),
        oldest_answer=oldest,
        run_id=run_id,
    )


_GROUP_COLUMNS: Final = (
    Column("group_id"),
    Column("SIMs", "int"),
    Column("flagged", "int"),
    *(Column(str(flag), "int") for flag in Flag),
)


def write_fleet(path: Path, report: FleetReport) -> None:
    """The fleet workbook (.xlsx), or the Fleet sheet alone (.csv), written atomically."""
    if path.suffix.lower() == ".csv":
        write_fleet_csv(path, report.rows)
        return
    facts: list[tuple[str, object]] = [
        ("Run", report.run_id),
        ("Source", report.source),
        ("Today (UTC)", report.today),
        ("Expiring within (days)", report.expiring_within),
        ("SIMs", len(report.rows)),
        ("Flagged", report.flagged),
        *((f"Look-ups {outcome}", n) for outcome, n in sorted(report.outcomes.items())),
        ("Oldest answer (UTC)", report.oldest_answer),
    ]
    summary = Summary(
        title="lf-bulk fleet status",
        facts=facts,
        counts=[(str(flag), n) for flag, n in report.flag_counts.items()],
        counts_header=("Flag", "SIMs"),
        tables=[Table("SIMs per group", _GROUP_COLUMNS, report.by_group())],
    )
    fleet = Sheet("Fleet", FLEET_COLUMNS, (row.values() for row in report.rows))
    missing = Sheet(
        "Not found",
        NOT_FOUND_COLUMNS,
        (
            [m.row, m.iccid, m.group_id, m.outcome, m.reason_code, m.reason]
            for m in report.not_found
        ),
        note="Cards the API does not know or that are another partner's, and input rows "
        "never looked up (invalid or duplicate).",
    )
    write_workbook(path, [fleet, missing], summary=summary)


def write_fleet_csv(path: Path, rows: Iterable[FleetRow]) -> None:
    """The Fleet sheet as CSV (UTF-8, a header line, no totals), written atomically."""
    with atomic_file(path, newline="") as out:
        writer = csv.writer(out)
        writer.writerow([column.header for column in FLEET_COLUMNS])
        for row in rows:
            writer.writerow(
                "" if value is None else value if isinstance(value, int) else neutralise(str(value))
                for value in row.values()
            )


def member_rows(
    client: LinksfieldClient,
    group_ids: Sequence[str] | None,
    *,
    on_page: Callable[[MemberPage], None] | None = None,
) -> list[tuple[str, str]]:
    """`(iccid, group_id)` of every member of `group_ids` (None: every group of the account).

    A group the account does not have is refused (`InputError`) before any member is read.
    """
    known = [group.group_id for group in client.list_groups()]
    wanted = known if group_ids is None else list(dict.fromkeys(group_ids))
    missing = [g for g in wanted if g not in known]
    if missing:
        raise InputError(
            f"group {', '.join(missing)} does not exist for this partner code; nothing was "
            "looked up (`lf-bulk groups list` shows the groups)"
        )
    pairs: dict[str, str] = {}
    for group_id in wanted:
        for iccid in client.list_members(group_id, on_page=on_page):
            pairs.setdefault(iccid, group_id)
    return list(pairs.items())


FLEET_JSON: Final = "fleet.json"


def summary_line_in(report_dir: Path) -> str:
    """The one-line summary the STATUS reporter left in `report_dir`; "" when there is none."""
    try:
        written = json.loads((report_dir / FLEET_JSON).read_text(encoding="utf-8"))
        flags = ", ".join(f"{flag} {n}" for flag, n in written["flags"].items() if n)
        return f"{written['sims']} SIMs, {written['flagged']} flagged ({flags or 'none'})"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return ""


def report_status(run: LookupRun) -> ExitCode:
    """The STATUS look-up's reporter: the fleet workbook at the run's output, its exit code."""
    options = run.options
    report = build_report(
        run.answers,
        datetime.now(UTC).date(),
        int(options.get(OPTION_EXPIRING_WITHIN, DEFAULT_EXPIRING_WITHIN)),
        source=run.record.source,
        run_id=run.record.run_id,
    )
    default_reporter(run)  # items.csv and summary.json: every input row, once
    output = Path(str(options.get(OPTION_OUTPUT) or run.report_dir / "fleet.xlsx"))
    write_fleet(output, report)
    text = json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n"
    with atomic_file(run.report_dir / FLEET_JSON) as out:
        out.write(text)
    return report.exit_code


register_reporter(LookupKind.STATUS, report_status)
