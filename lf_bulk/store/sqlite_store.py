"""The default store: today's SQLite files and flock locks in `<home>`, unchanged."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path

from lf_bulk import locking
from lf_bulk.answers import CACHE_NAME, AnswerCache
from lf_bulk.journal import Journal
from lf_bulk.pacing import RequestPacer
from lf_bulk.quota import QuotaLedger, utc_now
from lf_bulk.store import StoreKind

JOURNAL_NAME = "journal.db"


class SqliteStore:
    kind = StoreKind.SQLITE

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.shown = f"sqlite: files in {self.home}"

    def journal(self) -> Journal:
        return Journal(self.home / JOURNAL_NAME)

    def quota_ledger(
        self,
        identity: str,
        *,
        daily_quota: int,
        reserve: int,
        clock: Callable[[], datetime] | None = None,
    ) -> QuotaLedger:
        return QuotaLedger.in_home(
            self.home, identity, daily_quota=daily_quota, reserve=reserve, clock=clock or utc_now
        )

    def answer_cache(self) -> AnswerCache:
        return AnswerCache(self.home / CACHE_NAME)

    def pacer(self, account_key: str, rate: float, concurrency: int) -> RequestPacer:
        # One process per home drives an account's runs: the pacer is the process's own.
        return RequestPacer(rate, concurrency)

    def lock(self, name: str, what: str, *, holder: str = "") -> AbstractContextManager[None]:
        return locking.exclusive(self.home, name, what, holder=holder)

    def is_held(self, name: str) -> bool:
        return locking.is_held(self.home, name)

    def check_locks(self) -> None:
        """flock lives as long as the process: nothing can take it away."""

    def close(self) -> None:
        pass
