"""The store a test's jobs use: the SQLite file in their home, or the PostgreSQL schema the
`each_store` fixture chose (it sets LF_BULK_STORE, which jobs in and out of process read)."""

from __future__ import annotations

import os
from pathlib import Path

from lf_bulk import runs
from lf_bulk.journal import Journal
from lf_bulk.store import ENV_VAR


def store_url() -> str | None:
    return os.environ.get(ENV_VAR) or None


def journal_at(path: Path) -> Journal:
    """The journal a job with `--home path.parent` writes: the file at `path`, or the store's."""
    url = store_url()
    return runs.open_journal(path.parent, url) if url else Journal(path)


def journal_exists(path: Path) -> bool:
    return store_url() is not None or path.exists()
