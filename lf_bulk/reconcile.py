"""Reconciliation: desired membership (a spreadsheet) against the real groups, and a plan.

The diff is pure and linear (dicts and sets), so an orchestrator can call it on its own and a
million rows against a million members takes about a second.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from lf_bulk.client import LinksfieldClient
from lf_bulk.iccid import EXPLANATIONS, Reason
from lf_bulk.journal import PlannedItem
from lf_bulk.models import Operation
from lf_bulk.sources import InputTable
from lf_bulk.xlsx import Column, Sheet, Summary, atomic_file, neutralise, write_workbook

IN_SYNC = "in_sync"
MISSING = "missing"
UNEXPECTED = "unexpected"
MISPLACED = "misplaced"
DUPLICATE = "duplicate"
CONFLICT = "conflict"
INVALID = "invalid"
CATEGORIES = (IN_SYNC, MISSING, UNEXPECTED, MISPLACED, DUPLICATE, CONFLICT, INVALID)
CHANGES = (MISSING, UNEXPECTED, MISPLACED)
DRIFT = (*CHANGES, CONFLICT)

GROUP_COLUMN_ALIASES = ("group_id", "group", "groupid", "bundle_group", "group id")
REMOVE_PHASE = 0
ADD_PHASE = 1


@dataclass(frozen=True, slots=True)
class DesiredRow:
    row: int
    iccid: str
    group_id: str
    problem: str = ""  # an invalid row's reason code, else ''


class Finding(NamedTuple):
    # A tuple rather than a dataclass: a million of them are made in about a tenth of the time.
    row: int  # 0 for a finding that comes from membership only (unexpected)
    iccid: str
    category: str
    desired_group: str
    actual_group: str
    detail: str = ""


@dataclass
class Diff:
    findings: list[Finding]
    scope: list[str]
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        counted = Counter(f.category for f in self.findings)
        self.counts = {c: counted.get(c, 0) for c in CATEGORIES}

    @property
    def drift(self) -> int:
        return sum(self.counts[c] for c in DRIFT)

    @property
    def changes(self) -> list[Finding]:
        return [f for f in self.findings if f.category in CHANGES]

    def change_count(self) -> int:
        """API operations the plan needs: a move is a removal and an addition."""
        return self.counts[MISSING] + self.counts[UNEXPECTED] + 2 * self.counts[MISPLACED]


def desired_rows(table: InputTable, default_group: str | None) -> list[DesiredRow]:
    rows = []
    for row in table.rows:
        group = (row.extra.get("group") or "").strip() or (default_group or "")
        problem = "" if row.reason is None or row.reason is Reason.DUPLICATE else str(row.reason)
        if not problem and not group:
            problem = "no_group"
        rows.append(DesiredRow(row.row, row.iccid or row.raw, group, problem))
    return rows


def named_groups(rows: Iterable[DesiredRow], default_group: str | None) -> list[str]:
    groups = {r.group_id for r in rows if r.group_id and not r.problem}
    if default_group:
        groups.add(default_group)
    return sorted(groups)


def diff(
    desired: Sequence[DesiredRow],
    actual: Mapping[str, str],
    named: Sequence[str],
) -> Diff:
    """Categorise every desired row and every member of a named group.

    `actual` maps each ICCID found in the groups in scope to its group; `named` are the groups the
    desired state speaks for (only their members can be unexpected).
    """
    first_group: dict[str, str] = {}
    conflicted: dict[str, set[str]] = {}
    for r in desired:
        if r.problem:
            continue
        known = first_group.setdefault(r.iccid, r.group_id)
        if known != r.group_id:
            conflicted.setdefault(r.iccid, {known}).add(r.group_id)
    findings: list[Finding] = []
    append = findings.append
    seen: set[str] = set()  # ICCIDs desired in one group only: a second row is a duplicate
    seen_in: set[tuple[str, str]] = set()  # conflicting ICCIDs: a duplicate repeats the group
    for r in desired:
        if r.problem:
            append(Finding(r.row, r.iccid, INVALID, r.group_id, "", _explain(r.problem)))
            continue
        current = actual.get(r.iccid, "")
        if r.iccid in conflicted:
            key = (r.iccid, r.group_id)
            if key in seen_in:
                append(Finding(r.row, r.iccid, DUPLICATE, r.group_id, current))
                continue
            seen_in.add(key)
            others = ", ".join(sorted(conflicted[r.iccid] - {r.group_id}))
            detail = f"also desired in {others}; never applied"
            append(Finding(r.row, r.iccid, CONFLICT, r.group_id, current, detail))
            continue
        if r.iccid in seen:
            append(Finding(r.row, r.iccid, DUPLICATE, r.group_id, current))
            continue
        seen.add(r.iccid)
        if current == r.group_id:
            append(Finding(r.row, r.iccid, IN_SYNC, r.group_id, current))
        elif current:
            append(Finding(r.row, r.iccid, MISPLACED, r.group_id, current))
        else:
            append(Finding(r.row, r.iccid, MISSING, r.group_id, ""))
    named_set = set(named)
    for iccid, group in actual.items():
        if group in named_set and iccid not in first_group:
            findings.append(Finding(0, iccid, UNEXPECTED, "", group))
    return Diff(findings, sorted(named_set))


def _explain(problem: str) -> str:
    try:
        return EXPLANATIONS[Reason(problem)]
    except ValueError:
        return "no group: name one in a group column, or pass --group"


def read_actual(
    client: LinksfieldClient, groups: Sequence[str], *, workers: int | None = None
) -> dict[str, str]:
    """Every member of every group, several groups at once within the client's rate budget."""
    workers = workers or client.pacer.max_in_flight
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(groups) or 1))) as pool:
        member_lists = list(pool.map(client.list_members, groups))
    actual: dict[str, str] = {}
    for group, members in zip(groups, member_lists, strict=True):
        for iccid in members:
            actual[iccid] = group
    return actual


def plan_items(findings: Iterable[Finding]) -> list[PlannedItem]:
    """Removals first (unexpected, and misplaced from their old group), then additions."""
    removals: list[PlannedItem] = []
    additions: list[PlannedItem] = []
    for f in findings:
        if f.category in (UNEXPECTED, MISPLACED):
            removals.append(
                PlannedItem(f.row, f.iccid, Operation.REMOVE, f.actual_group, REMOVE_PHASE)
            )
        if f.category in (MISSING, MISPLACED):
            additions.append(PlannedItem(f.row, f.iccid, Operation.ADD, f.desired_group, ADD_PHASE))
    return removals + additions


def summary_line(diff_: Diff, *, label: str = "") -> str:
    parts = ", ".join(f"{c} {diff_.counts[c]}" for c in CATEGORIES if diff_.counts[c])
    state = "in sync" if diff_.drift == 0 else f"drift {diff_.drift}"
    return f"{label}reconcile {', '.join(diff_.scope)}: {state} ({parts or 'nothing'})"


# ---------------------------------------------------------------- reports

FINDING_COLUMNS = [
    Column("row", "int"),
    Column("iccid", "text", 24),
    Column("category", "text", 12),
    Column("desired_group", "text", 16),
    Column("actual_group", "text", 16),
    Column("detail", "text", 40),
]
EXCEL_MAX_ROWS = 1_048_575


def write_drift_csv(path: Path, findings: Iterable[Finding]) -> int:
    count = 0
    with atomic_file(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "iccid", "category", "desired_group", "actual_group", "detail"])
        for f in findings:
            if f.category == IN_SYNC:
                continue
            writer.writerow(
                [
                    f.row or "",
                    neutralise(f.iccid),
                    f.category,
                    neutralise(f.desired_group),
                    neutralise(f.actual_group),
                    neutralise(f.detail),
                ]
            )
            count += 1
    return count


def write_reconcile_report(
    report_dir: Path,
    before: Diff,
    *,
    after: Diff | None = None,
    facts: Sequence[tuple[str, object]] = (),
    exit_code: int,
    run_id: str = "",
) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    final = after or before
    write_drift_csv(report_dir / "drift.csv", final.findings)
    if after is not None:
        write_drift_csv(report_dir / "drift_before.csv", before.findings)
    by_category: dict[str, list[Finding]] = {c: [] for c in CATEGORIES}
    for f in final.findings:
        by_category[f.category].append(f)
    sheets = [
        Sheet(
            name=category,
            columns=FINDING_COLUMNS,
            rows=(
                (f.row or None, f.iccid, f.category, f.desired_group, f.actual_group, f.detail)
                for f in found[:EXCEL_MAX_ROWS]
            ),
        )
        for category, found in by_category.items()
        if found
    ]
    counts: list[tuple[str, int]] = [(c, final.counts[c]) for c in CATEGORIES]
    summary_facts: list[tuple[str, object]] = [
        ("groups", ", ".join(final.scope)),
        *facts,
    ]
    if after is not None:
        summary_facts += [(f"before: {c}", before.counts[c]) for c in CATEGORIES]
        summary_facts += [(f"after: {c}", after.counts[c]) for c in CATEGORIES]
    write_workbook(
        report_dir / "report.xlsx",
        sheets,
        Summary(title="Reconciliation", facts=summary_facts, counts=counts),
    )
    document = {
        "run_id": run_id,
        "groups": final.scope,
        "counts": final.counts,
        "drift": final.drift,
        "changes": final.change_count(),
        "before": before.counts if after is not None else None,
        "exit_code": exit_code,
    }
    with atomic_file(report_dir / "summary.json") as out:
        out.write(json.dumps(document, indent=2) + "\n")
    return report_dir
