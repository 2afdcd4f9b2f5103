"""Pieces the engine's journal and report tests share: a run with one batch already submitted,
the summary of a list of items, and a workbook's cells."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openpyxl import load_workbook

from lf_bulk.journal import Journal, PlannedItem
from lf_bulk.models import InputCounts
from lf_bulk.reports import ItemOutcome, RunSummary, count_outcomes


def submitted_run(journal: Journal, iccids: list[str], batch_size: int = 500) -> tuple[str, int]:
    """A new ADD run of `iccids` to G1 in one batch, sent and submitted (request id r1)."""
    items = [PlannedItem(n + 2, iccid, "ADD", "G1") for n, iccid in enumerate(iccids)]
    run_id = journal.create_run(
        kind="sims", operation="ADD", group_id="G1", items=items, batch_size=batch_size,
        counts=InputCounts(len(items), len(items), 0, 0),
    )  # fmt: skip
    (batch,) = journal.batches(run_id)
    journal.mark_sending(run_id, batch.batch_id, sent_at=1.0)
    journal.mark_submitted(run_id, batch.batch_id, "r1", submitted_at=1.0, first_poll=2.0)
    return run_id, batch.batch_id


def summary_of(items: list[ItemOutcome]) -> RunSummary:
    return RunSummary(
        "r1", "ADD", "G1", 4, 3, 1, 0, 1, count_outcomes(items), "2026-11-29T08:00:00Z", None, 5
    )


def workbook_cells(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    book = load_workbook(path)
    cells = {ws.title: [tuple(c.value for c in row) for row in ws.iter_rows()] for ws in book}
    book.close()
    return cells
