"""Second review of report files as an attack surface: a report folder others can write to.

Whoever can write to the report folder can swap names in it while lf-bulk writes; what they
must never achieve is lf-bulk writing *through* a link they planted into a file of the user.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobs.render import emit
from lf_bulk.errors import InputError
from lf_bulk.reports import RunSummary, prepare_report_dir, write_run_report
from lf_bulk.sandbox.seed import PILOT_GROUP
from lf_bulk.sandbox.server import SandboxServer
from lf_bulk.xlsx import Column, Sheet, atomic_file, write_workbook

from clihelp import base_args, expect, invoke, write_list

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")

VICTIM_TEXT = "the user's precious file\n"


def swap_temp_for_link(folder: Path, victim: Path) -> None:
    """What another user does in a folder they may write to: replace our scratch name by a link."""
    (temp,) = folder.glob(".report.xlsx.*.tmp")
    temp.unlink()
    temp.symlink_to(victim)


def rows_that_swap(folder: Path, victim: Path) -> Iterator[tuple[object, ...]]:
    yield ("a",)
    swap_temp_for_link(folder, victim)  # while the workbook is being written
    yield ("b",)


def test_a_workbook_is_never_written_through_a_link_planted_at_its_temp_name(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text(VICTIM_TEXT)
    sheet = Sheet("Items", [Column("x", "text")], rows_that_swap(folder, victim))
    # Refusing is right (the folder is not safe); writing into the victim never is.
    with pytest.raises(OSError, match="replaced by someone else"):
        write_workbook(folder / "report.xlsx", [sheet])
    assert victim.read_text() == VICTIM_TEXT
    assert not (folder / "report.xlsx").exists()
    assert list(folder.iterdir()) == []  # the planted link is gone too


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_reports_are_not_writable_by_others_under_a_permissive_umask(
    tmp_path: Path, permissive_umask: None
) -> None:
    with atomic_file(tmp_path / "items.csv") as out:
        out.write("x\n")
    write_workbook(tmp_path / "report.xlsx", [Sheet("Items", [Column("x", "text")], [("a",)])])
    for name in ("items.csv", "report.xlsx"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) & 0o022 == 0, name


def others_may_write(path: Path) -> bool:
    return bool(stat.S_IMODE(path.stat().st_mode) & 0o022)


def test_report_folders_are_created_not_writable_by_others_under_a_permissive_umask(
    tmp_path: Path, permissive_umask: None
) -> None:
    # Under umask 0 a folder made with the default mode is 0777: anyone could swap the reports.
    prepared = prepare_report_dir(tmp_path / "a" / "b")
    summary = RunSummary("r1", "add", "G", 1, 1, 0, 0, 1, {"added": 1}, "t0", "t1", 0)
    written = write_run_report(tmp_path / "c" / "d", [], summary)
    emit("text\n", tmp_path / "e" / "f" / "out.csv")
    for folder in (prepared, prepared.parent, written, written.parent, tmp_path / "e" / "f"):
        assert not others_may_write(folder), folder
    for name in ("items.csv", "report.xlsx", "summary.json"):
        assert not others_may_write(written / name), name


NOBODY = 65534


def test_a_report_folder_of_another_user_is_refused_before_anything_is_sent(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # Planted where the reports would go (e.g. a shared working folder): its owner could read
    # the ICCIDs and change the reports.
    report = tmp_path / "theirs"
    report.mkdir(mode=0o755)
    os.chown(report, NOBODY, NOBODY)
    file = write_list(tmp_path / "s.csv", sandbox.state.ungrouped_sims(2))
    args = [*base_args(tmp_path / "home", sandbox.base_url), "sims", "add", PILOT_GROUP]
    result = expect(invoke([*args, str(file), "--report-dir", str(report)]), 2)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and str(report) in last and "another user" in last
    assert sandbox.state.mutation_log() == []
    assert list(report.iterdir()) == []
    # No run is left behind for a later `runs resume` to send: the user chose another folder.
    listed = expect(
        invoke(["--home", str(tmp_path / "home"), "runs", "list", "--format", "json"]), 0
    )
    assert json.loads(listed.stdout) == []


def test_a_report_folder_reached_through_another_users_link_is_refused(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    link = tmp_path / "link"
    link.symlink_to(mine)
    os.lchown(link, NOBODY, NOBODY)
    with pytest.raises(InputError, match="symbolic link"):
        prepare_report_dir(link)
    assert prepare_report_dir(mine) == mine
