"""Recording a batch's answer costs a statement per distinct outcome, not one per item.

A 1,000,000-ICCID add records 2,000 answers of 500 outcomes each on the engine's thread, while
the next batches wait: each item's own UPDATE cost 30 us, 15 ms per batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from enginehelp import submitted_run

from lf_bulk.journal import FINAL, Journal, Outcome
from lf_bulk.models import OutcomeCode
from lf_bulk.redaction import REDACTED, forget_secrets, register_secret

BATCH = 500


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "journal.db") as opened:
        yield opened


def test_a_batch_of_500_is_recorded_with_one_update_per_distinct_outcome(journal: Journal) -> None:
    iccids = [f"8985242{n:013d}" for n in range(BATCH - 1)]
    iccids.append(iccids[7])  # a duplicate ICCID row: both its items get the outcome
    run_id, batch_id = submitted_run(journal, iccids)
    register_secret("P000270")
    try:
        outcomes = {iccid: Outcome(OutcomeCode.ADDED) for iccid in iccids}
        outcomes[iccids[3]] = Outcome(OutcomeCode.FAILED, "SIM_LOCKED", "locked for P000270")
        outcomes[iccids[4]] = Outcome(OutcomeCode.FAILED, "SIM_LOCKED", "locked for P000270")
        outcomes[iccids[5]] = Outcome(OutcomeCode.FAILED, "NOT_FOUND", "no such SIM")
        statements: list[str] = []
        journal._db.set_trace_callback(statements.append)
        journal.close_batch(run_id, batch_id, state=FINAL, api_status="SUCCESS", outcomes=outcomes)
        journal._db.set_trace_callback(None)
    finally:
        forget_secrets()
    item_updates = [s for s in statements if s.startswith("UPDATE items")]
    assert len(item_updates) == 3, len(item_updates)  # added; SIM_LOCKED; NOT_FOUND
    recorded = {(i.item_id, i.iccid): i for i in journal.items(run_id)}
    assert len(recorded) == BATCH
    for (_, iccid), item in recorded.items():
        expected = outcomes[iccid]
        assert (item.outcome, item.reason_code) == (expected.outcome, expected.reason_code)
    locked = [i for i in recorded.values() if i.reason_code == "SIM_LOCKED"]
    assert [i.reason for i in locked] == [f"locked for {REDACTED}"] * 2
    assert journal.outcome_counts(run_id) == {"added": BATCH - 3, "failed": 3}


def test_an_item_already_final_or_not_named_in_the_answer_is_left_as_it_is(
    journal: Journal,
) -> None:
    iccids = [f"8985242{n:013d}" for n in range(10)]
    run_id, batch_id = submitted_run(journal, iccids)
    outcomes = {iccid: Outcome(OutcomeCode.ADDED) for iccid in iccids[:8]}
    outcomes["89852429999999999999"] = Outcome(OutcomeCode.ADDED)  # not in this batch
    journal.close_batch(run_id, batch_id, state=FINAL, api_status="SUCCESS", outcomes=outcomes)
    by_iccid = {i.iccid: i.outcome for i in journal.items(run_id)}
    assert by_iccid == {**dict.fromkeys(iccids[:8], "added"), **dict.fromkeys(iccids[8:])}
    assert "89852429999999999999" not in by_iccid
