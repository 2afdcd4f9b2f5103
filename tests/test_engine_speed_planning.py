"""Issue #14, the 1M add's fixed costs: a run is planned from the input's columns without a row
object per row, in one pass, and the plan, the digest and the journal are the ones the row-by-row
way gives."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lf_bulk import bulk
from lf_bulk.iccid import Reason
from lf_bulk.journal import Journal, PlannedItem
from lf_bulk.models import Operation, OutcomeCode
from lf_bulk.sources import InputRow, InputRows, InputTable

reasons = st.one_of(st.none(), st.sampled_from(list(Reason)))


def tables(first: int, cells: list[tuple[str, Reason | None]]) -> tuple[InputTable, InputTable]:
    raws = [f" {text} " for text, _ in cells]
    iccids = [text for text, _ in cells]
    found = [reason for _, reason in cells]
    columns = InputRows(first, raws, iccids, found)
    listed = [InputRow(first + n, raws[n], iccids[n], found[n]) for n in range(len(cells))]
    return (
        InputTable("in.csv", None, "iccid", columns),
        InputTable("in.csv", None, "iccid", listed),
    )


@given(
    first=st.integers(1, 3),
    cells=st.lists(st.tuples(st.text(max_size=6), reasons), max_size=25),
)
def test_planning_from_columns_gives_the_row_by_row_plan(
    first: int, cells: list[tuple[str, Reason | None]]
) -> None:
    by_columns, by_rows = tables(first, cells)
    planned = bulk.planned_items(by_columns, Operation.ADD, "G1")
    assert planned == bulk.planned_items(by_rows, Operation.ADD, "G1")
    assert all(isinstance(item, PlannedItem) for item in planned)


def test_a_refused_row_keeps_what_the_user_typed(tmp_path: Path) -> None:
    by_columns, _ = tables(2, [("8985", None), ("x", Reason.NOT_DIGITS)])
    valid, invalid = bulk.planned_items(by_columns, Operation.ADD, "G1")
    assert (valid.row, valid.iccid, valid.outcome) == (2, "8985", None)
    assert (invalid.row, invalid.iccid, invalid.outcome) == (3, " x ", OutcomeCode.INVALID)


def test_a_run_planned_in_one_pass_is_journaled_and_verified_as_before(tmp_path: Path) -> None:
    items = [PlannedItem(n + 2, f"89{n:017d}", "ADD", "G1") for n in range(7)]
    items.insert(3, PlannedItem(40, "dup", "ADD", "G1", outcome=OutcomeCode.DUPLICATE,
                                reason_code="duplicate", reason="seen before"))  # fmt: skip
    with Journal(tmp_path / "j.db") as journal:
        run_id = journal.create_run(
            kind="sims", operation="ADD", group_id="G1", items=items, batch_size=3
        )
        assert not journal.rows_follow_item_ids(run_id)  # row 40 comes before row 5
    with Journal(tmp_path / "j.db") as journal:
        journal.verify_run(run_id)
        assert not journal.rows_follow_item_ids(run_id)  # read from the file: the same answer
        stored = journal.items(run_id)
        assert [(i.batch_id, i.outcome) for i in sorted(stored, key=lambda i: i.item_id)] == [
            (1, None), (1, None), (1, None), (None, OutcomeCode.DUPLICATE),
            (2, None), (2, None), (2, None), (3, None),
        ]  # fmt: skip


def test_a_lookup_run_puts_every_item_to_ask_in_its_slot(tmp_path: Path) -> None:
    items = [PlannedItem(2, "a", "VERIFY", ""), PlannedItem(3, "b", "VERIFY", "",
             outcome=OutcomeCode.INVALID)]  # fmt: skip
    with Journal(tmp_path / "j.db") as journal:
        run_id = journal.create_run(
            kind="lookup", operation="VERIFY", group_id="", items=items, batch_size=1, lookup=True
        )
        assert [i.batch_id for i in journal.items(run_id)] == [0, None]
        assert journal.batches(run_id) == []


def test_planning_from_columns_makes_no_row_object_per_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    by_columns, _ = tables(2, [(f"89{n:017d}", None) for n in range(50)])

    def no_rows(self: InputRows) -> Iterator[InputRow]:
        raise AssertionError("a row object was made for every row")

    monkeypatch.setattr(InputRows, "__iter__", no_rows)
    assert len(bulk.planned_items(by_columns, Operation.ADD, "G1")) == 50
