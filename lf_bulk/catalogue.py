"""The plans the SIMs can buy (`sims plans`): the catalogue workbook and its exit code.

    report = build_catalogue(answers, source="sims.csv", area="欧洲")
    write_catalogue(Path("plans.xlsx"), report)       # or .csv: the Plans sheet alone

Sheets: Summary (facts, plans per area with a chart), Plans (one row per plan offered to any of
the SIMs: `package_code`, `name`, `area`, `data_mb`, `validity_days`, `price`, `currency`,
`auto_renewal`, `sims` = how many of the input SIMs can buy it) and By SIM (one row per SIM and
plan it can buy; one row with the outcome for a SIM with none, not found, failed or not looked
up, and for every invalid or duplicate input row, so that each input row is there).

A plan is the whole offer: the same package code offered at two prices is two rows, never one
price picked. Prices stay Decimal from the wire to the cell (and the CSV's exact digits).
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Final

from lf_bulk.api_values import PlanOffer
from lf_bulk.exitcodes import ExitCode
from lf_bulk.files import atomic_file, neutralise
from lf_bulk.fleet import OPTION_OUTPUT
from lf_bulk.lookups import (
    OPTION_AREA,
    LookupKind,
    LookupRun,
    SimAnswers,
    default_reporter,
    register_reporter,
)
from lf_bulk.models import OutcomeCode
from lf_bulk.xlsx import Column, Sheet, Summary, write_workbook

__all__ = [
    "BY_SIM_COLUMNS",
    "PLAN_COLUMNS",
    "Catalogue",
    "OfferedPlan",
    "build_catalogue",
    "exit_code_of",
    "report_plans",
    "write_catalogue",
]


PLAN_COLUMNS: Final = (
    Column("package_code", "text", width=20),
    Column("name", "text", width=32),
    Column("area", "text", width=14),
    Column("data_mb", "int", width=10),
    Column("validity_days", "int", width=14),
    Column("price", "money", width=12),
    Column("currency", "text", width=10),
    Column("auto_renewal", "text", width=13),
    Column("sims", "int", width=8),
)

BY_SIM_COLUMNS: Final = (
    Column("row", "int", width=8),
    Column("iccid", "text", width=24),
    Column("group_id", "text", width=14),
    Column("outcome", "text", width=12),
    Column("package_code", "text", width=20),
    Column("name", "text", width=32),
    Column("area", "text", width=14),
    Column("price", "money", width=12),
    Column("currency", "text", width=10),
    Column("reason", "text", width=40),
)


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


@dataclass(frozen=True)
class OfferedPlan:
    plan: PlanOffer
    sims: int

    def values(self) -> list[object]:
        p = self.plan
        return [
            p.package_code,
            p.name,
            p.area,
            p.data_mb,
            p.validity_days,
            p.price,
            p.currency,
            yes_no(p.auto_renewal),
            self.sims,
        ]


def _plan_order(plan: PlanOffer) -> tuple[str, str, str, str, Decimal]:
    return (plan.area, plan.name, plan.package_code, plan.currency, plan.price or Decimal(0))


def offered_plans(answers: Iterable[SimAnswers]) -> list[OfferedPlan]:
    """Every distinct offer, with the number of SIMs offered it, by area, name and code."""
    counted: Counter[PlanOffer] = Counter()
    for sim in answers:
        counted.update(set(sim.plans or ()))
    return [OfferedPlan(plan, counted[plan]) for plan in sorted(counted, key=_plan_order)]


def by_sim_rows(answers: Iterable[SimAnswers]) -> list[list[object]]:
    rows: list[list[object]] = []
    for sim in answers:
        head: list[object] = [sim.row, sim.iccid, sim.group_id, sim.outcome]
        if not sim.plans:
            rows.append([*head, "", "", "", None, "", sim.reason])
            continue
        for p in sorted(set(sim.plans), key=_plan_order):
            rows.append([*head, p.package_code, p.name, p.area, p.price, p.currency, ""])
    return rows


def exit_code_of(answers: Sequence[SimAnswers]) -> ExitCode:
    """5 while any row is pending; 3 when a look-up failed or a card is unknown; else 0."""
    outcomes = {a.outcome for a in answers}
    if OutcomeCode.PENDING in outcomes:
        return ExitCode.NOT_FINISHED
    if outcomes & {OutcomeCode.FAILED, OutcomeCode.NOT_FOUND}:
        return ExitCode.SOME_FAILED
    return ExitCode.OK


@dataclass(frozen=True)
class Catalogue:
    source: str
    area: str
    plans: list[OfferedPlan]
    by_sim: list[list[object]]
    outcomes: dict[str, int]
    exit_code: ExitCode
    run_id: str = ""

    def summary_line(self) -> str:
        where = f" in {self.area}" if self.area else ""
        sims = sum(self.outcomes.values())
        return f"{len(self.plans)} plan(s){where} offered to the {sims} input row(s)"


def build_catalogue(
    answers: Sequence[SimAnswers], *, source: str = "", area: str = "", run_id: str = ""
) -> Catalogue:
    return Catalogue(
        source=source,
        area=area,
        plans=offered_plans(answers),
        by_sim=by_sim_rows(answers),
        outcomes=dict(Counter(a.outcome for a in answers)),
        exit_code=exit_code_of(answers),
        run_id=run_id,
    )


def write_catalogue(path: Path, catalogue: Catalogue) -> None:
    """The catalogue workbook (.xlsx), or the Plans sheet alone (.csv), written atomically."""
    if path.suffix.lower() == ".csv":
        write_plans_csv(path, catalogue.plans)
        return
    per_area = Counter(offer.plan.area for offer in catalogue.plans)
    summary = Summary(
        title="lf-bulk plans the SIMs can buy",
        facts=[
            ("Run", catalogue.run_id),
            ("Source", catalogue.source),
            ("Area asked", catalogue.area or "every area"),
            ("Plans", len(catalogue.plans)),
            *((f"Rows {outcome}", n) for outcome, n in sorted(catalogue.outcomes.items())),
        ],
        counts=sorted(per_area.items()),
        counts_header=("Area", "Plans"),
    )
    plans = Sheet(
        "Plans",
        PLAN_COLUMNS,
        (offer.values() for offer in catalogue.plans),
        note="Prices are exact, as the API gave them; sims: how many of the input SIMs can buy it.",
    )
    by_sim = Sheet("By SIM", BY_SIM_COLUMNS, catalogue.by_sim)
    write_workbook(path, [plans, by_sim], summary=summary)


def write_plans_csv(path: Path, plans: Iterable[OfferedPlan]) -> None:
    """The Plans sheet as CSV: exact prices as plain digits, a header line, no totals."""
    with atomic_file(path, newline="") as out:
        writer = csv.writer(out)
        writer.writerow([column.header for column in PLAN_COLUMNS])
        for offer in plans:
            writer.writerow(_csv_cell(value) for value in offer.values())


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int):
        return str(value)
    return neutralise(str(value))


def report_plans(run: LookupRun) -> ExitCode:
    """The PLANS look-up's reporter: the catalogue at the run's output; its exit code."""
    catalogue = build_catalogue(
        run.answers,
        source=run.record.source,
        area=str(run.options.get(OPTION_AREA) or ""),
        run_id=run.record.run_id,
    )
    default_reporter(run)  # items.csv and summary.json: every input row, once
    write_catalogue(
        Path(str(run.options.get(OPTION_OUTPUT) or run.report_dir / "plans.xlsx")), catalogue
    )
    return catalogue.exit_code


register_reporter(LookupKind.PLANS, report_plans)
