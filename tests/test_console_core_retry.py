"""Retry from a run's page: the failures a retry could fix are sent again by `runs.retry`, the
CLI's own function (here every SIM is locked, so they fail again, and the page says so)."""

from __future__ import annotations

import re
import time
from pathlib import Path

from consolehelp import CONSOLE_FAULTS, console_client, console_settings, csrf_of, state_of

from lf_bulk import runs
from lf_bulk.engine import EngineOptions
from lf_bulk.models import Operation
from lf_bulk.sources import read_iccids

GROUP = "G1000001"
# One attempt per send: the run ends with its failures at once (the retry is the test).
QUICK = EngineOptions(first_poll=0.1, max_poll_interval=0.2, max_attempts=1)


def test_retry_from_the_page_sends_the_retryable_failures_again(tmp_path: Path) -> None:
    settings = console_settings(tmp_path / "home", faults=f"{CONSOLE_FAULTS},sim_locked=1")
    with console_client(tmp_path, settings=settings, engine=QUICK) as client:
        state = state_of(client)
        rows = state.client().list_members(GROUP)[:3]
        source = tmp_path / "leavers.csv"
        source.write_text("iccid\n" + "".join(f"{row}\n" for row in rows))
        with state.job_session() as session, state.journal() as journal:
            result = runs.start(
                journal, session.client, state.settings, read_iccids(source), Operation.REMOVE,
                GROUP, QUICK, report_dir=tmp_path / "report",
            )  # fmt: skip
        assert result.counts.get("failed") == 3 and result.retryable == 3
        page = client.get(f"/runs/{result.run_id}").text
        assert 'id="retry"' in page and "SIM_LOCKED" in page  # the failed rows and why
        answer = client.post(f"/runs/{result.run_id}/retry", data={"csrf_token": csrf_of(client)})
        assert answer.status_code == 303
        deadline = time.monotonic() + 20
        while state.runner.driving(result.run_id):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        page = client.get(f"/runs/{result.run_id}").text
        assert "3 retryable failure(s) to send again" in page
        assert re.search(r'id="run-status"[^>]*>finished<', page)
        with state.journal() as journal:
            attempts = [item.attempts for item in journal.items(result.run_id)]
        assert attempts and min(attempts) >= 2  # sent again, not only shown
