"""The journal made in bulk: the run's digest is the one it always was, only computed faster."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from lf_bulk import journal as journal_module
from lf_bulk.journal import FINAL, Journal, Outcome, PlannedItem
from lf_bulk.models import InputCounts, OutcomeCode


def reference_digest(
    kind: str, operation: str, group_id: str, report_dir: str, items: Sequence[Sequence[object]]
) -> dict[str, object]:
    """The digest as lf-bulk 0.1 wrote it (one json.dumps per item): journals hold these."""
    digest = hashlib.sha256(json.dumps([kind, str(operation), group_id, report_dir]).encode())
    for item_id, row, iccid, item_operation, item_group, phase, unsent in items:
        line = [item_id, row, iccid, str(item_operation), item_group, phase, bool(unsent)]
        digest.update(b"\n" + json.dumps(line).encode())
    return {"items": len(items), "sha256": digest.hexdigest()}


odd_values = st.one_of(
    st.text(), st.integers(), st.none(), st.floats(allow_nan=False), st.booleans()
)
items_strategy = st.lists(
    st.tuples(
        st.one_of(st.integers(0, 10**12), odd_values),
        st.one_of(st.integers(-5, 10**7), odd_values),
        st.one_of(st.text(), odd_values),
        st.one_of(st.sampled_from(["ADD", "REMOVE"]), odd_values),
        st.one_of(st.text(max_size=8), odd_values),
        st.one_of(st.integers(0, 3), odd_values),
        odd_values,
    ),
    max_size=30,
)


@given(items=items_strategy, report_dir=st.text())
def test_the_digest_is_byte_for_byte_the_one_json_dumps_gives(
    items: list[tuple[object, ...]], report_dir: str
) -> None:
    expected = reference_digest("sims", "ADD", "G1", report_dir, items)
    assert journal_module._integrity("sims", "ADD", "G1", report_dir, items) == expected


def test_a_large_run_is_digested_in_chunks_the_same_way(tmp_path: Path) -> None:
    items = [(n, n + 2, f"89{n:017d}\u00e9\"\\", "ADD", "G\u2028", n % 2, n % 3 == 0)
             for n in range(25_001)]  # fmt: skip
    expected = reference_digest("sims", "ADD", "G1", "/r", items)
    assert journal_module._integrity("sims", "ADD", "G1", "/r", items) == expected


def test_a_run_created_in_bulk_verifies_and_keeps_every_item(tmp_path: Path) -> None:
    planned = [PlannedItem(n + 2, f"89{n:017d}", "ADD", "G1") for n in range(1_234)]
    planned.append(PlannedItem(2_000, "not an iccid", "ADD", "G1", outcome=OutcomeCode.INVALID))
    with Journal(tmp_path / "j.db") as journal:
        run_id = journal.create_run(
            kind="sims", operation="ADD", group_id="G1", items=planned, batch_size=500,
            counts=InputCounts(1_235, 1_234, 1, 0),
        )  # fmt: skip
        journal.verify_run(run_id)
        batches = journal.batches(run_id)
        assert [b.batch_id for b in batches] == [1, 2, 3]
        assert [len(journal.batch_attempts(run_id, b.batch_id)) for b in batches] == [500, 500, 234]
        assert [i.iccid for i in journal.items(run_id)] == [p.iccid for p in planned]


def closing_cost(tmp_path: Path, size: int) -> int:
    with Journal(tmp_path / f"close-{size}.db") as journal:
        planned = [PlannedItem(n + 2, f"89{n:017d}", "ADD", "G1") for n in range(size)]
        run_id = journal.create_run(
            kind="sims", operation="ADD", group_id="G1", items=planned, batch_size=size
        )
        iccids = list(journal.batch_attempts(run_id, 1))
        outcomes = {i: Outcome(OutcomeCode.ADDED) for i in iccids[::2]}
        steps = [0]

        def count() -> int:
            steps[0] += 1
            return 0

        journal._db.set_progress_handler(count, 100)
        journal.close_batch(run_id, 1, state=FINAL, api_status="SUCCESS", outcomes=outcomes,
                            retry=iccids[1::2])  # fmt: skip
        journal._db.set_progress_handler(None, 100)
        items = journal.items(run_id)
        assert [i.outcome for i in items[:2]] == [OutcomeCode.ADDED, None]
        assert items[1].batch_id == 2  # the retried half is planned again
        return steps[0]


def test_closing_a_batch_costs_in_proportion_to_its_size_not_its_square(tmp_path: Path) -> None:
    # Matching each ICCID within its batch made closing 500 cost 100 times closing 50.
    small, large = closing_cost(tmp_path, 50), closing_cost(tmp_path, 500)
    assert large < 15 * small
