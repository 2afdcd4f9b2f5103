"""`lf-bulk reconcile FILE`: desired membership against the real groups; report, maybe fix."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TypeVar

import click
from click.core import ParameterSource

from jobs.context import AppContext, pass_app
from jobs.driving import bars, client_of, explain_result, open_journal
from jobs.errors import JobExit
from jobs.options import reconcile_options
from lf_bulk import reconcile as rc
from lf_bulk import runs

log = logging.getLogger(__name__)
T = TypeVar("T", bool, int, float)


@click.command()
@reconcile_options
@pass_app
def reconcile(
    app: AppContext, file: str, group: str | None, all_groups: bool, apply: bool,
    no_apply: bool, max_changes: int, max_removal_ratio: float, sheet: str | None,
    column: str | None, skip_invalid: bool, report_dir: Path | None,
) -> None:  # fmt: skip
    """Compare the membership desired in FILE with the groups; report drift; --apply fixes it.

    FILE has an ICCID column and an optional group column (group_id, group); --group names the
    group for rows without one; a workbook with several visible sheets needs --sheet (the sheet
    read is the whole desired state). With --skip-invalid, invalid rows are reported and removals are
    withheld (never made) until the file is fixed. Exit 0 in sync (or converged), 4 drift found
    and not applied, 3 some changes failed, 2 bad input or a plan refused (--max-changes,
    --max-removal-ratio).
    """
    # A config file may make reconcile safer, never turn a write on: --apply counts only when
    # typed, --no-apply wins over everything, and higher limits come only from the command line.
    options = rc.ReconcileOptions(
        apply=_typed("apply", apply, False) and not no_apply,
        all_groups=all_groups,
        max_changes=_typed("max_changes", max_changes, rc.DEFAULT_MAX_CHANGES),
        max_removal_ratio=_typed("max_removal_ratio", max_removal_ratio, rc.DEFAULT_MAX_REMOVAL_RATIO),
    )  # fmt: skip
    table = runs.read_desired(file, sheet=sheet, column=column)
    result = runs.reconcile(
        client_of(app), app.settings, table, options, group_id=group,
        sheet_named=sheet is not None, skip_invalid=skip_invalid, report_dir=report_dir,
        journal=lambda: open_journal(app), progress=bars(app), say=app.info,
    )  # fmt: skip
    if result.drive is not None:
        drive = result.drive
        explain_result(result.run_id, drive.exit_code, drive.stopped, result.report_dir / "run")
    if result.withheld:
        click.echo(
            f"{result.withheld} removal(s) withheld: the desired file has "
            f"{result.final.counts[rc.INVALID]} invalid row(s) (listed in "
            f"{result.report_dir / rc.ITEMS_CSV}); no member is removed until they are fixed",
            err=True,
        )
    if not app.quiet:
        click.echo(
            rc.summary_line(result.final, label="after apply: " if result.after is not None else "")
        )
    click.echo(str(result.report_dir))
    raise JobExit(result.exit_code)


def _typed(name: str, value: T, safe: T) -> T:
    """`value` if typed on the command line or no riskier than `safe`; else `safe`, with a warning."""
    source = click.get_current_context().get_parameter_source(name)
    if source is ParameterSource.COMMANDLINE or value <= safe:
        return value
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        log.warning("%s is only taken from the command line; not applying", flag)
    else:
        log.warning("a higher %s is only taken from the command line; using %s", flag, safe)
    return safe
