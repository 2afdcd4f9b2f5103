"""The SQLite → PostgreSQL translation, written once (lf_bulk/store/dialect.py), and the store's
choice and its import discipline: nothing of PostgreSQL is loaded for the default store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from storeprocs import REPO

from lf_bulk.errors import InvalidSetting
from lf_bulk.store import EXTRA_MISSING, StoreKind, open_store
from lf_bulk.store.dialect import translate


@pytest.mark.parametrize(
    ("sqlite", "postgresql"),
    [
        ("SELECT * FROM runs WHERE run_id = ?", "SELECT * FROM runs WHERE run_id = %s"),
        ("SELECT 1 WHERE d LIKE '%a?b%' AND x = ?", "SELECT 1 WHERE d LIKE '%%a?b%%' AND x = %s"),
        ("not_before REAL NOT NULL", "not_before DOUBLE PRECISION NOT NULL"),
        ("value BLOB", "value BYTEA"),
        ("WHERE IFNULL(submitted_at, 0) <= ?", "WHERE COALESCE(submitted_at, 0) <= %s"),
        (
            "AND item_id IN (SELECT value FROM json_each(?))",
            "AND item_id IN (SELECT value::bigint FROM json_array_elements_text(%s::json))",
        ),
        ("SET s = MAX(COALESCE(s, 0), ?)", "SET s = GREATEST(COALESCE(s, 0), %s)"),
        ("SELECT MAX(batch_id) FROM b", "SELECT MAX(batch_id) FROM b"),  # the aggregate stays
        ("SELECT MIN(IFNULL(a, 0)) FROM b", "SELECT MIN(COALESCE(a, 0)) FROM b"),
        (
            "SELECT 1 FROM (SELECT row FROM items) WHERE row > 1",
            "SELECT 1 FROM (SELECT row FROM items) AS subquery_0 WHERE row > 1",
        ),
        (
            "SELECT 1 FROM (SELECT row FROM items) AS named WHERE row > 1",
            "SELECT 1 FROM (SELECT row FROM items) AS named WHERE row > 1",
        ),
        (
            "INSERT OR IGNORE INTO t (a) VALUES (?)",
            "INSERT INTO t (a) VALUES (%s) ON CONFLICT DO NOTHING",
        ),
        ("SELECT 'REAL money?' FROM t", "SELECT 'REAL money?' FROM t"),  # literals untouched
    ],
)
def test_sqlite_statements_are_translated_once_in_one_place(sqlite: str, postgresql: str) -> None:
    assert translate(sqlite) == postgresql


def test_a_statement_without_parameters_keeps_its_percent_signs() -> None:
    assert translate("SELECT 1 WHERE d LIKE '%x%'", with_parameters=False) == (
        "SELECT 1 WHERE d LIKE '%x%'"
    )


def test_the_default_store_is_the_files_in_home(tmp_path: Path) -> None:
    for url in (None, "", "sqlite:"):
        store = open_store(url, tmp_path)
        assert store.kind is StoreKind.SQLITE
        assert str(tmp_path) in store.shown


def test_without_the_workers_extra_a_postgresql_store_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "lf_bulk.store.postgres", raising=False)
    with pytest.raises(InvalidSetting) as raised:
        open_store("postgresql://db.example/lf", Path("/nonexistent"))
    assert str(raised.value) == EXTRA_MISSING
    assert "pip install 'lf-bulk[workers]'" in EXTRA_MISSING


def test_the_default_store_loads_nothing_of_postgresql(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from jobs.cli import cli\n"
        f"result = CliRunner().invoke(cli, ['--home', {str(tmp_path)!r}, 'runs', 'list'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in sys.modules if m.startswith(('psycopg', 'procrastinate'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
