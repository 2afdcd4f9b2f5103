"""Many partner codes, many machines: Procrastinate workers over a PostgreSQL store (issue #16).

    spec.py       what a job carries: the command, the partner's name, its run id, its checked
                  input rows (no third-party import: `enqueue` builds one before any connection)
    partners.py   the `partners` table: per-partner settings (never the partner code) and where
                  a worker machine finds each partner's code
    app.py        the Procrastinate app, its task, the stalled-job sweeper and the schema

Nothing here is imported by the SQLite default: psycopg and procrastinate load only for a worker
command (`require_extra` says what to install when they are missing).
"""

from __future__ import annotations

import importlib.util

from lf_bulk.errors import InvalidSetting

EXTRA_HINT = "pip install 'lf-bulk[workers]'"


def require_extra() -> None:
    """Refuse clearly (exit 2) when the workers extra (psycopg, procrastinate) is not installed."""
    missing = [name for name in ("psycopg", "procrastinate") if not importlib.util.find_spec(name)]
    if missing:
        raise InvalidSetting(
            f"the worker commands need {' and '.join(missing)}, which are not installed: "
            f"{EXTRA_HINT}"
        )


def require_postgresql(url: str | None) -> str:
    """The store URL the workers share; only a PostgreSQL store can be shared between machines."""
    from lf_bulk.store import is_postgres_url

    if not url or not is_postgres_url(url):
        raise InvalidSetting(
            "the worker commands need a shared PostgreSQL store: pass --store "
            "postgresql://HOST/DB (or set LF_BULK_STORE, or `store` in the config file); the "
            "password comes from PGPASSWORD or ~/.pgpass, never from the URL"
        )
    require_extra()
    return url
