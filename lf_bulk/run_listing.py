"""The runs in the journal as `runs list` shows them, read from the journal alone.

Kept apart from `lf_bulk.runs` (which drives runs: engine, client, reports, readers) so that
listing runs starts in a blink: this module imports the journal and the lock files, nothing more
(tests/test_lazy_imports.py checks it).
"""

from __future__ import annotations

from pathlib import Path

from lf_bulk.journal import INTERRUPTED, RUNNING, Journal, RunRecord
from lf_bulk.locking import is_held

JOURNAL_NAME = "journal.db"


def open_journal(home: Path, store_url: str | None = None) -> Journal:
    """The run journal: `<home>/journal.db`, or the one of the store `store_url` names."""
    if store_url:
        from lf_bulk import store  # only a store other than the default loads it

        return store.open_journal(store_url, home)
    return Journal(home / JOURNAL_NAME)


def run_lock_name(run_id: str) -> str:
    return f"run-{run_id}"


def shown_status(run: RunRecord, home: Path) -> str:
    """The stored status, except that a `running` run no process drives is `interrupted`."""
    if run.status == RUNNING and not is_held(home, run_lock_name(run.run_id)):
        return INTERRUPTED
    return run.status


def listing(journal: Journal, home: Path) -> list[dict[str, object]]:
    """Every run, newest first, as `runs list` shows it."""
    return [
        {
            "run_id": r.run_id,
            "operation": r.operation,
            "group_id": r.group_id,
            "status": shown_status(r, home),
            "started_at": r.started_at,
            "outcomes": journal.outcome_counts(r.run_id),
        }
        for r in journal.runs()
    ]


def counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v)


def summary_line(run_id: str, counts: dict[str, int]) -> str:
    return f"run {run_id}: {counts_text(counts) or 'nothing to do'}"
