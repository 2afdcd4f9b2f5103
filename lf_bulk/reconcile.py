"""Reconciliation: desired membership (a spreadsheet) against the real groups, a plan, and its apply.

The diff is pure and linear (dicts and sets), so an orchestrator can call it on its own; a file
of valid rows, each ICCID once (the usual case), is compared column-wise in C (`map`, `bytes`), a
million rows against a million members in about half the time of the row-by-row diff.

The apply policy (`reconcile`) is safe by construction:

- a desired file with invalid rows can never cause a removal: additions and moves still happen,
  removals of unexpected members are withheld (reported, exit 4) until the file is fixed;
- a desired file with no valid row, or a group in scope that the account does not have, stops
  everything before the first API change (exit 2);
- a plan over `max_changes`, or one that would remove more than `max_removal_ratio` of a group's
  current members, is refused (`PlanRefused`, exit 2) with the numbers and the option to pass.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction
from itertools import filterfalse, repeat
from operator import attrgetter, eq, itemgetter, truth
from pathlib import Path
from typing import NamedTuple

from lf_bulk import wire
from lf_bulk.client import LinksfieldClient
from lf_bulk.engine import DriveResult
from lf_bulk.errors import InputError, InvalidRowsError, PlanRefused, QuotaExhausted, RejectedRow
from lf_bulk.exitcodes import ExitCode
from lf_bulk.files import atomic_file, make_folders, neutralise
from lf_bulk.iccid import EXPLANATIONS, Reason
from lf_bulk.journal import Journal, PlannedItem
from lf_bulk.lazy import BuiltOnDemand
from lf_bulk.models import InputCounts, Operation
from lf_bulk.settings import DEFAULT_MAX_CHANGES as DEFAULT_MAX_CHANGES
from lf_bulk.settings import DEFAULT_MAX_REMOVAL_RATIO as DEFAULT_MAX_REMOVAL_RATIO
from lf_bulk.sources import InputTable
from lf_bulk.xlsx import Column, Sheet, Summary, write_workbook


class Category(StrEnum):
    """What the comparison found for one desired row (or one member nobody desires)."""

    IN_SYNC = "in_sync"
    MISSING = "missing"
    UNEXPECTED = "unexpected"
    MISPLACED = "misplaced"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    INVALID = "invalid"


class Plan(StrEnum):
    """What `--apply` does (or would do) about one finding."""

    NONE = "none"  # in sync, or a duplicate row
    ADD = "add"
    MOVE = "move"  # a removal from the old group, then an addition
    REMOVE = "remove"
    WITHHELD = "withheld"  # a removal not made: the desired file has invalid rows
    NEVER = "never"  # a conflict: never applied until the file is fixed
    SKIPPED = "skipped"  # an invalid row


IN_SYNC = Category.IN_SYNC
MISSING = Category.MISSING
UNEXPECTED = Category.UNEXPECTED
MISPLACED = Category.MISPLACED
DUPLICATE = Category.DUPLICATE
CONFLICT = Category.CONFLICT
INVALID = Category.INVALID
CATEGORIES = tuple(Category)
CHANGES = (MISSING, UNEXPECTED, MISPLACED)
# Not in sync: what keeps the exit code at 4. An invalid row counts, because the state it wanted
# is unknown (and while it stays invalid, removals are withheld).
DRIFT = (*CHANGES, CONFLICT, INVALID)

GROUP_COLUMN_ALIASES = ("group_id", "group", "groupid", "bundle_group", "group id")
BAD_GROUP = "bad_group"  # a group cell that is no group id (`wire.is_valid_id`): never sent
REMOVE_PHASE = 0
ADD_PHASE = 1
BATCH_SIZE = wire.DEFAULT_BATCH_SIZE
NO_GROUP = "no_group"
WITHHELD_DETAIL = "removal withheld: the desired file has invalid rows; fix them to remove"


@dataclass(frozen=True, slots=True)
class DesiredRow:
    row: int
    iccid: str
    group_id: str
    problem: str = ""  # an invalid row's reason code, else ''


_CATEGORY = 2  # Finding.category's position


class Finding(NamedTuple):
    # A tuple rather than a dataclass: a million of them are made in about a tenth of the time.
    row: int  # 0 for a finding that comes from membership only (unexpected)
    iccid: str
    category: Category
    desired_group: str
    actual_group: str
    detail: str = ""


_IN_SYNC_CODE = CATEGORIES.index(IN_SYNC)
_MISSING_CODE = CATEGORIES.index(MISSING)
_KEPT_CODE = 255  # a finding kept whole in `Findings._kept`


class Findings(BuiltOnDemand[Finding]):
    """A diff's findings, row by row, then the unexpected members: what a list of them would be.

    The common findings (in sync, missing) follow from their desired row alone, so they are kept
    as one byte a row and made when asked for; the others are kept whole. A million rows cost a
    megabyte instead of a million tuples. `desired` must not change afterwards.
    """

    __slots__ = ("_codes", "_desired", "_kept", "_unexpected")
    item_name = "finding"

    def __init__(
        self,
        desired: Sequence[DesiredRow],
        codes: bytearray,
        kept: dict[int, Finding],
        unexpected: list[Finding],
    ) -> None:
        if len(codes) != len(desired):
            raise ValueError("one code per desired row")
        self._desired = desired
        self._codes = codes
        self._kept = kept
        self._unexpected = unexpected

    def __len__(self) -> int:
        return len(self._codes) + len(self._unexpected)

    def _at(self, index: int) -> Finding:
        code = self._codes[index]
        if code == _KEPT_CODE:
            return self._kept[index]
        r = self._desired[index]
        if code == _IN_SYNC_CODE:
            return Finding(r.row, r.iccid, IN_SYNC, r.group_id, r.group_id)
        return Finding(r.row, r.iccid, MISSING, r.group_id, "")

    def _item(self, position: int) -> Finding:
        rows = len(self._codes)
        return self._at(position) if position < rows else self._unexpected[position - rows]

    def __iter__(self) -> Iterator[Finding]:
        kept = self._kept
        for index, (r, code) in enumerate(zip(self._desired, self._codes, strict=True)):
            if code == _IN_SYNC_CODE:
                yield Finding(r.row, r.iccid, IN_SYNC, r.group_id, r.group_id)
            elif code == _MISSING_CODE:
                yield Finding(r.row, r.iccid, MISSING, r.group_id, "")
            else:
                yield kept[index]
        yield from self._unexpected

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(
            mine == theirs for mine, theirs in zip(self, other, strict=True)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Findings({len(self)})"

    def counts(self) -> Counter[Category]:
        """Findings per category, without making any."""
        counted = Counter(map(itemgetter(_CATEGORY), self._kept.values()))
        counted[IN_SYNC] += self._codes.count(_IN_SYNC_CODE)
        counted[MISSING] += self._codes.count(_MISSING_CODE)
        counted[UNEXPECTED] += len(self._unexpected)
        return counted


@dataclass
class Diff:
    findings: Sequence[Finding]
    """A list, or `Findings` (what `diff` returns)."""
    scope: list[str]
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.findings, Findings):
            counted = self.findings.counts()
        else:
            # itemgetter over the tuples keeps the count in C: a million findings in a few ms.
            counted = Counter(map(itemgetter(_CATEGORY), self.findings))
        self.counts = {str(c): counted.get(c, 0) for c in CATEGORIES}

    @property
    def drift(self) -> int:
        return sum(self.counts[c] for c in DRIFT)

    @property
    def withholds_removals(self) -> bool:
        """Whether removals are withheld: an invalid row may have meant a current member."""
        return self.counts[INVALID] > 0

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
            problem = NO_GROUP
        elif not problem and not wire.is_valid_id(group):
            problem = BAD_GROUP
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
    return _diff_of_unique_valid_rows(desired, actual, named) or diff_row_by_row(
        desired, actual, named
    )


_PROBLEM = attrgetter("problem")
_ICCID = attrgetter("iccid")
_GROUP = attrgetter("group_id")
# A row's code from (its ICCID's current group equals the desired one) * 2 + (it has one at all).
_CODE_OF_KEY = bytes([_MISSING_CODE, _KEPT_CODE, _IN_SYNC_CODE, _IN_SYNC_CODE]).ljust(256, b"\0")


def _diff_of_unique_valid_rows(
    desired: Sequence[DesiredRow], actual: Mapping[str, str], named: Sequence[str]
) -> Diff | None:
    """`diff` of a file without invalid rows that names each ICCID once, column by column with no
    Python code per row; None for any other file (`diff_row_by_row` applies its rules)."""
    if any(map(_PROBLEM, desired)):
        return None
    iccids = list(map(_ICCID, desired))
    # A set rather than a dict of the rows: the hash table passes over a million strings are
    # what the diff costs, so there are three (this set, the members' groups, the unexpected).
    unique = set(iccids)
    if len(unique) != len(iccids):  # an ICCID repeated: duplicates and conflicts
        return None
    currents = list(map(actual.get, iccids, repeat("")))
    # One byte a row each (0 or 1), as one big integer each: the key of every row is two C-level
    # integer operations on a million bytes, and its code one translate.
    same = int.from_bytes(bytes(map(eq, currents, map(_GROUP, desired))), "big")
    member = int.from_bytes(bytes(map(truth, currents)), "big")
    keys = ((same << 1) | member).to_bytes(len(currents), "big")
    codes = bytearray(keys.translate(_CODE_OF_KEY))
    kept: dict[int, Finding] = {}
    index = codes.find(_KEPT_CODE)
    while index >= 0:  # misplaced: a member of another group
        r = desired[index]
        kept[index] = Finding(r.row, r.iccid, MISPLACED, r.group_id, currents[index])
        index = codes.find(_KEPT_CODE, index + 1)
    named_set = set(named)
    unexpected = [
        Finding(0, iccid, UNEXPECTED, "", actual[iccid])
        for iccid in filterfalse(unique.__contains__, actual)
        if actual[iccid] in named_set
    ]
    return Diff(Findings(desired, codes, kept, unexpected), sorted(named_set))


def diff_row_by_row(
    desired: Sequence[DesiredRow],
    actual: Mapping[str, str],
    named: Sequence[str],
) -> Diff:
    """`diff` for any file, one row at a time: invalid rows, duplicates and conflicts."""
    first_group: dict[str, str] = {}
    conflicted: dict[str, set[str]] = {}
    # An ICCID that an invalid row also names: that row may have wanted it elsewhere (or where it
    # is), so no change is made for it, above all no move out of its group, until it is fixed.
    unreadable: dict[str, int] = {}
    # Rows whose ICCID a valid row above already named: one byte a row rather than a second set
    # of a million strings (time and memory both count at a million rows).
    repeated = bytearray(len(desired))
    setdefault = first_group.setdefault
    for index, r in enumerate(desired):
        iccid = r.iccid
        if r.problem:
            unreadable.setdefault(iccid, r.row)
            continue
        if iccid in first_group:
            repeated[index] = 1
            known = first_group[iccid]
            if known != r.group_id:
                conflicted.setdefault(iccid, {known}).add(r.group_id)
        else:
            setdefault(iccid, r.group_id)
    codes = bytearray([_KEPT_CODE]) * len(desired)
    kept: dict[int, Finding] = {}
    get = actual.get
    seen_in: set[tuple[str, str]] = set()  # conflicting ICCIDs: a duplicate repeats the group
    for index, (r, again) in enumerate(zip(desired, repeated, strict=True)):
        iccid, group = r.iccid, r.group_id
        if r.problem:
            kept[index] = Finding(r.row, iccid, INVALID, group, "", _explain(r.problem))
            continue
        current = get(iccid, "")
        if conflicted and iccid in conflicted:
            key = (iccid, group)
            if key in seen_in:
                kept[index] = Finding(r.row, iccid, DUPLICATE, group, current)
                continue
            seen_in.add(key)
            others = ", ".join(sorted(conflicted[iccid] - {group}))
            detail = f"also desired in {others}; never applied"
            kept[index] = Finding(r.row, iccid, CONFLICT, group, current, detail)
        elif again:
            kept[index] = Finding(r.row, iccid, DUPLICATE, group, current)
        elif current == group:
            codes[index] = _IN_SYNC_CODE
        elif unreadable and iccid in unreadable:
            detail = f"row {unreadable[iccid]} for this ICCID is invalid; never applied"
            kept[index] = Finding(r.row, iccid, CONFLICT, group, current, detail)
        elif current:
            kept[index] = Finding(r.row, iccid, MISPLACED, group, current)
        else:
            codes[index] = _MISSING_CODE
    named_set = set(named)
    unexpected = [
        Finding(0, iccid, UNEXPECTED, "", group)
        for iccid, group in actual.items()
        if group in named_set and iccid not in first_group
    ]
    return Diff(Findings(desired, codes, kept, unexpected), sorted(named_set))


def _explain(problem: str) -> str:
    if problem == BAD_GROUP:
        limit = wire.ID_MAX_LENGTH
        return f"the group is not a group id: an id has {wire.ID_ALPHABET}, at most {limit}"
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


def plan_of(finding: Finding, *, withhold_removals: bool) -> Plan:
    category = finding.category
    if category == MISSING:
        return Plan.ADD
    if category == MISPLACED:
        return Plan.MOVE
    if category == UNEXPECTED:
        return Plan.WITHHELD if withhold_removals else Plan.REMOVE
    if category == CONFLICT:
        return Plan.NEVER
    if category == INVALID:
        return Plan.SKIPPED
    return Plan.NONE


def plan_items(
    findings: Iterable[Finding], *, withhold_removals: bool = False
) -> list[PlannedItem]:
    """Removals first (unexpected, and misplaced from their old group), then additions.

    With `withhold_removals`, unexpected members are kept: only additions and moves are planned.
    """
    removals: list[PlannedItem] = []
    additions: list[PlannedItem] = []
    for f in findings:
        plan = plan_of(f, withhold_removals=withhold_removals)
        if plan in (Plan.REMOVE, Plan.MOVE):
            removals.append(
                PlannedItem(f.row, f.iccid, Operation.REMOVE, f.actual_group, REMOVE_PHASE)
            )
        if plan in (Plan.ADD, Plan.MOVE):
            additions.append(PlannedItem(f.row, f.iccid, Operation.ADD, f.desired_group, ADD_PHASE))
    return removals + additions


def withheld_count(diff_: Diff) -> int:
    return diff_.counts[UNEXPECTED] if diff_.withholds_removals else 0


def summary_line(diff_: Diff, *, label: str = "") -> str:
    parts = ", ".join(f"{c} {diff_.counts[c]}" for c in CATEGORIES if diff_.counts[c])
    state = "in sync" if diff_.drift == 0 else f"drift {diff_.drift}"
    return f"{label}reconcile {', '.join(diff_.scope)}: {state} ({parts or 'nothing'})"


# ---------------------------------------------------------------- the mass-removal guard


@dataclass(frozen=True)
class GroupRemovals:
    """The removals a plan makes in one group, against the group's members now."""

    group_id: str
    members: int
    removals: int

    @property
    def ratio(self) -> Fraction:
        return Fraction(self.removals, self.members) if self.members else Fraction(0)

    @property
    def ratio_to_allow(self) -> str:
        """The smallest --max-removal-ratio (two decimals) that allows these removals."""
        hundredths = math.ceil(self.ratio * 100)
        return "1" if hundredths >= 100 else f"{hundredths / 100:.2f}".rstrip("0")


def removals_by_group(
    items: Iterable[PlannedItem], members: Mapping[str, int]
) -> list[GroupRemovals]:
    counted = Counter(i.group_id for i in items if i.operation == Operation.REMOVE)
    return [GroupRemovals(g, members.get(g, 0), n) for g, n in sorted(counted.items())]


def over_ratio(removals: Iterable[GroupRemovals], max_ratio: float) -> list[GroupRemovals]:
    # str() first: 0.1 as a float is not one tenth, and 10 of 100 must be allowed at 0.1.
    limit = Fraction(str(max_ratio))
    return [r for r in removals if r.ratio > limit]


def _percent(value: Fraction | float) -> str:
    return f"{float(value) * 100:.4g}%"


def mass_removal_message(over: Sequence[GroupRemovals], max_ratio: float, drift_csv: Path) -> str:
    groups = "; ".join(
        f"{r.group_id}: {r.members} members now, {r.removals} removals planned "
        f"({_percent(r.ratio)})"
        for r in over
    )
    needed = max(over, key=lambda r: r.ratio).ratio_to_allow
    return (
        f"refused: the plan removes more than {_percent(max_ratio)} of a group's members "
        f"(--max-removal-ratio {max_ratio:g}): {groups}. Nothing was sent. Check {drift_csv}; "
        f"if these removals are wanted, pass --max-removal-ratio {needed}"
    )


# ---------------------------------------------------------------- checks and the apply policy


def check_desired(
    table: InputTable,
    desired: Sequence[DesiredRow],
    named: Sequence[str],
    *,
    skip_invalid: bool,
    report_dir: Path,
    run_id: str,
) -> None:
    """Refuse a desired state that cannot be compared safely; write the rejected rows first.

    Raises `InvalidRowsError` for invalid rows without `skip_invalid`, `InputError` for a file
    with no valid row (an empty desired state would remove every member) or no group in scope.
    """
    invalid = [r for r in desired if r.problem]
    # Invalid rows first: a file whose every group is malformed has its rows named, not "no group".
    if invalid and not skip_invalid:
        write_refusal_report(report_dir, desired, named, run_id=run_id, reason="invalid rows")
        rejected = [RejectedRow(r.row, r.iccid, r.problem) for r in invalid]
        raise InvalidRowsError(table.source, rejected, str(report_dir))
    if not named:
        write_refusal_report(report_dir, desired, named, run_id=run_id, reason="no group in scope")
        bad = sum(1 for r in invalid if r.problem == BAD_GROUP)
        fix = (
            f"{bad} row(s) have a group that is not a group id (listed in {report_dir / ITEMS_CSV})"
            if bad
            else "add a group column to the file, or pass --group"
        )
        raise InputError(
            f"no group in scope: {fix}. Nothing was compared or sent", path=table.source
        )
    if len(invalid) == len(desired):
        write_refusal_report(report_dir, desired, named, run_id=run_id, reason="no valid row")
        raise InputError(
            f"no valid row ({len(desired)} rows, {len(invalid)} invalid): nothing valid to do, and "
            "an empty desired state is never applied. Nothing was compared or sent; the rejected "
            f"rows are listed in {report_dir / ITEMS_CSV}",
            path=table.source,
        )


def check_one_sheet(table: InputTable, *, sheet_named: bool) -> None:
    """Refuse a workbook with several visible sheets unless one was named (`--sheet`).

    Reconcile reads one sheet as the whole desired state: members listed on a sheet it did not
    read would be removed.
    """
    if sheet_named or not table.unread_sheets:
        return
    others = ", ".join(repr(name) for name in table.unread_sheets[:10])
    raise InputError(
        f"the workbook has other visible sheets ({others}) besides {table.sheet!r}, and reconcile "
        "reads one sheet as the whole desired state. Put every row on one sheet, or name it "
        "with --sheet NAME. Nothing was compared or sent",
        path=table.source,
    )


def _header_key(header: str) -> str:
    return "".join(c for c in header.casefold() if c.isalnum())


def check_columns(table: InputTable) -> None:
    """Refuse a file whose columns are not read the way its author meant.

    A second ICCID column of the same name, a second group column, or a group-like column under
    a header that is not a group alias: reconcile would read one column only, and the SIMs (or
    groups) of the other would count as not desired, i.e. be removed or moved.
    """
    headers = list(table.headers)
    column_key = _header_key(table.column)
    if column_key and sum(1 for h in headers if _header_key(h) == column_key) > 1:
        raise InputError(
            f"the file has more than one {table.column!r} column; reconcile reads only the "
            "first, and would remove the SIMs of the other. Put every ICCID in one column (or "
            "name it with --column). Nothing was compared or sent",
            path=table.source,
        )
    keys = {_header_key(alias) for alias in GROUP_COLUMN_ALIASES}
    others = [h for h in headers if _header_key(h) != column_key]
    group_columns = [h for h in others if _header_key(h) in keys]
    if len(group_columns) > 1:
        shown = ", ".join(repr(h) for h in group_columns)
        raise InputError(
            f"the file has {len(group_columns)} group columns ({shown}); reconcile would read "
            "only one. Keep one group column. Nothing was compared or sent",
            path=table.source,
        )
    if group_columns:
        return
    lookalikes = [h for h in others if "group" in _header_key(h) or "grp" in _header_key(h)]
    if lookalikes:
        shown = ", ".join(repr(h) for h in lookalikes[:5])
        names = ", ".join(GROUP_COLUMN_ALIASES)
        raise InputError(
            f"the column {shown} is not read as the group column (its header is none of: "
            f"{names}), so every row would take --group. Rename it to group_id. Nothing was "
            "compared or sent",
            path=table.source,
        )


def check_groups_exist(client: LinksfieldClient, named: Sequence[str]) -> list[str]:
    """Every group of the account; raises `InputError` if a group in scope is not one of them."""
    known = sorted({g.group_id for g in client.list_groups()})
    unknown = sorted(set(named) - set(known))
    if unknown:
        # repr: the names come from the file, and may hold anything a terminal would act on.
        shown = ", ".join(repr(g) for g in unknown[:10])
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise InputError(
            f"{len(unknown)} unknown group(s) {shown}{more}: the account has no such group. Check "
            "the group column and --group (`lf-bulk groups list` shows them). Nothing was sent"
        )
    return known


@dataclass(frozen=True)
class ReconcileOptions:
    apply: bool = False
    all_groups: bool = False
    max_changes: int = DEFAULT_MAX_CHANGES
    max_removal_ratio: float = DEFAULT_MAX_REMOVAL_RATIO
    batch_size: int = BATCH_SIZE

    def __post_init__(self) -> None:
        # `not 0 <= x <= 1` also refuses NaN, which every comparison would let through.
        if not 0 <= self.max_removal_ratio <= 1:
            raise ValueError(f"max_removal_ratio {self.max_removal_ratio} is not in [0, 1]")
        if self.max_changes < 0:
            raise ValueError(f"max_changes {self.max_changes} is negative")


@dataclass(frozen=True)
class ReconcileResult:
    run_id: str
    report_dir: Path
    exit_code: ExitCode
    before: Diff
    after: Diff | None = None  # None when nothing was applied
    planned: int = 0  # ICCID changes sent to the API (a move counts 2)
    drive: DriveResult | None = None
    members: Mapping[str, int] = field(default_factory=dict)
    """Members per group in scope when compared (the mass-removal guard's denominators)."""

    @property
    def final(self) -> Diff:
        return self.after or self.before

    @property
    def withheld(self) -> int:
        return withheld_count(self.final)


def exit_code_of(diff_: Diff) -> ExitCode:
    return ExitCode.DRIFT if diff_.drift else ExitCode.OK


def groups_to_lock(
    client: LinksfieldClient, named: Sequence[str], *, all_groups: bool
) -> list[str]:
    """The groups a reconcile may change: the named ones, or (with --all-groups, where a move
    takes a SIM out of any group) every group of the account as well."""
    groups = set(named)
    if all_groups:
        groups.update(g.group_id for g in client.list_groups())
    return sorted(groups)


def reconcile(
    client: LinksfieldClient,
    desired: Sequence[DesiredRow],
    named: Sequence[str],
    options: ReconcileOptions,
    *,
    run_id: str,
    report_dir: Path,
    journal: Callable[[], Journal] | None = None,
    drive: Callable[[Journal, str], DriveResult] | None = None,
    source: str = "",
    endpoint: str = "",
    say: Callable[[str], None] = lambda message: None,
) -> ReconcileResult:
    """Compare, and with `options.apply` fix the drift; write the report either way.

    `desired` has passed `check_desired`. `journal` opens the run journal and `drive` drives a
    journaled run to its end (both needed to apply). Raises `InputError` for an unknown group and
    `PlanRefused` for a plan over the limits, before any change is sent.
    """
    known = check_groups_exist(client, named)
    scope = sorted(set(known) | set(named)) if options.all_groups else list(named)
    say(f"reading members of {len(scope)} group(s)")
    actual = read_actual(client, scope)
    before = diff(desired, actual, named)
    items = plan_items(before.changes, withhold_removals=before.withholds_removals)
    if not options.apply or not items:
        code = exit_code_of(before)
        write_reconcile_report(report_dir, before, exit_code=code, run_id=run_id)
        return ReconcileResult(run_id, report_dir, code, before, members=Counter(actual.values()))
    _refuse_over_limits(before, items, Counter(actual.values()), options, report_dir, run_id)
    if journal is None or drive is None:
        raise ValueError("applying needs a journal and a driver")
    say(summary_line(before, label="plan: "))
    run_journal = journal()
    run_journal.create_run(
        run_id=run_id,
        kind="reconcile",
        operation="RECONCILE",
        group_id=",".join(named),
        items=items,
        batch_size=options.batch_size,
        source=source,
        report_dir=str(report_dir / "run"),
        endpoint=endpoint,
        # The run's items are the planned changes: its counts (and progress) are theirs.
        counts=InputCounts(len(items), len(items), 0, 0),
    )
    try:
        result = drive(run_journal, run_id)
    except QuotaExhausted as stop:
        # The day's quota ran out during the apply: the drift found is still reported, and the
        # run resumes after the reset (the next reconcile shows whether it converged).
        write_reconcile_report(report_dir, before, exit_code=ExitCode.NOT_FINISHED, run_id=run_id)
        stop.report_dir = report_dir
        raise
    after = diff(desired, read_actual(client, scope), named)
    left = plan_items(after.changes, withhold_removals=after.withholds_removals)
    if result.exit_code == ExitCode.NOT_FINISHED:
        code = ExitCode.NOT_FINISHED
    elif result.exit_code == ExitCode.SOME_FAILED or left:
        code = ExitCode.SOME_FAILED
    else:
        code = exit_code_of(after)
    write_reconcile_report(report_dir, before, after=after, exit_code=code, run_id=run_id)
    return ReconcileResult(run_id, report_dir, code, before, after, len(items), result)


def _refuse_over_limits(
    before: Diff,
    items: Sequence[PlannedItem],
    members: Mapping[str, int],
    options: ReconcileOptions,
    report_dir: Path,
    run_id: str,
) -> None:
    """Raise `PlanRefused` naming every limit the plan is over (so one retry can fix them all)."""
    refusals = []
    drift_csv = report_dir / DRIFT_CSV
    if len(items) > options.max_changes:
        removals = sum(1 for i in items if i.operation == Operation.REMOVE)
        refusals.append(
            f"refused: the plan has {len(items)} changes ({len(items) - removals} additions, "
            f"{removals} removals; a move counts 2) and --max-changes is {options.max_changes}. "
            f"Nothing was sent. Check {drift_csv}, then pass --max-changes {len(items)} to allow it"
        )
    over = over_ratio(removals_by_group(items, members), options.max_removal_ratio)
    if over:
        refusals.append(mass_removal_message(over, options.max_removal_ratio, drift_csv))
    if refusals:
        refusal = "\n".join(refusals)
        write_reconcile_report(
            report_dir, before, exit_code=ExitCode.BAD_INPUT, run_id=run_id, refused=refusal
        )
        raise PlanRefused(refusal)


# ---------------------------------------------------------------- reports

ITEMS_CSV = "items.csv"
DRIFT_CSV = "drift.csv"
DRIFT_BEFORE_CSV = "drift_before.csv"
SUMMARY_JSON = "summary.json"
ITEM_FIELDS = (
    "row",
    "iccid",
    "desired_group",
    "actual_group",
    "category",
    "plan",
    "after",
    "detail",
)
DRIFT_FIELDS = ("row", "iccid", "category", "desired_group", "actual_group", "detail")
FINDING_COLUMNS = [
    Column("row", "int"),
    Column("iccid", "text", 24),
    Column("category", "text", 12),
    Column("desired_group", "text", 16),
    Column("actual_group", "text", 16),
    Column("detail", "text", 40),
]
EXCEL_MAX_ROWS = 1_048_575


def _safe(value: str) -> str:
    # The file's own cells too (an ICCID cell may hold an escape sequence): controls made
    # visible, then formula-like text neutralised.
    return neutralise(wire.clean_text(value))


def _detail(f: Finding, withhold_removals: bool) -> str:
    if withhold_removals and f.category == UNEXPECTED:
        return WITHHELD_DETAIL
    return f.detail


def write_drift_csv(path: Path, findings: Iterable[Finding], *, withhold: bool = False) -> int:
    """Every finding that is not in sync (unexpected members have no row), atomically."""
    count = 0
    n = _safe
    with atomic_file(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(DRIFT_FIELDS)
        for f in findings:
            if f.category == IN_SYNC:
                continue
            detail = _detail(f, withhold)
            writer.writerow(
                [
                    f.row or "",
                    n(f.iccid),
                    f.category,
                    n(f.desired_group),
                    n(f.actual_group),
                    n(detail),
                ]
            )
            count += 1
    return count


def write_items_csv(path: Path, before: Diff, after: Diff | None = None) -> int:
    """One line per input row: what was found, what the plan is, and (applied) what is now."""
    withhold = before.withholds_removals
    rows = [f for f in before.findings if f.row]
    later = [f.category for f in after.findings if f.row] if after is not None else []
    n = _safe
    with atomic_file(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(ITEM_FIELDS)
        for index, f in enumerate(rows):
            writer.writerow(
                [
                    f.row,
                    n(f.iccid),
                    n(f.desired_group),
                    n(f.actual_group),
                    f.category,
                    plan_of(f, withhold_removals=withhold),
                    later[index] if index < len(later) else "",
                    n(_detail(f, withhold)),
                ]
            )
    return len(rows)


def _write_json(path: Path, document: Mapping[str, object]) -> None:
    with atomic_file(path) as out:
        out.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def write_refusal_report(
    report_dir: Path,
    desired: Sequence[DesiredRow],
    named: Sequence[str],
    *,
    run_id: str,
    reason: str,
) -> Path:
    """The report of a desired file refused before any comparison: its rejected rows."""
    rejected = Diff(
        [
            Finding(r.row, r.iccid, INVALID, r.group_id, "", _explain(r.problem))
            for r in desired
            if r.problem
        ],
        list(named),
    )
    return write_reconcile_report(
        report_dir,
        rejected,
        facts=[("input rows", len(desired))],
        exit_code=ExitCode.BAD_INPUT,
        run_id=run_id,
        refused=f"{reason}; nothing was compared or sent",
    )


def write_reconcile_report(
    report_dir: Path,
    before: Diff,
    *,
    after: Diff | None = None,
    facts: Sequence[tuple[str, object]] = (),
    exit_code: int,
    run_id: str = "",
    refused: str = "",
) -> Path:
    make_folders(report_dir)
    final = after or before
    write_items_csv(report_dir / ITEMS_CSV, before, after)
    write_drift_csv(report_dir / DRIFT_CSV, final.findings, withhold=final.withholds_removals)
    if after is not None:
        write_drift_csv(
            report_dir / DRIFT_BEFORE_CSV, before.findings, withhold=before.withholds_removals
        )
    by_category: dict[str, list[Finding]] = {c: [] for c in CATEGORIES}
    for f in final.findings:
        by_category[f.category].append(f)
    withhold = final.withholds_removals
    sheets = [
        Sheet(
            name=category,
            columns=FINDING_COLUMNS,
            rows=(
                (
                    f.row or None,
                    wire.clean_text(f.iccid),
                    f.category,
                    wire.clean_text(f.desired_group),
                    wire.clean_text(f.actual_group),
                    wire.clean_text(_detail(f, withhold)),
                )
                for f in found[:EXCEL_MAX_ROWS]
            ),
        )
        for category, found in by_category.items()
        if found
    ]
    counts: list[tuple[str, int]] = [(c, final.counts[c]) for c in CATEGORIES]
    summary_facts: list[tuple[str, object]] = [
        ("groups", ", ".join(final.scope)),
        ("exit code", exit_code),
        *facts,
    ]
    if refused:
        summary_facts.append(("refused", refused))
    if withhold:
        summary_facts.append(("removals withheld", withheld_count(final)))
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
        "changes": len(plan_items(final.changes, withhold_removals=withhold)),
        "withheld": withheld_count(final),
        "before": before.counts if after is not None else None,
        "refused": refused or None,
        "exit_code": int(exit_code),
    }
    _write_json(report_dir / SUMMARY_JSON, document)
    return report_dir
