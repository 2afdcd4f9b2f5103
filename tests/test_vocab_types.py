"""One vocabulary, typed: run statuses, batch states, outcomes and work kinds are StrEnums whose
text is what journals and reports always held, and input counts are one type."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from lf_bulk import engine, journal, reports
from lf_bulk.exitcodes import ExitCode
from lf_bulk.iccid import with_check_digit
from lf_bulk.journal import BatchState, Journal, Outcome, PlannedItem, RunStatus
from lf_bulk.models import InputCounts, Operation, OutcomeCode
from lf_bulk.sources import read_iccids


def test_the_old_constant_names_are_the_enum_members_with_the_old_text() -> None:
    statuses = {
        journal.RUNNING: "running",
        journal.NOT_FINISHED: "not_finished",
        journal.FINISHED: "finished",
        journal.FAILED: "failed",
        journal.CANCELLED: "cancelled",
        journal.INTERRUPTED: "interrupted",
    }
    states = {
        journal.PLANNED: "planned",
        journal.SENDING: "sending",
        journal.SUBMITTED: "submitted",
        journal.FINAL: "final",
        journal.SPLIT: "split",
        journal.ANSWER_LOST: "answer_lost",
        journal.LOST: "lost",
        journal.CANCELLED_BATCH: "cancelled",
    }
    assert {type(s) for s in statuses} == {RunStatus}
    assert {type(s) for s in states} == {BatchState}
    assert all(member.value == text for member, text in (statuses | states).items())
    assert set(RunStatus) == set(statuses) and set(BatchState) == set(states)
    assert {RunStatus.FINISHED, RunStatus.FAILED, RunStatus.CANCELLED} == journal.TERMINAL_STATUSES
    assert {RunStatus.FAILED, RunStatus.CANCELLED} == journal.NOT_RESUMABLE
    assert journal.PENDING is OutcomeCode.PENDING
    assert [str(kind) for kind in engine.WorkKind] == ["send", "poll"]


def test_the_report_vocabularies_are_outcome_codes_in_report_order() -> None:
    assert reports.OUTCOMES == (
        "added",
        "removed",
        "already_member",
        "not_member",
        "failed",
        "invalid",
        "duplicate",
        "pending",
    )
    assert reports.DRY_RUN_OUTCOMES == (
        "would_add",
        "would_remove",
        "already_member",
        "not_member",
        "invalid",
        "duplicate",
    )
    every = (*reports.OUTCOMES, *reports.DRY_RUN_OUTCOMES)
    assert all(isinstance(outcome, OutcomeCode) for outcome in every)
    lookups = {"verified", "rejected", "looked_up", "cancelled", "no_renewal", "not_found"}
    top_ups = {"created", "exists", "would_create"}  # `orders create` and its dry run
    assert set(OutcomeCode) == set(every) | lookups | top_ups  # the per-SIM outcomes of v2


def test_outcome_of_gives_outcome_codes() -> None:
    assert engine.outcome_of(Operation.ADD, True, "", "").outcome is OutcomeCode.ADDED
    assert engine.outcome_of(Operation.REMOVE, True, "", "").outcome is OutcomeCode.REMOVED
    refused = engine.outcome_of(Operation.ADD, False, "SIM_LOCKED", "busy")
    assert refused == Outcome(OutcomeCode.FAILED, "SIM_LOCKED", "busy")


def test_the_journal_stores_the_same_plain_text(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with Journal(path) as jn:
        run_id = jn.create_run(
            kind="sims",
            operation=Operation.ADD,
            group_id="G1",
            items=[
                PlannedItem(2, "89000000000000000001", Operation.ADD, "G1"),
                PlannedItem(3, "x", Operation.ADD, "G1", outcome=OutcomeCode.INVALID),
            ],
            batch_size=10,
            counts=InputCounts(input_rows=2, valid=1, invalid=1, duplicates=0),
        )
        jn.mark_sending(run_id, 1)
        jn.close_batch(
            run_id,
            1,
            state=journal.FINAL,
            api_status="SUCCESS",
            outcomes={"89000000000000000001": Outcome(OutcomeCode.ADDED)},
        )
        jn.set_run_status(run_id, journal.FINISHED, 0)
        record = jn.run(run_id)
    assert (record.input_rows, record.valid, record.invalid, record.duplicates) == (2, 1, 1, 0)
    with sqlite3.connect(path) as db:
        run = db.execute(
            "SELECT status, typeof(status), operation, typeof(operation) FROM runs"
        ).fetchone()
        batch = db.execute("SELECT state, typeof(state) FROM batches").fetchone()
        items = db.execute("SELECT outcome, typeof(outcome) FROM items ORDER BY row").fetchall()
    db.close()
    assert run == ("finished", "text", "ADD", "text")
    assert batch == ("final", "text")
    assert items == [("added", "text"), ("invalid", "text")]


def test_summary_json_counts_outcomes_under_their_plain_names(tmp_path: Path) -> None:
    summary = reports.RunSummary(
        run_id="r1",
        operation="ADD",
        group_id="G1",
        input_rows=3,
        valid=3,
        invalid=0,
        duplicates=0,
        batches=1,
        outcomes={OutcomeCode.ADDED: 2, "failed": 1},
        started_at="2026-11-29T08:00:00Z",
        finished_at="2026-11-29T08:01:00Z",
        exit_code=3,
    )
    path = tmp_path / "summary.json"
    reports.write_summary_json(path, summary)
    text = path.read_text()
    assert '"outcomes": {\n    "added": 2,\n    "removed": 0,' in text
    assert json.loads(text)["outcomes"] == {
        "added": 2,
        "removed": 0,
        "already_member": 0,
        "not_member": 0,
        "failed": 1,
        "invalid": 0,
        "duplicate": 0,
        "pending": 0,
    }
    with pytest.raises(ValueError, match=r"unknown outcome\(s\) typo; expected one of \('added'"):
        reports.count_outcomes([reports.ItemOutcome(2, "8900", "typo")])


def test_an_input_tables_counts_are_the_one_counts_type(tmp_path: Path) -> None:
    good = with_check_digit("8985242018091034079")
    path = tmp_path / "sims.csv"
    path.write_text(f"iccid\n{good}\n{good}\nnot-an-iccid\n")
    table = read_iccids(path)
    assert table.counts == InputCounts(input_rows=3, valid=1, invalid=1, duplicates=1)
    assert table.counts.describe() == "3 rows: 1 valid, 1 invalid, 1 duplicate"


def test_a_drives_stop_reasons_keep_their_text_and_none_is_falsy() -> None:
    assert [str(reason) for reason in engine.StopReason] == [
        "",
        "timeout",
        "no-wait",
        "interrupted",
        "pending",
        "quota",
    ]
    assert not engine.StopReason.NONE
    assert engine.DriveResult(ExitCode.OK, {}).stopped is engine.StopReason.NONE
