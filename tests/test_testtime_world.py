"""The suite's own speed-ups must not change what the tests see (conftest.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lf_bulk.sandbox import seed, state
from lf_bulk.sandbox.state import SandboxState

from conftest import share_world

SIMS = 1_357  # a size no other test uses: no process has a template of it yet


def _contents(path: Path) -> dict[str, list[tuple[object, ...]]]:
    db = sqlite3.connect(path)
    try:
        return {
            table: sorted(db.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in state._WORLD_TABLES
        }
    finally:
        db.close()


def test_a_world_one_process_seeded_and_saved_is_what_another_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state, "_world_templates", {})  # the first worker: seeds, saves
    share_world(SIMS, tmp_path)
    SandboxState(tmp_path / "seeded.db", sims=SIMS).close()
    assert (tmp_path / f"world-{SIMS}.db").is_file()

    monkeypatch.setattr(state, "_world_templates", {})  # another worker: loads, never seeds
    built: list[int] = []
    monkeypatch.setattr(seed, "build_world", lambda sims=seed.DEFAULT_SIMS: built.append(sims))
    share_world(SIMS, tmp_path)
    SandboxState(tmp_path / "loaded.db", sims=SIMS).close()
    assert built == []

    seeded = _contents(tmp_path / "seeded.db")
    assert seeded["sims"] and seeded["cards"] and seeded["orders"]
    assert _contents(tmp_path / "loaded.db") == seeded
