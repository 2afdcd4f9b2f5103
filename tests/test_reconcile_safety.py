"""Reconcile never removes on input it could not read, refuses mass removals, checks before sending.

End to end against the sandbox over 127.0.0.1 (issue 9 items 1 and 17).
"""

from __future__ import annotations

import csv
import json
from itertools import product
from pathlib import Path

import pytest
from openpyxl import Workbook

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


def members_of(server: SandboxServer, group: str, count: int) -> list[str]:
    """Make `group` hold exactly `count` SIMs (taken from no group) and return them."""
    sims = server.state.ungrouped_sims(count)
    server.state.set_members(group, sims)
    return sims


def write_desired(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["iccid", "group_id"])
        writer.writerows(rows)
    return path


def mistype(iccid: str) -> str:
    """The same ICCID with a wrong check digit."""
    return iccid[:-1] + str((int(iccid[-1]) + 1) % 10)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_numeric_xlsx_with_skip_invalid_and_apply_removes_nothing(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    members = members_of(sandbox, G1, 20)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["ICCID"])
    for iccid in members:
        sheet.append([int(iccid)])  # what Excel does to a column not formatted as Text
    book.save(tmp_path / "desired.xlsx")
    result = expect(
        reconcile(
            sandbox,
            tmp_path,
            str(tmp_path / "desired.xlsx"),
            "--group",
            G1,
            "--skip-invalid",
            "--apply",
            "--max-removal-ratio",
            "1",
        ),
        2,
    )
    assert "no valid row" in result.stderr
    assert sandbox.state.mutation_log() == []
    assert sorted(sandbox.state.members(G1)) == sorted(members)
    rejected = read_csv(tmp_path / "r" / "items.csv")
    assert len(rejected) == 20 and {r["category"] for r in rejected} == {"invalid"}
    assert str(tmp_path / "r") in result.stdout


def test_one_mistyped_member_is_not_removed_and_the_exit_is_not_0(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    members = members_of(sandbox, G1, 20)
    new = sandbox.state.ungrouped_sims(1)[0]
    rows = [(mistype(i) if n == 4 else i, G1) for n, i in enumerate(members)] + [(new, G1)]
    desired = write_desired(tmp_path / "d.csv", rows)
    result = expect(
        reconcile(sandbox, tmp_path, str(desired), "--skip-invalid", "--apply"),
        4,
    )
    assert sandbox.state.group_of(members[4]) == G1  # never removed
    assert sandbox.state.group_of(new) == G1  # additions still happen
    assert all(m.method != "DELETE" for m in sandbox.state.mutation_log())
    items = {r["iccid"]: r for r in read_csv(tmp_path / "r" / "items.csv")}
    assert items[new]["plan"] == "add"
    drift = {r["iccid"]: r for r in read_csv(tmp_path / "r" / "drift.csv")}
    assert drift[members[4]]["category"] == "unexpected"
    assert "withheld" in drift[members[4]]["detail"]
    assert "withheld" in result.stderr


def test_invalid_rows_without_skip_invalid_write_the_rejected_rows(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    members = members_of(sandbox, G1, 5)
    desired = write_desired(tmp_path / "d.csv", [(members[0], G1), (mistype(members[1]), G1)])
    result = expect(reconcile(sandbox, tmp_path, str(desired), "--apply"), 2)
    assert "row 3" in result.stderr and "bad_checksum" in result.stderr
    assert result.stdout.strip() == str(tmp_path / "r")
    (rejected,) = read_csv(tmp_path / "r" / "items.csv")
    assert rejected["row"] == "3" and rejected["category"] == "invalid"
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["exit_code"] == 2
    assert sandbox.state.mutation_log() == []


def test_header_only_file_never_empties_the_group(sandbox: SandboxServer, tmp_path: Path) -> None:
    members = members_of(sandbox, G1, 5)
    header_only = write_desired(tmp_path / "d.csv", [])
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    for desired, extra in product((header_only, empty), ([], ["--skip-invalid"])):
        expect(
            reconcile(
                sandbox,
                tmp_path,
                str(desired),
                "--group",
                G1,
                "--apply",
                "--max-removal-ratio",
                "1",
                *extra,
            ),
            2,
        )
    assert sandbox.state.mutation_log() == []
    assert sorted(sandbox.state.members(G1)) == sorted(members)


def test_mass_removal_is_refused_with_the_numbers_then_allowed_by_the_flag(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    members = members_of(sandbox, G1, 20)
    desired = write_desired(tmp_path / "d.csv", [(i, G1) for i in members[:15]])
    refused = expect(reconcile(sandbox, tmp_path, str(desired), "--apply"), 2)
    assert G1 in refused.stderr
    assert "20 members" in refused.stderr and "5 removals" in refused.stderr
    assert "25%" in refused.stderr and "10%" in refused.stderr
    assert "--max-removal-ratio 0.25" in refused.stderr
    assert refused.stdout.strip() == str(tmp_path / "r")
    assert sandbox.state.mutation_log() == []
    expect(
        reconcile(
            sandbox, tmp_path, str(desired), "--apply", "--max-removal-ratio", "0.25", report="r2"
        ),
        0,
    )
    assert sorted(sandbox.state.members(G1)) == sorted(members[:15])


def test_a_config_file_cannot_raise_the_removal_ratio_nor_turn_apply_on(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    members = members_of(sandbox, G1, 20)
    desired = write_desired(tmp_path / "d.csv", [(i, G1) for i in members[:15]])
    config = tmp_path / "lf-bulk.toml"
    config.write_text("[reconcile]\napply = true\nmax_removal_ratio = 1.0\n")
    args = [*base_args(tmp_path / "h", sandbox.base_url), "--config", str(config), "reconcile"]
    report = ["--report-dir", str(tmp_path / "r")]
    refused = expect(invoke([*args, str(desired), *report]), 1)
    assert str(config) in refused.stderr and "reconcile.apply" in refused.stderr
    config.write_text("[reconcile]\nmax_removal_ratio = 1.0\n")
    refused = expect(invoke([*args, str(desired), "--apply", *report]), 1)
    assert "max_removal_ratio" in refused.stderr
    config.write_text("[reconcile]\nmax_removal_ratio = 0.05\n")
    expect(invoke([*args, str(desired), *report]), 4)
    expect(invoke([*args, str(desired), "--apply", *report]), 2)
    assert sandbox.state.mutation_log() == []


def test_no_apply_wins_over_apply(sandbox: SandboxServer, tmp_path: Path) -> None:
    members = members_of(sandbox, G1, 5)
    new = sandbox.state.ungrouped_sims(1)[0]
    desired = write_desired(tmp_path / "d.csv", [*((i, G1) for i in members), (new, G1)])
    for flags in (["--apply", "--no-apply"], ["--no-apply", "--apply"]):
        expect(reconcile(sandbox, tmp_path, str(desired), *flags), 4)
    assert sandbox.state.mutation_log() == []


def test_an_unknown_group_is_refused_before_anything_is_sent(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    members = members_of(sandbox, G1, 5)
    new = sandbox.state.ungrouped_sims(1)[0]
    desired = write_desired(tmp_path / "d.csv", [*((i, G1) for i in members), (new, "G1OOOO4")])
    result = expect(reconcile(sandbox, tmp_path, str(desired), "--apply"), 2)
    assert "G1OOOO4" in result.stderr
    assert sandbox.state.mutation_log() == []


def test_an_unwritable_report_folder_is_refused_before_anything_is_sent(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    members = members_of(sandbox, G1, 5)
    new = sandbox.state.ungrouped_sims(1)[0]
    desired = write_desired(tmp_path / "d.csv", [*((i, G1) for i in members), (new, G1)])
    (tmp_path / "file").write_text("not a folder")
    result = expect(reconcile(sandbox, tmp_path, str(desired), "--apply", report="file/r"), 2)
    assert "cannot be written" in result.stderr
    assert sandbox.state.mutation_log() == []


def test_quiet_prints_only_the_report_path_and_items_csv_has_every_row(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    members = members_of(sandbox, G1, 5)
    new = sandbox.state.ungrouped_sims(1)[0]
    rows = [*((i, G1) for i in members), (new, G1), (members[0], G1)]
    desired = write_desired(tmp_path / "d.csv", rows)
    result = expect(
        invoke(
            [
                *base_args(tmp_path / "h", sandbox.base_url),
                "-q",
                "reconcile",
                str(desired),
                "--report-dir",
                str(tmp_path / "r"),
            ]
        ),
        4,
    )
    assert result.stdout == f"{tmp_path / 'r'}\n"
    items = read_csv(tmp_path / "r" / "items.csv")
    assert [r["row"] for r in items] == [str(n) for n in range(2, 9)]
    assert [r["category"] for r in items] == [*["in_sync"] * 5, "missing", "duplicate"]
    assert [r["plan"] for r in items] == [*["none"] * 5, "add", "none"]
