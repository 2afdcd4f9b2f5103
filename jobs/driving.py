"""Rendering a run for people: progress bars, its report folder, a summary and what to do next."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import click

from jobs.context import AppContext
from jobs.errors import JobExit
from jobs.progress import progress_bar
from lf_bulk import runs
from lf_bulk.client import LinksfieldClient
from lf_bulk.engine import Progress
from lf_bulk.exitcodes import ExitCode
from lf_bulk.journal import Journal


def open_journal(app: AppContext) -> Journal:
    journal = runs.open_journal(app.settings.home, app.settings.store_url)
    click.get_current_context().call_on_close(journal.close)
    return journal


def client_of(app: AppContext) -> Callable[[], LinksfieldClient]:
    """The API client, opened only when a library call first needs it."""
    return lambda: app.session().client


def bars(
    app: AppContext, calls_per_item: int = 0
) -> Callable[[int], AbstractContextManager[Progress]]:
    """The two bars of a run; with `calls_per_item` (a look-up run), the finished bar also says
    when the day's quota will stop the run before its end, so its ETA is not read as the end."""

    @contextmanager
    def two_bars(total: int) -> Iterator[Progress]:
        with (
            progress_bar(app, desc="submitted", total=total, unit="sim", position=0) as sent,
            progress_bar(app, desc="finished ", total=total, unit="sim", position=1) as done,
        ):
            if calls_per_item and app.progress_enabled:
                stop = quota_stop(app, total * calls_per_item)
                if stop:
                    done.set_postfix_str(stop)
            yield Progress(submitted=sent.update, finished=done.update)

    return two_bars


def quota_stop(app: AppContext, calls: int) -> str:
    """'3,200 calls left today; the rest after 00:00 UTC' when `calls` exceed what is left."""
    ledger = app.session().quota
    left = ledger.left_today()
    if calls <= left:
        return ""
    return f"{left:,} calls left today; the rest after {ledger.resets_at():%H:%M} UTC"


def render_run(app: AppContext, result: runs.RunResult | None) -> None:
    """Print a driven run's report folder and what to do next, and exit with its code.

    None (nothing to do) exits 0; a run not driven (its messages said why) exits with its code.
    """
    if result is None or not result.driven:
        raise JobExit(ExitCode.OK if result is None else result.exit_code)
    click.echo(str(result.report_dir))
    app.info(runs.summary_line(result.run_id, result.counts))
    explain_result(
        result.run_id, result.exit_code, result.stopped, result.report_dir, result.retryable
    )
    raise JobExit(result.exit_code)


def explain_result(
    run_id: str, exit_code: int, stopped: str, report_dir: Path, retryable: int | None = None
) -> None:
    """What to do next, on stderr; `retryable`: how many failures `runs retry` could fix."""
    if exit_code == ExitCode.NOT_FINISHED:
        why = {"no-wait": "submitted without waiting", "timeout": "timed out waiting"}.get(
            stopped, stopped
        )
        click.echo(
            f"run {run_id} is not finished ({why}); continue it with `lf-bulk runs wait {run_id}`",
            err=True,
        )
    elif exit_code == ExitCode.SOME_FAILED:
        if retryable == 0:
            advice = "no failure is one a retry could fix"
        else:
            advice = f"`lf-bulk runs retry {run_id}` re-sends the retryable ones"
        click.echo(
            f"run {run_id}: some ICCIDs failed, see {report_dir / 'items.csv'}; {advice}",
            err=True,
        )
