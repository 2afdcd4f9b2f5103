"""Issue #14, the 1M add's CPU per batch: a polled batch is closed on one read of its items, with
one UPDATE when every item shares its answer, and in one commit with the duration learned from
it; mixed answers are sorted exactly as before."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from enginehelp import submitted_run

from lf_bulk.api_values import AsyncResult, SimResult
from lf_bulk.engine import RunDriver
from lf_bulk.journal import FINAL, PENDING_LOST_MARK, Journal, Outcome
from lf_bulk.models import (
    Operation,
    OpStatus,
    OutcomeCode,
)

ICCIDS = [f"8985242{n:013d}" for n in range(6)]


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "journal.db") as opened:
        yield opened


def answer(*results: SimResult) -> AsyncResult:
    return AsyncResult(
        "r1", Operation.ADD, "G1", OpStatus.SUCCESS, len(results), 0, 0, results,
        "2026-11-29T08:00:00Z", "2026-11-29T08:00:02Z",
    )  # fmt: skip


def driver(journal: Journal, run_id: str) -> RunDriver:
    client = SimpleNamespace(pacer=SimpleNamespace(max_in_flight=3))
    return RunDriver(journal, client, run_id, clock=lambda: 10.0)  # type: ignore[arg-type]


def poll(journal: Journal, run_id: str, result: AsyncResult) -> list[str]:
    """The driver handles the answer to the run's submitted batch; the SQL it ran."""
    (batch,) = journal.batches(run_id, ["submitted"])
    statements: list[str] = []
    journal._db.set_trace_callback(statements.append)
    try:
        driver(journal, run_id)._on_polled(batch, result)
    finally:
        journal._db.set_trace_callback(None)
    return statements


def outcomes_by_iccid(journal: Journal, run_id: str) -> dict[str, tuple[str | None, str]]:
    return {i.iccid: (i.outcome, i.reason_code) for i in journal.items(run_id)}


def test_a_batch_answered_alike_is_closed_in_one_commit_with_one_update(
    journal: Journal,
) -> None:
    iccids = [*ICCIDS, ICCIDS[2]]  # a duplicate row: both of its items get the answer
    run_id, _ = submitted_run(journal, iccids)
    statements = poll(journal, run_id, answer(*(SimResult(i, True) for i in ICCIDS)))
    assert sum(s == "COMMIT" for s in statements) == 1, statements
    item_updates = [s for s in statements if s.startswith("UPDATE items")]
    assert len(item_updates) == 1 and "json_each" not in item_updates[0]
    assert sum("FROM items" in s and s.startswith("SELECT") for s in statements) == 1
    assert {i.outcome for i in journal.items(run_id)} == {OutcomeCode.ADDED}
    assert journal.async_durations(run_id) == [2.0]  # learned in the same commit


def test_mixed_answers_are_sorted_one_by_one(journal: Journal) -> None:
    run_id, _ = submitted_run(journal, ICCIDS)
    statements = poll(
        journal,
        run_id,
        answer(
            SimResult(ICCIDS[0], True),
            SimResult(ICCIDS[1], False, "ALREADY_IN_GROUP", "already there"),
            SimResult(ICCIDS[2], False, "SIM_LOCKED", "busy"),
            SimResult(ICCIDS[3], False, "IN_OTHER_GROUP", "elsewhere"),
            SimResult(ICCIDS[4], True),
        ),  # ICCIDS[5] is not mentioned
    )
    assert sum(s == "COMMIT" for s in statements) == 1
    assert outcomes_by_iccid(journal, run_id) == {
        ICCIDS[0]: (OutcomeCode.ADDED, ""),
        ICCIDS[1]: (OutcomeCode.ALREADY_MEMBER, "ALREADY_IN_GROUP"),
        ICCIDS[2]: (None, ""),  # retryable: planned again in a new batch
        ICCIDS[3]: (OutcomeCode.FAILED, "IN_OTHER_GROUP"),
        ICCIDS[4]: (OutcomeCode.ADDED, ""),
        ICCIDS[5]: (None, ""),  # not mentioned: sent again
    }
    retried = {i.iccid: i.batch_id for i in journal.items(run_id) if i.outcome is None}
    assert retried == {ICCIDS[2]: 2, ICCIDS[5]: 2}


def test_the_same_retryable_answer_for_all_sends_them_again(journal: Journal) -> None:
    run_id, _ = submitted_run(journal, ICCIDS)
    poll(journal, run_id, answer(*(SimResult(i, False, "SIM_LOCKED", "busy") for i in ICCIDS)))
    assert {i.batch_id for i in journal.items(run_id)} == {2}
    assert {i.outcome for i in journal.items(run_id)} == {None}


def test_one_answer_for_all_but_one_unmentioned_sim_is_sorted_one_by_one(
    journal: Journal,
) -> None:
    run_id, _ = submitted_run(journal, ICCIDS)
    poll(journal, run_id, answer(*(SimResult(i, True) for i in ICCIDS[1:])))
    by_iccid = {i.iccid: (i.outcome, i.batch_id) for i in journal.items(run_id)}
    assert by_iccid[ICCIDS[0]] == (None, 2)
    assert {by_iccid[i] for i in ICCIDS[1:]} == {(OutcomeCode.ADDED, 1)}


def test_a_lost_send_found_done_when_sent_again_counts_as_this_runs_change(
    journal: Journal,
) -> None:
    run_id, _ = submitted_run(journal, ICCIDS[:2])
    journal._db.execute(
        "UPDATE items SET reason_code = ? WHERE iccid = ?", (PENDING_LOST_MARK, ICCIDS[0])
    )
    journal._db.commit()
    poll(
        journal, run_id, answer(*(SimResult(i, False, "ALREADY_IN_GROUP", "") for i in ICCIDS[:2]))
    )
    assert outcomes_by_iccid(journal, run_id) == {
        ICCIDS[0]: (OutcomeCode.ADDED, PENDING_LOST_MARK),
        ICCIDS[1]: (OutcomeCode.ALREADY_MEMBER, "ALREADY_IN_GROUP"),
    }


def test_equal_outcomes_that_are_not_one_object_are_still_recorded_per_outcome(
    journal: Journal,
) -> None:
    run_id, batch_id = submitted_run(journal, ICCIDS)
    outcomes = {i: Outcome(OutcomeCode.ADDED) for i in ICCIDS}
    journal.close_batch(run_id, batch_id, state=FINAL, api_status="SUCCESS", outcomes=outcomes)
    assert {i.outcome for i in journal.items(run_id)} == {OutcomeCode.ADDED}
