"""Issue #14, the 1M add's fixed costs: a run is digested once by the process that plans and
drives it, and still in full whenever anything else may have touched the file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from lf_bulk import journal as journal_module
from lf_bulk.errors import RunTampered
from lf_bulk.journal import Journal, PlannedItem
from lf_bulk.models import InputCounts


def make_run(journal: Journal, size: int = 40) -> str:
    planned = [PlannedItem(n + 2, f"89{n:017d}", "ADD", "G1") for n in range(size)]
    return journal.create_run(
        kind="sims", operation="ADD", group_id="G1", items=planned, batch_size=10,
        counts=InputCounts(size, size, 0, 0),
    )  # fmt: skip


@pytest.fixture
def digests(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many items each digest of this test read."""
    counted: list[int] = []
    real = journal_module._integrity

    def counting(
        kind: str, operation: str, group: str, folder: str, items: Iterable[Sequence[object]]
    ) -> dict[str, Any]:
        result = real(kind, operation, group, folder, items)
        counted.append(result["items"])
        return result

    monkeypatch.setattr(journal_module, "_integrity", counting)
    return counted


def test_a_run_verified_by_the_process_that_created_it_is_digested_once(
    tmp_path: Path, digests: list[int]
) -> None:
    with Journal(tmp_path / "j.db") as journal:
        run_id = make_run(journal)
        journal.verify_run(run_id)
    assert digests == [40]


def test_another_process_verifies_the_run_in_full(tmp_path: Path, digests: list[int]) -> None:
    with Journal(tmp_path / "j.db") as journal:
        run_id = make_run(journal)
    with Journal(tmp_path / "j.db") as journal:
        journal.verify_run(run_id)
    assert digests == [40, 40]


def test_an_edit_by_another_connection_after_creation_is_still_refused(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db") as journal:
        run_id = make_run(journal)
        with sqlite3.connect(tmp_path / "j.db") as other:
            other.execute("UPDATE items SET iccid = '8900000000000000999' WHERE item_id = 3")
        with pytest.raises(RunTampered, match="differ from the ones it planned"):
            journal.verify_run(run_id)


def test_an_edit_through_the_same_connection_after_creation_is_still_refused(
    tmp_path: Path,
) -> None:
    with Journal(tmp_path / "j.db") as journal:
        run_id = make_run(journal)
        journal._db.execute("UPDATE items SET row = 99 WHERE item_id = 3")
        journal._db.commit()
        with pytest.raises(RunTampered, match="differ from the ones it planned"):
            journal.verify_run(run_id)


def test_a_recorded_digest_edited_after_creation_is_still_refused(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db") as journal:
        run_id = make_run(journal)
        with sqlite3.connect(tmp_path / "j.db") as other:
            other.execute("UPDATE runs SET details = '{}'")
        with pytest.raises(RunTampered, match="no integrity record"):
            journal.verify_run(run_id)


def test_the_digest_of_a_planned_run_matches_the_one_read_back(tmp_path: Path) -> None:
    """Planned items carry an `Operation`, read ones text: both digest alike (the fast path
    writes each distinct line ending once)."""
    from lf_bulk.models import Operation, OutcomeCode

    planned = [PlannedItem(n + 2, f"89{n:017d}", Operation.ADD, "G\u00e91") for n in range(30)]
    planned.append(PlannedItem(40, 'x"y', Operation.ADD, "G\u00e91", outcome=OutcomeCode.INVALID))
    with Journal(tmp_path / "j.db") as journal:
        run_id = journal.create_run(
            kind="sims", operation="ADD", group_id="G\u00e91", items=planned, batch_size=7
        )
    with Journal(tmp_path / "j.db") as journal:
        journal.verify_run(run_id)  # a fresh object: the digest is recomputed from the file
