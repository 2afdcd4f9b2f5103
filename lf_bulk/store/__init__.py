"""Where runs, the quota ledger and the locks live: SQLite files in `<home>`, or PostgreSQL.

`open_store(url, home)` picks the store: no URL (or `sqlite:`) is today's files in `<home>`,
unchanged; `postgresql://...` (`--store`, `LF_BULK_STORE`, config `store`) is one database that
every machine sharing it sees: the journal of every run, the quota ledger, the locks (advisory
locks held on the store's own connection) and the shared pacer of each partner code.

A store URL never carries a password (`refuse_password`): other users can read a process's
arguments, and a folder config is not the place for credentials either; the password comes from
`PGPASSWORD`, `~/.pgpass` or the other libpq variables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from lf_bulk.errors import InvalidSetting
from lf_bulk.pacing import Pacer

if TYPE_CHECKING:
    from lf_bulk.answers import AnswerCache
    from lf_bulk.journal import Journal
    from lf_bulk.quota import QuotaLedger

ENV_VAR = "LF_BULK_STORE"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
EXTRA_MISSING = (
    "a PostgreSQL store needs lf-bulk's `workers` extra (psycopg): pip install 'lf-bulk[workers]'"
)


class StoreKind(StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


class Store(Protocol):
    kind: StoreKind
    shown: str  # where it is, as messages and `doctor` show it (never a password)

    def journal(self) -> Journal:
        """The run journal (closed by its caller; the store stays open)."""
        ...

    def quota_ledger(
        self,
        identity: str,
        *,
        daily_quota: int,
        reserve: int,
        clock: Callable[[], datetime] | None = None,
    ) -> QuotaLedger: ...

    def answer_cache(self) -> AnswerCache:
        """The look-up answers earlier runs got (reused by new runs)."""
        ...

    def pacer(self, account_key: str, rate: float, concurrency: int) -> Pacer:
        """The request pacer of one account (the quota ledger's key for it): per process for
        SQLite, shared by every process using the store for PostgreSQL."""
        ...

    def lock(self, name: str, what: str, *, holder: str = "") -> AbstractContextManager[None]:
        """Hold lock `name` while the block runs; `RunLocked` naming `what` when it is taken."""
        ...

    def is_held(self, name: str) -> bool: ...

    def check_locks(self) -> None:
        """Raise `RunStopped` when a lock this store holds may have been lost."""
        ...

    def close(self) -> None: ...


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and str(url).lower().startswith(POSTGRES_SCHEMES)


def refuse_password(url: str | None, origin: str) -> None:
    """A store URL with a password is refused wherever it comes from but the environment."""
    if not url or not is_postgres_url(url):
        return
    if password_of(url):
        raise InvalidSetting(
            f"the store URL from {origin} carries a password; lf-bulk takes none there (others "
            "can read a command line, and a config file is no place for one): remove it from "
            "the URL and give it in PGPASSWORD or ~/.pgpass"
        )


def password_of(url: str) -> str | None:
    from urllib.parse import parse_qs, urlsplit

    try:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        return parts.password or next(iter(query.get("password", [])), None)
    except ValueError:
        return None


def shown_url(url: str) -> str:
    """The URL without user info (`postgresql://host:5432/db`)."""
    from urllib.parse import parse_qs, urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "postgresql://(unreadable URL)"
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    socket_folder = next(iter(parse_qs(parts.query).get("host", [])), "")
    query = f"host={socket_folder}" if socket_folder and not host else ""
    return f"{parts.scheme}://{netloc}{parts.path or '/'}" + (f"?{query}" if query else "")


def check_url(url: str | None) -> None:
    """Refuse a URL naming no store lf-bulk knows, before anything is opened."""
    if url and not is_postgres_url(url) and url.split(":", 1)[0].lower() != "sqlite":
        raise InvalidSetting(
            f"--store {shown_url(url)!r} is not a store lf-bulk knows: give postgresql://... "
            "(or sqlite: for the files in --home, the default)"
        )


def open_store(url: str | None, home: Path) -> Store:
    """The store `url` names (None or `sqlite:`: SQLite files in `home`)."""
    check_url(url)
    if url and is_postgres_url(url):
        try:
            from lf_bulk.store.postgres import PostgresStore
        except ImportError:
            raise InvalidSetting(EXTRA_MISSING) from None
        return PostgresStore(url)
    from lf_bulk.store.sqlite_store import SqliteStore

    return SqliteStore(Path(home))


def open_journal(url: str | None, home: Path) -> Journal:
    """The run journal of the store `url` names; with PostgreSQL, the locks of runs taken for
    `home` go to the store while the journal is open (closing it closes the store)."""
    check_url(url)
    if url and is_postgres_url(url):
        from lf_bulk.store.postgres import PostgresStore

        return cast("PostgresStore", open_store(url, home)).journal_for(Path(home))
    from lf_bulk.journal import Journal
    from lf_bulk.store.sqlite_store import JOURNAL_NAME

    return Journal(Path(home) / JOURNAL_NAME)


def open_answer_cache(url: str | None, home: Path) -> AnswerCache:
    """The answer cache of the store `url` names (`<home>/answers.db` by default)."""
    check_url(url)
    if url and is_postgres_url(url):
        store = open_store(url, home)
        try:
            return store.answer_cache()
        finally:
            store.close()
    from lf_bulk.answers import CACHE_NAME, AnswerCache

    return AnswerCache(Path(home) / CACHE_NAME)


@contextmanager
def bound_locks(url: str | None, home: Path) -> Iterator[None]:
    """While the block runs, the locks `lf_bulk.locking` takes for `home` are the store's (for
    PostgreSQL; the files in `home` stay flock's)."""
    if not (url and is_postgres_url(url)):
        yield
        return
    from lf_bulk import locking

    with opened_store(url, home) as store:
        locking.bind(home, store)
        try:
            yield
        finally:
            locking.unbind(home, store)


@contextmanager
def opened_store(url: str | None, home: Path) -> Iterator[Store]:
    store = open_store(url, home)
    try:
        yield store
    finally:
        store.close()


__all__ = (
    "ENV_VAR",
    "Pacer",
    "Store",
    "StoreKind",
    "bound_locks",
    "check_url",
    "is_postgres_url",
    "open_answer_cache",
    "open_journal",
    "open_store",
    "opened_store",
    "password_of",
    "refuse_password",
    "shown_url",
)
