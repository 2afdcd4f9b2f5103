"""The reconcile apply policy as a library: the skip-invalid rule, the mass-removal guard, the
checks before the first change, the reports. Fast: pure functions, or one small sandbox."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import pytest

from lf_bulk import reconcile as rc
from lf_bulk.client import LinksfieldClient
from lf_bulk.engine import DriveResult, RunDriver
from lf_bulk.errors import InputError, InvalidRowsError, PlanRefused
from lf_bulk.exitcodes import ExitCode
from lf_bulk.iccid import with_check_digit
from lf_bulk.journal import Journal
from lf_bulk.models import Operation
from lf_bulk.pacing import RequestPacer
from lf_bulk.sandbox.seed import FLEET_GROUP, PARTNER, PILOT_GROUP
from lf_bulk.sandbox.server import SandboxServer
from lf_bulk.sources import read_iccids

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")

G1, G2 = PILOT_GROUP, FLEET_GROUP


def rows(*spec: tuple[str, str]) -> list[rc.DesiredRow]:
    return [rc.DesiredRow(n + 2, iccid, group) for n, (iccid, group) in enumerate(spec)]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


# ---------------------------------------------------------------- pure: plan and guard


def test_an_invalid_row_withholds_every_removal_but_not_adds_and_moves() -> None:
    desired = [*rows(("a", "G1"), ("b", "G1"), ("c", "G1")), rc.DesiredRow(9, "x", "G1", "empty")]
    diff = rc.diff(desired, {"a": "G1", "c": "G2", "e": "G1"}, ["G1"])
    assert diff.withholds_removals and rc.withheld_count(diff) == 1
    items = rc.plan_items(diff.changes, withhold_removals=diff.withholds_removals)
    steps = {(i.operation, i.group_id, i.iccid) for i in items}
    assert steps == {
        (Operation.ADD, "G1", "b"),
        (Operation.REMOVE, "G2", "c"),  # a move: the valid row says where c belongs
        (Operation.ADD, "G1", "c"),
    }
    assert diff.drift == 1 + 1 + 1 + 1  # missing, misplaced, unexpected, and the invalid row


def test_invalid_rows_alone_are_never_in_sync() -> None:
    desired = [*rows(("a", "G1")), rc.DesiredRow(3, "x", "G1", "bad_checksum")]
    diff = rc.diff(desired, {"a": "G1"}, ["G1"])
    assert diff.drift == 1 and rc.exit_code_of(diff) == ExitCode.DRIFT
    assert "in sync" not in rc.summary_line(diff)


def test_categories_and_plans_are_str_enums() -> None:
    diff = rc.diff(rows(("a", "G1")), {"e": "G1"}, ["G1"])
    assert {f.category for f in diff.findings} == {rc.Category.MISSING, rc.Category.UNEXPECTED}
    assert rc.Category.MISSING == "missing" and f"{rc.Plan.WITHHELD}" == "withheld"
    assert list(diff.counts) == [c.value for c in rc.Category]


def test_removals_are_counted_per_group_and_compared_exactly() -> None:
    members = {"G1": 100, "G2": 3}
    diff = rc.diff(
        rows(*((f"k{n}", "G1") for n in range(90))),
        {**{f"k{n}": "G1" for n in range(100)}, "m": "G2"},
        ["G1", "G2"],
    )
    found = rc.removals_by_group(rc.plan_items(diff.changes), members)
    assert [(r.group_id, r.members, r.removals) for r in found] == [("G1", 100, 10), ("G2", 3, 1)]
    assert found[0].ratio == Fraction(1, 10)
    # 10 of 100 at 0.1 is allowed (0.1 as a float is not exactly one tenth); 1 of 3 is not
    assert rc.over_ratio(found, 0.1) == [found[1]]
    assert rc.over_ratio(found, 0.34) == []
    assert found[1].ratio_to_allow == "0.34" and found[0].ratio_to_allow == "0.1"


@pytest.mark.parametrize(
    ("desired", "kept"),
    [
        (rows(("m0", "G1"), ("m0", "G1"), ("m0", "G1")), {"m0"}),  # one SIM, repeated
        (rows(("m0", "G1"), ("m0", "G2"), ("m1", "G1"), ("m1", "G2")), {"m0", "m1"}),  # conflicts
    ],
)
def test_duplicates_and_conflicts_cannot_empty_a_group_past_the_guard(
    desired: list[rc.DesiredRow], kept: set[str]
) -> None:
    diff = rc.diff(desired, {f"m{n}": "G1" for n in range(20)}, ["G1", "G2"])
    items = rc.plan_items(diff.changes)
    assert not kept & {i.iccid for i in items}
    found = rc.removals_by_group(items, {"G1": 20})
    assert found and rc.over_ratio(found, rc.DEFAULT_MAX_REMOVAL_RATIO) == found


def test_the_refusal_names_group_members_removals_ratio_threshold_and_flag() -> None:
    over = [rc.GroupRemovals("G7", members=20, removals=5)]
    message = rc.mass_removal_message(over, 0.1, Path("/r/drift.csv"))
    for part in ("G7", "20 members", "5 removals", "25%", "10%", "--max-removal-ratio 0.25"):
        assert part in message
    assert "Nothing was sent" in message


def test_a_small_group_is_protected_where_max_changes_is_not() -> None:
    group = rc.GroupRemovals("G1", members=4, removals=4)
    assert group.removals <= rc.DEFAULT_MAX_CHANGES
    assert rc.over_ratio([group], rc.DEFAULT_MAX_REMOVAL_RATIO) == [group]
    assert group.ratio_to_allow == "1"


# ---------------------------------------------------------------- pure: input checks


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def check(path: Path, *, group: str | None, skip_invalid: bool, report: Path) -> None:
    table = read_iccids(path, extra_columns={"group": list(rc.GROUP_COLUMN_ALIASES)})
    desired = rc.desired_rows(table, group)
    named = rc.named_groups(desired, group)
    rc.check_desired(
        table, desired, named, skip_invalid=skip_invalid, report_dir=report, run_id="r1"
    )


VALID = with_check_digit("8985242018091030001")


def test_a_file_without_a_valid_row_is_refused_even_with_skip_invalid(tmp_path: Path) -> None:
    wrong = [VALID[:-1] + str((int(VALID[-1]) + k) % 10) for k in (1, 2)]
    path = write(tmp_path / "d.csv", f"iccid\n{wrong[0]}\n{wrong[1]}\n")
    with pytest.raises(InvalidRowsError):
        check(path, group=G1, skip_invalid=False, report=tmp_path / "a")
    with pytest.raises(InputError, match="no valid row"):
        check(path, group=G1, skip_invalid=True, report=tmp_path / "b")
    for report in (tmp_path / "a", tmp_path / "b"):
        rejected = read_csv(report / rc.ITEMS_CSV)
        assert [(r["row"], r["category"], r["plan"]) for r in rejected] == [
            ("2", "invalid", "skipped"),
            ("3", "invalid", "skipped"),
        ]
        assert json.loads((report / rc.SUMMARY_JSON).read_text())["exit_code"] == 2


def test_rows_without_a_group_are_invalid_and_no_group_in_scope_is_refused(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "d.csv", f"iccid,group_id\n{VALID},\n")
    with pytest.raises(InputError, match="no group in scope"):
        check(path, group=None, skip_invalid=True, report=tmp_path / "r")


def test_a_valid_file_passes(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", f"iccid,group_id\n{VALID},{G1}\n")
    check(path, group=None, skip_invalid=False, report=tmp_path / "r")
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------- reports


def test_every_reconcile_csv_neutralises_formula_like_cells(tmp_path: Path) -> None:
    desired = [
        rc.DesiredRow(2, "=HYPERLINK(1)", "G1", "not_digits"),
        rc.DesiredRow(3, VALID, "+G1"),
    ]
    diff = rc.diff(desired, {"@evil": "+G1"}, ["+G1"])
    rc.write_reconcile_report(tmp_path, diff, exit_code=4, run_id="r1")
    cells = [
        cell
        for name in (rc.ITEMS_CSV, rc.DRIFT_CSV)
        for line in read_csv(tmp_path / name)
        for cell in line.values()
    ]
    assert "'=HYPERLINK(1)" in cells and "'+G1" in cells and "'@evil" in cells
    assert not any(c[:1] in ("=", "+", "-", "@") for c in cells)


def test_reports_are_replaced_atomically_and_leave_no_temporary_file(tmp_path: Path) -> None:
    diff = rc.diff(rows(("a", "G1")), {}, ["G1"])
    for name in (rc.DRIFT_CSV, rc.SUMMARY_JSON, rc.ITEMS_CSV):
        (tmp_path / name).write_text("old")
    rc.write_reconcile_report(tmp_path, diff, exit_code=4, run_id="r1")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [rc.DRIFT_CSV, rc.ITEMS_CSV, rc.SUMMARY_JSON, "report.xlsx"]
    )
    assert json.loads((tmp_path / rc.SUMMARY_JSON).read_text())["counts"]["missing"] == 1


# ---------------------------------------------------------------- reconcile() against a sandbox


@pytest.fixture
def client(sandbox: SandboxServer) -> Iterator[LinksfieldClient]:
    with LinksfieldClient(sandbox.base_url, PARTNER, pacer=RequestPacer(200, 4)) as opened:
        yield opened


def run(
    client: LinksfieldClient,
    desired: list[rc.DesiredRow],
    tmp_path: Path,
    **options: object,
) -> rc.ReconcileResult:
    journal = Journal(tmp_path / "journal.db")

    def drive(opened: Journal, run_id: str) -> DriveResult:
        return RunDriver(opened, client, run_id).drive()

    try:
        return rc.reconcile(
            client,
            desired,
            rc.named_groups(desired, None),
            rc.ReconcileOptions(**options),  # type: ignore[arg-type]
            run_id="run-1",
            report_dir=tmp_path / "r",
            journal=lambda: journal,
            drive=drive,
        )
    finally:
        journal.close()


def test_apply_with_an_invalid_row_adds_but_never_removes(
    sandbox: SandboxServer, client: LinksfieldClient, tmp_path: Path
) -> None:
    members = sandbox.state.ungrouped_sims(21)
    sandbox.state.set_members(G1, members[:20])
    desired = rows(*((i, G1) for i in members[1:]))
    desired.append(rc.DesiredRow(30, members[0][:-1] + "x", G1, "not_digits"))
    result = run(client, desired, tmp_path, apply=True, max_removal_ratio=1.0)
    assert result.exit_code == ExitCode.DRIFT
    assert result.withheld == 1 and result.planned == 1
    assert sandbox.state.group_of(members[0]) == G1
    assert sandbox.state.group_of(members[20]) == G1
    assert all(m.method != "DELETE" for m in sandbox.state.mutation_log())


def test_the_run_counts_its_planned_changes_not_the_desired_rows(
    sandbox: SandboxServer, client: LinksfieldClient, tmp_path: Path
) -> None:
    sims = sandbox.state.ungrouped_sims(12)
    sandbox.state.set_members(G1, sims[:10])
    desired = rows(*((i, G1) for i in sims))
    result = run(client, desired, tmp_path, apply=True)
    assert result.exit_code == ExitCode.OK and result.planned == 2
    with Journal(tmp_path / "journal.db") as journal:
        recorded = journal.run("run-1")
    # the progress bars' total is the run's `valid` count
    assert (recorded.input_rows, recorded.valid) == (2, 2)


def test_a_mass_removal_raises_plan_refused_and_writes_the_report(
    sandbox: SandboxServer, client: LinksfieldClient, tmp_path: Path
) -> None:
    members = sandbox.state.ungrouped_sims(10)
    sandbox.state.set_members(G1, members)
    desired = rows(*((i, G1) for i in members[:8]))
    with pytest.raises(PlanRefused, match=r"--max-removal-ratio 0\.2"):
        run(client, desired, tmp_path, apply=True)
    assert sandbox.state.mutation_log() == []
    summary = json.loads((tmp_path / "r" / rc.SUMMARY_JSON).read_text())
    assert summary["exit_code"] == 2 and "10 members now" in summary["refused"]
    with pytest.raises(PlanRefused) as both:
        run(client, desired, tmp_path, apply=True, max_changes=1)
    assert "--max-changes 2" in str(both.value) and "--max-removal-ratio 0.2" in str(both.value)
    result = run(client, desired, tmp_path, apply=True, max_removal_ratio=0.2)
    assert result.exit_code == ExitCode.OK
    assert sorted(sandbox.state.members(G1)) == sorted(members[:8])


def test_an_unknown_group_is_refused_before_any_read_of_members(
    sandbox: SandboxServer, client: LinksfieldClient, tmp_path: Path
) -> None:
    sim, other = sandbox.state.ungrouped_sims(2)
    with pytest.raises(InputError, match="G0000000"):
        run(client, rows((sim, G1), (other, "G0000000")), tmp_path, apply=True)
    assert sandbox.state.mutation_log() == []
