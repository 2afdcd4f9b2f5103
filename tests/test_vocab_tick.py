"""A tick of the engine costs what its open batches cost, not what the whole run holds.

Cost is counted in SQLite virtual-machine steps (a progress handler), so the tests are exact and
fast: a query that scans every item of a run grows with the run, one that an index serves does not.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lf_bulk import journal as journal_module
from lf_bulk.journal import FINAL, OPEN_STATES, Journal, Outcome, PlannedItem
from lf_bulk.models import InputCounts, OutcomeCode

BATCH = 10


def new_run(journal: Journal, items: int, *, phases: int = 1) -> str:
    planned = [
        PlannedItem(n + 2, f"89{n:017d}", "ADD", "G1", phase=n * phases // items)
        for n in range(items)
    ]
    return journal.create_run(
        kind="sims",
        operation="ADD",
        group_id="G1",
        items=planned,
        batch_size=BATCH,
        counts=InputCounts(items, items, 0, 0),
    )


@contextmanager
def counted_steps(journal: Journal) -> Iterator[list[int]]:
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    journal._db.set_progress_handler(count, 10)
    try:
        yield steps
    finally:
        journal._db.set_progress_handler(None, 10)


def cost(journal: Journal, call: Callable[[], object]) -> int:
    with counted_steps(journal) as steps:
        call()
    return steps[0]


def close_all_but(journal: Journal, run_id: str, keep: int) -> None:
    for batch in journal.batches(run_id)[keep:]:
        iccids = journal.batch_attempts(run_id, batch.batch_id)
        journal.close_batch(
            run_id,
            batch.batch_id,
            state=FINAL,
            api_status="SUCCESS",
            outcomes={i: Outcome(OutcomeCode.ADDED) for i in iccids},
        )


@pytest.fixture
def small_and_large(tmp_path: Path) -> Iterator[tuple[Journal, str, Journal, str]]:
    with Journal(tmp_path / "small.db") as small, Journal(tmp_path / "large.db") as large:
        yield small, new_run(small, 100), large, new_run(large, 4_000)


def test_a_batchs_iccids_are_read_through_an_index_not_by_scanning_the_run(
    small_and_large: tuple[Journal, str, Journal, str],
) -> None:
    small, small_run, large, large_run = small_and_large

    small_cost = cost(small, lambda: small.batch_attempts(small_run, 3))
    large_cost = cost(large, lambda: large.batch_attempts(large_run, 3))

    assert large.batch_attempts(large_run, 3) == {f"89{n:017d}": 0 for n in range(20, 30)}
    assert large_cost < 2 * small_cost + 20  # 40 times the items: a scan would cost 40 times


def test_the_current_phase_is_found_without_scanning_the_pending_items(
    small_and_large: tuple[Journal, str, Journal, str],
) -> None:
    small, small_run, large, large_run = small_and_large

    small_cost = cost(small, lambda: small.first_pending_phase(small_run))
    large_cost = cost(large, lambda: large.first_pending_phase(large_run))

    assert large.first_pending_phase(large_run) == 0
    assert large_cost < 2 * small_cost + 20


def test_the_first_pending_phase_follows_the_items(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db") as journal:
        run_id = new_run(journal, 40, phases=2)
        assert journal.first_pending_phase(run_id) == 0
        for batch in journal.batches(run_id):
            if batch.phase == 0:
                iccids = journal.batch_attempts(run_id, batch.batch_id)
                journal.close_batch(
                    run_id,
                    batch.batch_id,
                    state=FINAL,
                    api_status="SUCCESS",
                    outcomes={i: Outcome(OutcomeCode.ADDED) for i in iccids},
                )
        assert journal.first_pending_phase(run_id) == 1
        close_all_but(journal, run_id, 0)
        assert journal.first_pending_phase(run_id) is None


def test_reading_the_open_batches_costs_what_the_open_batches_cost(tmp_path: Path) -> None:
    with Journal(tmp_path / "few.db") as few, Journal(tmp_path / "many.db") as many:
        few_run = new_run(few, 5 * BATCH)
        many_run = new_run(many, 400 * BATCH)
        close_all_but(many, many_run, 5)  # 395 batches final, 5 open, as late in a big run

        few_cost = cost(few, lambda: few.batches(few_run, OPEN_STATES))
        many_cost = cost(many, lambda: many.batches(many_run, OPEN_STATES))

        assert len(many.batches(many_run, OPEN_STATES)) == 5
        assert many_cost < 2 * few_cost + 20


def one_tick(journal: Journal, run_id: str, now: float) -> None:
    """What the engine asks the journal on each tick (a free slot, nothing settled)."""
    phase = journal.first_pending_phase(run_id)
    assert phase is not None
    journal.has_planned(run_id, phase)
    journal.lost_due(run_id, now - 10)
    journal.ready_to_send(run_id, phase, now, 3)
    journal.polls_due(run_id, now, 3)
    journal.next_due(run_id, phase)


def submit_all_but(journal: Journal, run_id: str, keep: int, *, poll_at: float) -> None:
    for batch in journal.batches(run_id)[keep:]:
        journal.mark_sending(run_id, batch.batch_id, sent_at=1.0)
        journal.mark_submitted(
            run_id, batch.batch_id, f"r{batch.batch_id}", submitted_at=1.0, first_poll=poll_at
        )


def test_a_tick_costs_what_the_ready_batches_cost_not_the_open_ones(tmp_path: Path) -> None:
    # 2,000 open batches (1,000 planned, 1,000 submitted and polled later) against 5 planned:
    # reading every open batch each tick, as the engine did, cost 400 times as much.
    with Journal(tmp_path / "few.db") as few, Journal(tmp_path / "many.db") as many:
        few_run = new_run(few, 5 * BATCH)
        many_run = new_run(many, 2_000 * BATCH)
        submit_all_but(many, many_run, 1_000, poll_at=1_000.0)

        few_cost = cost(few, lambda: one_tick(few, few_run, now=100.0))
        many_cost = cost(many, lambda: one_tick(many, many_run, now=100.0))

        assert [b.batch_id for b in many.ready_to_send(many_run, 0, 100.0, 3)] == [1, 2, 3]
        assert many.polls_due(many_run, 100.0, 3) == []
        assert many_cost < 2 * few_cost + 20


def test_the_batches_due_are_found_in_due_order_and_no_others(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db") as journal:
        run_id = new_run(journal, 8 * BATCH)
        submit_all_but(journal, run_id, 4, poll_at=50.0)  # batches 5-8
        journal.schedule_poll(run_id, 6, 20.0, "PROCESSING")
        journal.schedule_poll(run_id, 7, 90.0, "PROCESSING")
        journal.mark_sending(run_id, 4, sent_at=5.0)
        journal.mark_answer_lost(run_id, 4, "timeout", lost_at=7.0)
        journal.mark_sending(run_id, 3, sent_at=5.0)
        journal.mark_unsent(run_id, 3, "503")

        assert [b.batch_id for b in journal.ready_to_send(run_id, 0, 60.0, 5)] == [1, 2, 3]
        assert [b.batch_id for b in journal.polls_due(run_id, 60.0, 5)] == [6, 5, 8]
        assert [b.batch_id for b in journal.polls_due(run_id, 60.0, 2)] == [6, 5]
        assert [b.batch_id for b in journal.lost_due(run_id, 7.0)] == [4]
        assert journal.lost_due(run_id, 6.9) == []
        assert journal.has_planned(run_id, 0) and not journal.has_planned(run_id, 1)
        assert journal.next_due(run_id, 0) == (0.0, 20.0, 7.0)
        assert journal.next_due(run_id, 1) == (None, 20.0, 7.0)


def test_a_version_1_journal_gets_the_indexes_and_keeps_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with Journal(path) as journal:
        run_id = new_run(journal, 30)
    with sqlite3.connect(path) as db:  # as a version 1 journal was: one index, by batch
        for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        ).fetchall():
            db.execute(f"DROP INDEX {name}")
        db.execute("CREATE INDEX items_by_batch ON items (run_id, batch_id)")
        db.execute("PRAGMA user_version = 1")
    db.close()

    with Journal(path) as journal:
        journal.verify_run(run_id)
        assert journal.first_pending_phase(run_id) == 0
        assert len(journal.batches(run_id, OPEN_STATES)) == 3
    with sqlite3.connect(path) as db:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        indexes = {
            name
            for (name,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            )
        }
    db.close()
    assert version == journal_module.SCHEMA_VERSION == 4
    assert indexes == {
        "items_by_batch_in_order",
        "items_pending_by_phase",
        "batches_by_state",
        "batches_planned_due",
        "batches_polls_due",
        "batches_lost_due",
    }
