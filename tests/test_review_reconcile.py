"""Adversarial review of reconcile: holes found after the safety rebuild, each pinned by a test.

End to end against the sandbox over 127.0.0.1, and the pure diff where that says it better.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook

from lf_bulk import reconcile as rc
from lf_bulk.models import Operation
from lf_bulk.sandbox.seed import FLEET_GROUP, PILOT_GROUP
from lf_bulk.sandbox.server import SandboxServer

from clihelp import base_args, expect, invoke

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")

G1, G2 = PILOT_GROUP, FLEET_GROUP


def reconcile(server: SandboxServer, tmp_path: Path, *args: str, report: str = "r"):
    return invoke(
        [
            *base_args(tmp_path / "h", server.base_url),
            "reconcile",
            *args,
            "--report-dir",
            str(tmp_path / report),
        ]
    )


def write_desired(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["iccid", "group_id"])
        writer.writerows(rows)
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


# ---------------------------------------------------------------- an invalid row and a move


def test_diff_an_invalid_row_for_the_same_sim_makes_its_move_a_conflict() -> None:
    desired = [
        rc.DesiredRow(2, "8900000000000000001", G1),
        rc.DesiredRow(3, "8900000000000000001", "G 2", rc.BAD_GROUP),
    ]
    result = rc.diff(desired, {"8900000000000000001": G2}, [G1])
    categories = [f.category for f in result.findings]
    assert categories == [rc.CONFLICT, rc.INVALID]
    assert "row 3" in result.findings[0].detail
    assert rc.plan_items(result.changes, withhold_removals=result.withholds_removals) == []


def test_diff_an_invalid_row_for_the_same_sim_withholds_its_addition_too() -> None:
    # The invalid row may have named the group the SIM belongs in: nothing is done for it.
    desired = [
        rc.DesiredRow(2, "8900000000000000001", G1),
        rc.DesiredRow(3, "8900000000000000001", "", rc.NO_GROUP),
    ]
    result = rc.diff(desired, {}, [G1])
    assert [f.category for f in result.findings] == [rc.CONFLICT, rc.INVALID]
    assert rc.plan_items(result.changes, withhold_removals=True) == []


def test_an_invalid_row_never_moves_a_sim_out_of_its_group(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # Repro: the SIM is in G2; one row wants it in G1, another (unreadable group) names it for
    # G2. `--all-groups --skip-invalid --apply` used to move it out of G2.
    sim, other, *rest = sandbox.state.ungrouped_sims(22)
    sandbox.state.set_members(G1, [other])
    sandbox.state.set_members(G2, [sim, *rest])  # one removal of 21 is within the 10% guard
    desired = write_desired(tmp_path / "d.csv", [(other, G1), (sim, G1), (sim, G2 + "!")])
    result = expect(
        reconcile(sandbox, tmp_path, str(desired), "--all-groups", "--skip-invalid", "--apply"),
        4,
    )
    assert sandbox.state.group_of(sim) == G2
    assert sandbox.state.mutation_log() == []
    items = {(r["row"], r["iccid"]): r for r in read_csv(tmp_path / "r" / "items.csv")}
    assert items[("3", sim)]["category"] == "conflict"
    assert items[("3", sim)]["plan"] == "never"
    assert "row 4" in items[("3", sim)]["detail"]
    assert "Traceback" not in result.stderr


def test_a_clean_file_still_plans_the_move() -> None:
    # The fix above must not stop an ordinary move.
    desired = [rc.DesiredRow(2, "8900000000000000001", G1)]
    result = rc.diff(desired, {"8900000000000000001": G2}, [G1])
    items = rc.plan_items(result.changes)
    assert [(i.operation, i.group_id) for i in items] == [
        (Operation.REMOVE, G2),
        (Operation.ADD, G1),
    ]


# ---------------------------------------------------------------- the guard's own options


def test_a_nan_removal_ratio_is_a_usage_error_not_a_traceback(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # Repro: `lf-bulk reconcile d.csv --apply --max-removal-ratio nan` (FloatRange lets NaN by).
    members = sandbox.state.ungrouped_sims(20)
    sandbox.state.set_members(G1, members)
    desired = write_desired(tmp_path / "d.csv", [(i, G1) for i in members[:15]])
    for value in ("nan", "NaN", "-nan"):
        result = expect(
            reconcile(sandbox, tmp_path, str(desired), "--apply", "--max-removal-ratio", value),
            2,
        )
        assert "--max-removal-ratio" in result.stderr
    assert sandbox.state.mutation_log() == []
    assert sorted(sandbox.state.members(G1)) == sorted(members)


def test_a_config_file_cannot_raise_max_changes(sandbox: SandboxServer, tmp_path: Path) -> None:
    # Like --max-removal-ratio and --apply: a config file may make reconcile safer, never looser.
    members = sandbox.state.ungrouped_sims(8)
    sandbox.state.set_members(G1, members)
    new = sandbox.state.ungrouped_sims(3)
    desired = write_desired(tmp_path / "d.csv", [(i, G1) for i in [*members, *new]])
    config = tmp_path / "lf-bulk.toml"
    config.write_text("[reconcile]\nmax_changes = 2\n")
    args = [*base_args(tmp_path / "h", sandbox.base_url), "--config", str(config), "reconcile"]
    report = ["--report-dir", str(tmp_path / "r")]
    refused = expect(invoke([*args, str(desired), "--apply", *report]), 2)
    assert "--max-changes is 2" in refused.stderr  # a lower limit from the file is kept
    config.write_text("[reconcile]\nmax_changes = 100000\n")
    refused = expect(invoke([*args, str(desired), "--apply", *report]), 1)
    assert str(config) in refused.stderr and "max_changes" in refused.stderr  # named, refused
    assert sorted(sandbox.state.members(G1)) == sorted(members)  # nothing was sent


def test_max_changes_above_the_default_from_a_config_file_is_not_used(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    members = sandbox.state.ungrouped_sims(3)
    sandbox.state.set_members(G1, members)
    used: list[int] = []
    original = rc.reconcile

    def spy(*args: Any, **kwargs: Any) -> rc.ReconcileResult:
        used.append(args[3].max_changes)
        return original(*args, **kwargs)

    monkeypatch.setattr(rc, "reconcile", spy)
    desired = write_desired(tmp_path / "d.csv", [(i, G1) for i in members])
    config = tmp_path / "lf-bulk.toml"
    config.write_text("[reconcile]\nmax_changes = 100000\n")
    args = [*base_args(tmp_path / "h", sandbox.base_url), "--config", str(config), "reconcile"]
    expect(invoke([*args, str(desired), "--report-dir", str(tmp_path / "r")]), 1)
    config.write_text("[reconcile]\nmax_changes = 100\n")
    typed = ["--max-changes", "900", "--report-dir", str(tmp_path / "s")]
    expect(invoke([*args, str(desired), *typed]), 0)
    expect(invoke([*args, str(desired), "--report-dir", str(tmp_path / "t")]), 0)
    assert used == [900, 100]  # the typed value wins; the file may only lower the default


# ---------------------------------------------------------------- messages for bad groups


def test_a_file_whose_every_group_is_malformed_says_so(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # Repro: a group column of fullwidth ids said "no group in scope: add a group column".
    members = sandbox.state.ungrouped_sims(3)
    sandbox.state.set_members(G1, members)
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in G1)
    desired = write_desired(tmp_path / "d.csv", [(i, fullwidth) for i in members])
    result = expect(reconcile(sandbox, tmp_path, str(desired), "--apply"), 2)
    assert "bad_group" in result.stderr and "row 2" in result.stderr
    assert "add a group column" not in result.stderr
    assert sandbox.state.mutation_log() == []


# ---------------------------------------------------------------- a workbook of several sheets


def _two_sheet_workbook(path: Path, first: list[str], second: list[str], group: str) -> Path:
    book = Workbook()
    part1 = book.active
    assert part1 is not None
    part1.title = "Part 1"
    part2 = book.create_sheet("Part 2")
    for sheet, iccids in ((part1, first), (part2, second)):
        sheet.append(["ICCID", "group_id"])
        for iccid in iccids:
            sheet.append([iccid, group])
    book.save(path)
    return path


def test_a_second_visible_sheet_is_never_ignored_silently(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # Repro: a desired list split over two sheets; reconcile read the first only and removed the
    # members listed on the second (1 of 20 is under the 10% guard).
    members = sandbox.state.ungrouped_sims(20)
    sandbox.state.set_members(G1, members)
    book = _two_sheet_workbook(tmp_path / "d.xlsx", members[:19], members[19:], G1)
    result = expect(reconcile(sandbox, tmp_path, str(book), "--apply"), 2)
    assert "'Part 2'" in result.stderr and "--sheet" in result.stderr
    assert sandbox.state.mutation_log() == []
    assert sorted(sandbox.state.members(G1)) == sorted(members)
    # Naming the sheet is the user's choice: then it is the whole desired state.
    expect(reconcile(sandbox, tmp_path, str(book), "--sheet", "Part 1", "--apply", report="s"), 0)
    assert sorted(sandbox.state.members(G1)) == sorted(members[:19])


def test_a_hidden_second_sheet_does_not_stop_reconcile(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    members = sandbox.state.ungrouped_sims(3)
    sandbox.state.set_members(G1, members)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["ICCID", "group_id"])
    for iccid in members:
        sheet.append([iccid, G1])
    hidden = book.create_sheet("lookup")
    hidden.sheet_state = "hidden"
    book.save(tmp_path / "d.xlsx")
    expect(reconcile(sandbox, tmp_path, str(tmp_path / "d.xlsx"), "--apply"), 0)


# ---------------------------------------------------------------- a group column not recognised


def test_a_group_column_under_an_unknown_header_is_refused_not_replaced_by_group(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # Repro: header "Bundle Group ID" is not one of the group aliases, so every row took --group:
    # with --all-groups the SIM the file wanted in G2 was moved out of G2 into G1.
    kept = sandbox.state.ungrouped_sims(3)
    sandbox.state.set_members(G1, kept)
    sim, *fleet = sandbox.state.ungrouped_sims(20)
    sandbox.state.set_members(G2, [sim, *fleet])
    path = tmp_path / "d.csv"
    rows = [f"{i},{G1}" for i in kept] + [f"{sim},{G2}"]
    path.write_text("ICCID,Bundle Group ID\n" + "\n".join(rows) + "\n")
    result = expect(
        reconcile(sandbox, tmp_path, str(path), "--group", G1, "--all-groups", "--apply"), 2
    )
    assert "'Bundle Group ID'" in result.stderr and "group_id" in result.stderr
    assert sandbox.state.group_of(sim) == G2
    assert sandbox.state.mutation_log() == []


def test_a_recognised_group_column_next_to_a_group_name_column_is_fine(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    kept = sandbox.state.ungrouped_sims(3)
    sandbox.state.set_members(G1, kept)
    path = tmp_path / "d.csv"
    path.write_text("iccid,group_id,Group Name\n" + "".join(f"{i},{G1},Pilot\n" for i in kept))
    expect(reconcile(sandbox, tmp_path, str(path), "--apply"), 0)


def test_two_group_columns_are_refused(sandbox: SandboxServer, tmp_path: Path) -> None:
    # Repro: "iccid,group,group_id": the group_id column won and the other was never read.
    kept = sandbox.state.ungrouped_sims(3)
    sandbox.state.set_members(G1, kept)
    path = tmp_path / "d.csv"
    path.write_text("iccid,group,group_id\n" + "".join(f"{i},{G2},{G1}\n" for i in kept))
    result = expect(reconcile(sandbox, tmp_path, str(path), "--apply"), 2)
    assert "'group'" in result.stderr and "'group_id'" in result.stderr
    assert sandbox.state.mutation_log() == []


def test_a_second_iccid_column_of_the_same_name_is_refused(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # Repro: two lists side by side under "ICCID": the second was ignored, its SIMs removed.
    members = sandbox.state.ungrouped_sims(20)
    sandbox.state.set_members(G1, members)
    path = tmp_path / "d.csv"
    left, right = members[:19], members[19:] + [""] * 18
    path.write_text(
        "ICCID,group_id,ICCID\n"
        + "".join(f"{a},{G1},{b}\n" for a, b in zip(left, right, strict=True))
    )
    result = expect(reconcile(sandbox, tmp_path, str(path), "--apply"), 2)
    assert "'ICCID'" in result.stderr
    assert sandbox.state.mutation_log() == []
    assert sorted(sandbox.state.members(G1)) == sorted(members)


def test_control_characters_from_the_file_are_escaped_in_the_reports(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # Repro: an ICCID cell holding "\x1b[2J" was copied raw into items.csv and drift.csv, so
    # `cat items.csv` cleared the screen.
    kept = sandbox.state.ungrouped_sims(2)
    sandbox.state.set_members(G1, kept)
    desired = write_desired(
        tmp_path / "d.csv", [(kept[0], G1), (kept[1], G1), ("\x1b[2J\x1b]0;x\x07 89", G1)]
    )
    expect(reconcile(sandbox, tmp_path, str(desired), "--skip-invalid"), 4)
    for name in ("items.csv", "drift.csv", "summary.json"):
        text = (tmp_path / "r" / name).read_text(encoding="utf-8")
        assert "\x1b" not in text and "\x07" not in text, name
    assert "\\x1b[2J" in (tmp_path / "r" / "items.csv").read_text(encoding="utf-8")
    book = load_workbook(tmp_path / "r" / "report.xlsx", read_only=True)
    cells = [
        str(c) for ws in book.worksheets for row in ws.iter_rows(values_only=True) for c in row
    ]
    assert any("\\x1b[2J" in c for c in cells)
    assert not any("\x1b" in c for c in cells)
