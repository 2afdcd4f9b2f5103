"""Issue #14, the 1M add's CPU per batch: the items.csv and workbook of a large run are written by
a process of its own, off the GIL the run needs, and they are the files a thread writes."""

from __future__ import annotations

import pickle
import shutil
import subprocess
from pathlib import Path

import pytest
from enginehelp import summary_of, workbook_cells

from lf_bulk import bulk, reports
from lf_bulk.journal import Journal, PlannedItem
from lf_bulk.models import InputCounts, OutcomeCode
from lf_bulk.reports import ItemOutcome, StreamedRunReport

ITEMS = [
    ItemOutcome(2, "89852420000000000011", "added", "", "", "r-1"),
    ItemOutcome(3, '=HYPERLINK("x")', "invalid", "not_digits", "not only digits & <more>"),
    ItemOutcome(4, "89852420000000000029", "failed", "SIM_LOCKED", "+locked, try later", "r-1"),
    ItemOutcome(5, "89852420000000000037", "pending", "LOST", " -answer lost\x01", ""),
]


def stream(folder: Path, *, separate_process: bool) -> Path:
    report = StreamedRunReport(folder, separate_process=separate_process)
    if separate_process:
        assert report._process is not None, "the report process did not start"
    report.add(ITEMS[:1])
    report.add([])
    report.add(ITEMS[1:])
    return report.finish(summary_of(ITEMS), extra_facts=[("Verified by run", "v1")])


def test_the_report_process_writes_the_files_the_thread_writes(tmp_path: Path) -> None:
    by_thread = stream(tmp_path / "thread", separate_process=False)
    by_process = stream(tmp_path / "process", separate_process=True)
    for name in ("items.csv", "summary.json"):
        assert (by_process / name).read_bytes() == (by_thread / name).read_bytes(), name
    assert workbook_cells(by_process / "report.xlsx") == workbook_cells(by_thread / "report.xlsx")
    assert sorted(p.name for p in by_process.iterdir()) == [
        "items.csv",
        "report.xlsx",
        "summary.json",
    ]


def test_an_abandoned_process_stream_leaves_the_folder_as_it_was(tmp_path: Path) -> None:
    folder = stream(tmp_path / "r", separate_process=False)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    report = StreamedRunReport(folder, separate_process=True)
    report.add(ITEMS)
    process = report._process
    report.abandon()
    assert process is not None and process.returncode == 0
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_a_parent_that_dies_mid_report_leaves_no_file(tmp_path: Path) -> None:
    # The input ends without a summary (kill -9 of the run): nothing is put in place.
    rows = pickle.dumps(("rows", [(2, "8985", "added", "", "", "")]))
    done = subprocess.run(
        [*reports_process_command(tmp_path)], input=rows, capture_output=True, check=False
    )
    assert done.returncode == 0 and done.stdout == b""
    assert list(tmp_path.iterdir()) == []


def reports_process_command(target: Path) -> list[str]:
    import sys

    return [sys.executable, "-m", "lf_bulk.reports_process", str(target)]


def test_a_workbook_the_process_cannot_write_is_an_os_error(tmp_path: Path) -> None:
    folder = tmp_path / "r"
    report = StreamedRunReport(folder, separate_process=True)
    report.add(ITEMS)
    process = report._process
    shutil.rmtree(folder)  # the folder went away during the run
    with pytest.raises(OSError):
        report.finish(summary_of(ITEMS))
    assert process is not None and process.returncode == 1
    assert not folder.exists()


def test_a_row_the_workbook_refuses_is_the_error_naming_it(tmp_path: Path) -> None:
    report = StreamedRunReport(tmp_path / "r", separate_process=True)
    report.add_rows([(2, "8985", "added", "", "", "")])
    report.add_rows([("3", "8985", "added", "", "", "")])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="row 3, column 'row': expected an int"):
        report.finish(summary_of(ITEMS))
    assert not (tmp_path / "r" / "summary.json").exists()


def test_a_large_run_streams_its_workbook_through_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "WORKBOOK_PROCESS_ITEMS", 3)
    with Journal(tmp_path / "j.db") as journal:
        planned = [PlannedItem(n + 2, f"89{n:017d}", "ADD", "G1") for n in range(3)]
        small = journal.create_run(
            kind="sims", operation="ADD", group_id="G1", items=planned[:2], batch_size=5,
            report_dir=str(tmp_path / "small"), counts=InputCounts(2, 2, 0, 0),
        )  # fmt: skip
        large = journal.create_run(
            kind="sims", operation="ADD", group_id="G1", items=planned, batch_size=5,
            report_dir=str(tmp_path / "large"), counts=InputCounts(3, 3, 0, 0),
        )  # fmt: skip
        small_reporter, large_reporter = (
            bulk.RunReporter(journal, small),
            bulk.RunReporter(journal, large),
        )
        assert small_reporter._stream is not None and small_reporter._stream._process is None
        assert large_reporter._stream is not None and large_reporter._stream._process is not None
        folder = large_reporter.finish(5)
        small_reporter.finish(5)
    cells = workbook_cells(folder / "report.xlsx")
    assert [row[1] for row in cells["Items"][1:]] == [p.iccid for p in planned]
    assert {row[2] for row in cells["Items"][1:]} == {OutcomeCode.PENDING}


def test_the_threshold_is_a_large_run(tmp_path: Path) -> None:
    assert reports.WORKBOOK_PROCESS_ITEMS >= 10_000


def test_the_report_process_deflates_its_workbook_quickly(tmp_path: Path) -> None:
    import zipfile
    import zlib

    def deflated_size(data: bytes, level: int) -> int:
        packer = zlib.compressobj(level, zlib.DEFLATED, -15)
        return len(packer.compress(data) + packer.flush())

    by_thread = stream(tmp_path / "thread", separate_process=False)
    by_process = stream(tmp_path / "process", separate_process=True)
    sizes = {}
    for folder in (by_thread, by_process):
        with zipfile.ZipFile(folder / "report.xlsx") as archive:
            entry = archive.getinfo("xl/worksheets/sheet2.xml")
            data = archive.read(entry)
            sizes[folder.name] = (
                entry.compress_size,
                deflated_size(data, 1),
                deflated_size(data, 6),
            )
    assert sizes["process"][0] == sizes["process"][1] != sizes["process"][2]
    assert sizes["thread"][0] == sizes["thread"][2]  # a small run's workbook: as before


def test_the_report_process_imports_our_code_and_holds_no_partner_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Run from a folder holding an `lf_bulk` of its own, with a partner code in the environment:
    # the process must import this copy of lf_bulk, and see no LF_BULK_* variable.
    planted = tmp_path / "cwd" / "lf_bulk"
    planted.mkdir(parents=True)
    marker = tmp_path / "planted-ran"
    (planted / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (planted / "reports_process.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.chdir(planted.parent)
    monkeypatch.setenv("PYTHONPATH", str(planted.parent))
    monkeypatch.setenv("LF_BULK_PARTNER_CODE_ACME", "P-SECRET-1")
    report = StreamedRunReport(tmp_path / "r", separate_process=True)
    process = report._process
    assert process is not None
    environ = Path(f"/proc/{process.pid}/environ").read_bytes()
    assert b"P-SECRET-1" not in environ and b"LF_BULK_" not in environ
    report.add(ITEMS)
    folder = report.finish(summary_of(ITEMS))
    assert not marker.exists()
    assert (folder / "items.csv").read_bytes() == (
        stream(tmp_path / "thread", separate_process=False) / "items.csv"
    ).read_bytes()
