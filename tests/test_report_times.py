"""The Summary sheet's run times are real date-time cells, not text (issue 9, item 17)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import openpyxl
import pytest

from lf_bulk.reports import ItemOutcome, RunSummary, count_outcomes, excel_time, write_run_report

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")


def test_summary_times_are_date_cells_in_utc(tmp_path: Path) -> None:
    items = [ItemOutcome(2, "89860000000000000005", "added", "", "", "r1")]
    summary = RunSummary(
        run_id="20240601-120000-abcd",
        operation="add",
        group_id="G1",
        input_rows=1,
        valid=1,
        invalid=0,
        duplicates=0,
        batches=1,
        outcomes=count_outcomes(items),
        started_at="2024-06-01T12:00:00Z",
        finished_at="2024-06-01T12:00:05Z",
        exit_code=0,
    )
    report = write_run_report(tmp_path / "r", items, summary)

    sheet = openpyxl.load_workbook(report / "report.xlsx")["Summary"]
    facts = {row[0].value: row[1] for row in sheet.iter_rows(min_col=1, max_col=2) if row[0].value}
    started, finished = facts["Started at (UTC)"], facts["Finished at (UTC)"]
    assert started.value == datetime(2024, 6, 1, 12, 0, 0)
    assert finished.value == datetime(2024, 6, 1, 12, 0, 5)
    assert started.is_date and finished.is_date


def test_an_unfinished_run_and_odd_text_stay_readable() -> None:
    assert excel_time(None) is None
    assert excel_time("not a time") == "not a time"
    assert excel_time("2024-06-01T14:00:00+02:00") == datetime(2024, 6, 1, 12, 0, 0)
