"""Reports streamed while a run goes on: the same files as written at the end, and a resumed run's
reports complete and identical in content to an uninterrupted run's."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from enginehelp import summary_of, workbook_cells

from lf_bulk import bulk
from lf_bulk.engine import EngineOptions, RunDriver
from lf_bulk.exitcodes import ExitCode
from lf_bulk.journal import PlannedItem
from lf_bulk.models import InputCounts, Operation, OutcomeCode
from lf_bulk.reports import (
    ItemOutcome,
    RunSummary,
    StreamedRunReport,
    write_run_report,
)
from lf_bulk.sandbox.seed import PILOT_GROUP

from clihelp import base_args, expect, invoke, read_items, subprocess_cli, wait_for_run, write_list
from conftest import MakeSandbox
from inprocess import open_world

ITEMS = [
    ItemOutcome(2, "89852420000000000011", "added", "", "", "r-1"),
    ItemOutcome(3, '=HYPERLINK("x")', "invalid", "not_digits", "not only digits"),
    ItemOutcome(4, "89852420000000000029", "failed", "SIM_LOCKED", "+locked, try later", "r-1"),
    ItemOutcome(5, "89852420000000000037", "pending", "LOST", "-answer lost", ""),
]


def test_a_streamed_report_is_the_report_written_at_once(tmp_path: Path) -> None:
    summary = summary_of(ITEMS)
    write_run_report(tmp_path / "once", ITEMS, summary, extra_facts=[("Verified by run", "v1")])
    stream = StreamedRunReport(tmp_path / "streamed")
    stream.add(ITEMS[:1])
    stream.add([])
    stream.add(ITEMS[1:])
    stream.finish(summary, extra_facts=[("Verified by run", "v1")])

    once, streamed = tmp_path / "once", tmp_path / "streamed"
    for name in ("items.csv", "summary.json"):
        assert (streamed / name).read_bytes() == (once / name).read_bytes(), name
    assert workbook_cells(streamed / "report.xlsx") == workbook_cells(once / "report.xlsx")
    assert list(workbook_cells(streamed / "report.xlsx")) == ["Summary", "Items"]
    assert sorted(p.name for p in streamed.iterdir()) == [
        "items.csv",
        "report.xlsx",
        "summary.json",
    ]


def test_an_abandoned_stream_leaves_the_folder_as_it_was(tmp_path: Path) -> None:
    folder = tmp_path / "r"
    write_run_report(folder, ITEMS[:1], summary_of(ITEMS[:1]))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    stream = StreamedRunReport(folder)
    stream.add(ITEMS)
    stream.abandon()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_an_outcome_outside_the_vocabulary_fails_before_anything_is_replaced(
    tmp_path: Path,
) -> None:
    stream = StreamedRunReport(tmp_path)
    stream.add([ItemOutcome(2, "8985", "teleported")])
    odd = RunSummary("r1", "ADD", "G1", 1, 1, 0, 0, 1, {"teleported": 1}, "", None, 0)
    with pytest.raises(ValueError, match="teleported"):
        stream.finish(odd)
    assert list(tmp_path.iterdir()) == []


def test_the_items_are_in_the_reports_before_the_run_ends(tmp_path: Path) -> None:
    # Batches finish in order: when the last answer is in, every item is already written and
    # `finish` has only the Summary left to write.
    world = open_world(tmp_path)
    try:
        iccids = world.state.ungrouped_sims(40)
        items = [PlannedItem(n + 2, i, Operation.ADD, PILOT_GROUP) for n, i in enumerate(iccids)]
        run_id = world.journal.create_run(
            kind="sims", operation="ADD", group_id=PILOT_GROUP, items=items, batch_size=5,
            report_dir=str(tmp_path / "report"), counts=InputCounts(40, 40, 0, 0),
        )  # fmt: skip
        reporter = bulk.RunReporter(world.journal, run_id)
        written: list[int] = []

        def advance() -> None:
            reporter.advance()
            written.append(reporter._next_item)

        driver = RunDriver(
            world.journal, world.client, run_id, clock=world.clock, sleep=world.clock.sleep,
            after_batches=advance,
        )  # fmt: skip
        result = driver.drive()
        assert written == sorted(written) and written[-1] == 40 and len(set(written)) > 2
        reporter.finish(result.exit_code)
    finally:
        world.close()
    rows = read_items(tmp_path / "report")
    assert [r["iccid"] for r in rows] == iccids
    assert {r["outcome"] for r in rows} == {OutcomeCode.ADDED}


def drive_in_process(folder: Path, *, stop_after: float | None) -> dict[str, Any]:
    """40 SIMs and an invalid row added in-process, stopped after `stop_after` (fake) seconds and
    driven again by a new reporter (as `runs resume` does), or driven once; its reports."""
    world = open_world(folder)
    try:
        iccids = world.state.ungrouped_sims(40)
        items = [PlannedItem(n + 2, i, Operation.ADD, PILOT_GROUP) for n, i in enumerate(iccids)]
        items.insert(20, PlannedItem(22, "8900", Operation.ADD, PILOT_GROUP,
                                     outcome=OutcomeCode.INVALID, reason_code="bad_length"))  # fmt: skip
        run_id = world.journal.create_run(
            kind="sims", operation="ADD", group_id=PILOT_GROUP, items=items, batch_size=5,
            report_dir=str(folder / "report"), counts=InputCounts(41, 40, 1, 0),
        )  # fmt: skip
        for timeout in (stop_after, None) if stop_after else (None,):
            reporter = bulk.RunReporter(world.journal, run_id)
            driver = RunDriver(
                world.journal, world.client, run_id, clock=world.clock, sleep=world.clock.sleep,
                options=EngineOptions(timeout=timeout), after_batches=reporter.advance,
            )  # fmt: skip
            result = driver.drive()
            reporter.finish(result.exit_code)
            if timeout:
                assert result.exit_code == ExitCode.NOT_FINISHED
                assert "pending" in {i["outcome"] for i in read_items(folder / "report")}
    finally:
        world.close()
    return comparable(folder / "report")


def test_a_run_stopped_in_process_and_driven_again_writes_the_reports_of_an_uninterrupted_run(
    tmp_path: Path,
) -> None:
    whole = drive_in_process(tmp_path / "whole", stop_after=None)
    resumed = drive_in_process(tmp_path / "resumed", stop_after=1.5)
    assert resumed == whole
    assert whole["summary"]["outcomes"]["added"] == 40


def comparable(report: Path) -> dict[str, Any]:
    """A report's content, less what differs between two runs of the same input (run ids,
    times, the server's request ids, which are checked to be there)."""
    items = read_items(report)
    assert all(i["request_id"] for i in items if i["outcome"] != "invalid")
    summary = json.loads((report / "summary.json").read_text())
    for key in ("run_id", "started_at", "finished_at"):
        summary.pop(key)
    cells = workbook_cells(report / "report.xlsx")
    sheet = [row[:5] for row in cells["Items"]]
    facts = [row[:2] for row in cells["Summary"] if row[0] not in ("Run", "Started at (UTC)",
             "Finished at (UTC)") and row[0] is not None and not str(row[0]).startswith("lf-bulk run")]  # fmt: skip
    return {
        "items": [{k: v for k, v in i.items() if k != "request_id"} for i in items],
        "summary": summary,
        "sheet": sheet,
        "facts": facts,
    }


def run_twice(
    make_sandbox: MakeSandbox, tmp_path: Path, interrupt: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same 600 SIMs added by an uninterrupted run and by one stopped half way and resumed."""
    reports = []
    for name in ("whole", "resumed"):
        server = make_sandbox("rate=60,concurrency=8,async=0.2-0.4s")
        wanted = server.state.ungrouped_sims(600)
        file = write_list(tmp_path / f"{name}.csv", [*wanted[:300], "8900", *wanted[300:]])
        home, report = tmp_path / f"{name}-home", tmp_path / f"{name}-report"
        args = [*base_args(home, server.base_url), "--rate", "40"]
        add = [*args, "sims", "add", PILOT_GROUP, str(file), "--skip-invalid", "--batch-size",
               "50", "--report-dir", str(report)]  # fmt: skip
        if name == "whole":
            expect(invoke(add), 0)
        elif interrupt == "kill":
            job = subprocess_cli(add)
            run_id = wait_for_run(home)
            time.sleep(1.5)
            job.send_signal(signal.SIGKILL)
            job.wait()
            expect(invoke([*args, "runs", "resume", run_id]), 0)
        else:
            expect(invoke([*add, "--timeout", "1"]), 5)
            assert {i["outcome"] for i in read_items(report)} >= {"pending", "invalid"}
            expect(invoke([*args, "runs", "resume"]), 0)
        reports.append(comparable(report))
    return reports[0], reports[1]


@pytest.mark.slow
def test_a_run_stopped_and_resumed_writes_the_reports_of_an_uninterrupted_run(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    whole, resumed = run_twice(make_sandbox, tmp_path, "timeout")
    assert resumed == whole
    assert whole["summary"]["outcomes"]["added"] == 600


@pytest.mark.slow
def test_a_run_killed_and_resumed_writes_the_reports_of_an_uninterrupted_run(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    whole, resumed = run_twice(make_sandbox, tmp_path, "kill")
    assert resumed == whole
