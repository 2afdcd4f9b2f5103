"""A new sandbox state file is copied from a world seeded once per process, identical to seeding."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lf_bulk.sandbox import seed, state
from lf_bulk.sandbox.state import SandboxState

# Sizes no other test uses, one per test: the suite shares each size's world between its
# processes (conftest.py), so a size another test seeded first would not be built here.
SIMS = 1_234
OTHER_SIMS = 1_235


def _contents(path: Path) -> dict[str, list[tuple[object, ...]]]:
    db = sqlite3.connect(path)
    try:
        return {
            table: sorted(db.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in (*state._WORLD_TABLES, "meta")
        }
    finally:
        db.close()


def _seeded_by_hand(path: Path, sims: int) -> None:
    """The world written straight into the file, as every state file was before templates."""
    SandboxState(path, sims=sims).close()
    db = sqlite3.connect(path)
    for table in state._WORLD_TABLES:
        db.execute(f"DELETE FROM {table}")
    state._insert_world(db, seed.build_world(sims))
    db.commit()
    db.close()


def test_the_world_is_built_once_per_size_and_every_copy_equals_a_fresh_seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[int] = []
    real_build = seed.build_world

    def counting_build(sims: int = seed.DEFAULT_SIMS) -> seed.World:
        built.append(sims)
        return real_build(sims)

    monkeypatch.setattr(seed, "build_world", counting_build)
    SandboxState(tmp_path / "a.db", sims=SIMS).close()
    SandboxState(tmp_path / "b.db", sims=SIMS).close()
    assert built == [SIMS]
    monkeypatch.setattr(seed, "build_world", real_build)
    _seeded_by_hand(tmp_path / "reference.db", SIMS)
    reference = _contents(tmp_path / "reference.db")
    assert reference["sims"] and reference["cards"] and reference["orders"]
    assert _contents(tmp_path / "a.db") == reference
    assert _contents(tmp_path / "b.db") == reference


def test_a_copied_world_is_the_files_own_and_changes_stay_in_it(tmp_path: Path) -> None:
    with SandboxState(tmp_path / "a.db", sims=OTHER_SIMS) as first:
        first._db.execute("DELETE FROM sims")
    with SandboxState(tmp_path / "b.db", sims=OTHER_SIMS) as second:
        assert second._db.execute("SELECT count(*) FROM sims").fetchone()[0] == OTHER_SIMS
        attached = second._db.execute("PRAGMA database_list").fetchall()
    assert [name for _, name, _ in attached] == ["main"]
