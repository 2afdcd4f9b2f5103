"""A run's reports are streamed from plain rows: after each batch the items that became final
are read as tuples and written, with no record object per item (a million-item run made two per
item, on the engine's thread)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from lf_bulk import bulk
from lf_bulk.exitcodes import ExitCode
from lf_bulk.journal import FINAL, Journal, Outcome, PlannedItem
from lf_bulk.models import InputCounts, OutcomeCode

ICCIDS = [f"8985242{n:013d}" for n in range(12)]


def _run(journal: Journal, report_dir: Path) -> str:
    items = [PlannedItem(n + 2 + (n >= 5), i, "ADD", "G1") for n, i in enumerate(ICCIDS)]
    items.insert(5, PlannedItem(7, "=1+2", "ADD", "G1", outcome=OutcomeCode.INVALID,
                                reason_code="not_digits", reason="-not only digits"))  # fmt: skip
    return journal.create_run(
        kind="sims", operation="ADD", group_id="G1", items=items, batch_size=5,
        report_dir=str(report_dir), counts=InputCounts(13, 12, 1, 0),
    )  # fmt: skip


def _answer(journal: Journal, run_id: str, batch_id: int, outcome: Outcome) -> None:
    journal.mark_sending(run_id, batch_id, sent_at=1.0)
    journal.mark_submitted(run_id, batch_id, f"r{batch_id}", submitted_at=1.0, first_poll=2.0)
    pending = journal.batch_attempts(run_id, batch_id)
    journal.close_batch(
        run_id,
        batch_id,
        state=FINAL,
        api_status="SUCCESS",
        outcomes=dict.fromkeys(pending, outcome),
    )


def test_final_rows_are_read_in_id_order_up_to_the_first_pending_item(tmp_path: Path) -> None:
    with Journal(tmp_path / "journal.db") as journal:
        run_id = _run(journal, tmp_path / "report")
        first, second, _ = journal.batches(run_id)
        assert journal.final_report_rows_from(run_id, 0) == []
        _answer(journal, run_id, second.batch_id, Outcome(OutcomeCode.ADDED))
        assert journal.final_report_rows_from(run_id, 0) == []  # the first batch is pending
        _answer(journal, run_id, first.batch_id, Outcome(OutcomeCode.FAILED, "SIM_LOCKED", "+x"))
        rows = journal.final_report_rows_from(run_id, 0)
        assert [r[0] for r in rows] == list(range(2, 13))  # 10 sent and the invalid row 7
        assert rows[0] == (2, ICCIDS[0], "failed", "SIM_LOCKED", "+x", f"r{first.batch_id}")
        assert rows[5] == (7, "=1+2", "invalid", "not_digits", "-not only digits", "")
        assert journal.final_report_rows_from(run_id, 6)[0][0] == 8


def test_the_reporter_streams_rows_without_an_item_record_and_writes_every_item(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Journal(tmp_path / "journal.db") as journal:
        run_id = _run(journal, tmp_path / "report")
        reporter = bulk.RunReporter(journal, run_id)
        with monkeypatch.context() as patched:

            def no_records(*_: object) -> None:
                raise AssertionError("advance read item records")

            patched.setattr(journal, "items_from", no_records)
            for batch in journal.batches(run_id)[:2]:
                _answer(journal, run_id, batch.batch_id, Outcome(OutcomeCode.ADDED))
                reporter.advance()
        assert reporter._next_item == 11
        folder = reporter.finish(ExitCode.NOT_FINISHED)
        with (folder / "items.csv").open(newline="") as written:
            rows = list(csv.DictReader(written))
        # The same rows `write_reports` writes from the journal at the end.
        bulk.write_reports(journal, journal.run(run_id), ExitCode.NOT_FINISHED)
        with (folder / "items.csv").open(newline="") as whole:
            assert rows == list(csv.DictReader(whole))
    assert [r["row"] for r in rows] == [str(n) for n in range(2, 15)]
    assert rows[5]["iccid"] == "'=1+2" and rows[5]["reason"] == "'-not only digits"
    assert [r["outcome"] for r in rows].count("added") == 10
    assert [r["outcome"] for r in rows[-2:]] == ["pending", "pending"]
