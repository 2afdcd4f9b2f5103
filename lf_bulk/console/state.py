"""What every page of a console shares: its settings, the journal, API sessions, the runner."""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.requests import Request

from lf_bulk import runs
from lf_bulk.console.runner import RunManager
from lf_bulk.journal import Journal
from lf_bulk.quota import QuotaLedger
from lf_bulk.settings import ApiSession, Settings, open_quota_ledger, open_session
from lf_bulk.sqlite import ensure_private_dir

if TYPE_CHECKING:
    from lf_bulk.client import LinksfieldClient
    from lf_bulk.console.app import ConsoleConfig

SANDBOX_NOTICE = "sandbox: simulated Linksfield API, no real SIM is touched"


class ConsoleState:
    """One per console application (`request.app.state.console`).

    The pages' read-only calls share one API session; every launched job gets a session of its
    own (a job may set its client's quota flags, e.g. a resume's `retry_server`), all counted in
    the same quota ledger. On `--env sandbox` the embedded sandbox is started once, on first use,
    and every session talks to it.
    """

    def __init__(self, config: ConsoleConfig) -> None:
        self.config = config
        self.settings: Settings = config.settings
        self.csrf_secret = secrets.token_bytes(32)
        self.runner = RunManager(self.job_session)
        self._lock = threading.RLock()
        self._stack = ExitStack()
        self._sandbox_url: str | None = None
        self._shared: ApiSession | None = None
        self._ledger: QuotaLedger | None = None

    @property
    def is_sandbox(self) -> bool:
        return self.settings.in_process_sandbox

    @property
    def env_label(self) -> str:
        if self.is_sandbox:
            return SANDBOX_NOTICE
        return f"{self.settings.env} {self.settings.display_base_url or ''}".strip()

    def journal(self) -> Journal:
        """The run journal, opened for the caller (close it: `with state.journal() as j:`)."""
        return runs.open_journal(self.settings.home, self.settings.store_url)

    def _sandbox(self) -> str | None:
        if not self.is_sandbox:
            return None
        with self._lock:
            if self._sandbox_url is None:
                from lf_bulk.sandbox.server import running_sandbox

                ensure_private_dir(self.settings.home)
                server = self._stack.enter_context(
                    running_sandbox(self.settings.home / "sandbox.db", self.settings.sandbox_faults)
                )
                self._sandbox_url = server.base_url
            return self._sandbox_url

    def session(self) -> ApiSession:
        """The API session the pages share for read-only calls (opened on first use)."""
        with self._lock:
            if self._shared is None:
                url = self._sandbox()
                self._shared = self._stack.enter_context(
                    open_session(self.settings, sandbox_url=url)
                )
            return self._shared

    def client(self) -> LinksfieldClient:
        """The pages' shared client: for reading only (a job uses `Launch.client`)."""
        return self.session().client

    @contextmanager
    def job_session(self) -> Iterator[ApiSession]:
        """A session of its own for one job, on the console's sandbox when it has one."""
        with open_session(self.settings, sandbox_url=self._sandbox()) as session:
            yield session

    def quota(self) -> QuotaLedger:
        """Today's quota ledger of the account (reading it sends nothing)."""
        with self._lock:
            if self._ledger is None:
                ensure_private_dir(self.settings.home)
                self._ledger = self._stack.enter_context(open_quota_ledger(self.settings))
            return self._ledger

    @property
    def report_root(self) -> Path:
        """Where the console's jobs write their reports: `config.report_dir`, by default
        `<home>/console/reports` (a console's working folder may be anywhere)."""
        return self.config.report_dir or self.settings.home / "console" / "reports"

    def new_report_dir(self, label: str = "job") -> Path:
        """A fresh folder name for one job's reports (the library creates it) under
        `report_root`, named by the time and `label`, so a job can name files in it (e.g. its
        fleet workbook) before its run exists."""
        root = self.report_root
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        safe = re.sub(r"[^A-Za-z0-9_-]+", "-", label).strip("-")[:40] or "job"
        return (root / f"console-{stamp}-{safe}-{secrets.token_hex(3)}").absolute()

    @property
    def uploads_dir(self) -> Path:
        """Where uploads are kept, owner-only (`<home>/console/uploads`)."""
        return ensure_private_dir(self.settings.home / "console" / "uploads")

    def close(self) -> None:
        self.runner.close()
        with self._lock:
            self._shared = None
            self._ledger = None
            self._sandbox_url = None
            self._stack.close()


def console_state(request: Request) -> ConsoleState:
    state = request.app.state.console
    assert isinstance(state, ConsoleState)
    return state
