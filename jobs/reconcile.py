"""`lf-bulk reconcile FILE`: desired membership against the real groups; report, maybe fix."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from jobs.context import AppContext, pass_app
from jobs.driving import drive_and_report, endpoint_of, explain_result, open_journal
from jobs.errors import JobError, JobExit
from jobs.options import GROUP_ID, input_file_options, report_dir_option, skip_invalid_option
from lf_bulk import reconcile as rc
from lf_bulk.bulk import report_dir_for
from lf_bulk.engine import DriveResult, EngineOptions
from lf_bulk.errors import InputError, InvalidRowsError, PlanRefused
from lf_bulk.exitcodes import ExitCode
from lf_bulk.journal import Journal, new_run_id
from lf_bulk.locking import exclusive_all
from lf_bulk.reports import prepare_report_dir
from lf_bulk.sources import read_iccids

log = logging.getLogger(__name__)


class Ratio(click.FloatRange):
    """A fraction from 0 to 1; NaN, which FloatRange lets through (no comparison fails), is not."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        converted = super().convert(value, param, ctx)
        if math.isnan(converted):
            self.fail(f"{value!r} is not a number from 0 to 1.", param, ctx)
        return converted


RATIO = Ratio(0, 1)


@click.command()
@click.argument("file")
@click.option(
    "--group", type=GROUP_ID, help="The group for rows without a group column (and in scope)."
)
@click.option(
    "--all-groups",
    is_flag=True,
    help="Look for desired SIMs in every group of the account (finds moves, not just adds).",
)
@click.option(
    "--apply",
    is_flag=True,
    help="Fix the drift: removals first, then additions. Only on the command line.",
)
@click.option("--no-apply", is_flag=True, help="Never apply, whatever else says so.")
@click.option(
    "--max-changes",
    type=click.IntRange(min=0),
    default=rc.DEFAULT_MAX_CHANGES,
    show_default=True,
    help="Refuse to apply a plan with more API changes than this (a move counts 2).",
)
@click.option(
    "--max-removal-ratio",
    type=RATIO,
    default=rc.DEFAULT_MAX_REMOVAL_RATIO,
    show_default=True,
    help="Refuse to apply a plan that removes more than this fraction of a group's members.",
)
@input_file_options
@skip_invalid_option
@report_dir_option
@pass_app
def reconcile(
    app: AppContext,
    file: str,
    group: str | None,
    all_groups: bool,
    apply: bool,
    no_apply: bool,
    max_changes: int,
    max_removal_ratio: float,
    sheet: str | None,
    column: str | None,
    skip_invalid: bool,
    report_dir: Path | None,
) -> None:
    """Compare the membership desired in FILE with the groups; report drift; --apply fixes it.

    FILE has an ICCID column and an optional group column (group_id, group); --group names the
    group for rows without one; a workbook with several visible sheets needs --sheet (the sheet
    read is the whole desired state). With --skip-invalid, invalid rows are reported and removals are
    withheld (never made) until the file is fixed. Exit 0 in sync (or converged), 4 drift found
    and not applied, 3 some changes failed, 2 bad input or a plan refused (--max-changes,
    --max-removal-ratio).
    """
    options = rc.ReconcileOptions(
        apply=_apply_requested(apply, no_apply),
        all_groups=all_groups,
        max_changes=_max_changes(max_changes),
        max_removal_ratio=_removal_ratio(max_removal_ratio),
    )
    table = read_iccids(
        file,
        sheet=sheet,
        column=column,
        extra_columns={"group": list(rc.GROUP_COLUMN_ALIASES)},
    )
    rc.check_one_sheet(table, sheet_named=sheet is not None)
    rc.check_columns(table)
    desired = rc.desired_rows(table, group)
    named = rc.named_groups(desired, group)
    run_id = new_run_id()
    app.info(f"run {run_id}")
    target = prepare_report_dir(report_dir_for(run_id, report_dir))
    try:
        rc.check_desired(
            table, desired, named, skip_invalid=skip_invalid, report_dir=target, run_id=run_id
        )
    except InvalidRowsError as error:
        click.echo(str(target))
        raise JobError(
            f"{error}\nNothing was compared or sent. Fix the file, or pass --skip-invalid to "
            "apply only additions and moves (no removal while any row is invalid). The rejected "
            f"rows are listed in {target / rc.ITEMS_CSV}",
            ExitCode.BAD_INPUT,
        ) from None
    except InputError:
        click.echo(str(target))
        raise

    def drive(journal: Journal, run: str) -> DriveResult:
        result, _ = drive_and_report(app, journal, run, EngineOptions(), announce=False)
        return result

    # With --all-groups a move may take a SIM out of any group of the account: lock them all.
    locked = rc.groups_to_lock(app.session().client, named, all_groups=all_groups)
    with exclusive_all(
        app.settings.home,
        [f"group-{g}" for g in locked],
        f"reconcile of {', '.join(named)}",
        holder=f"reconcile run {run_id}",
    ):
        try:
            result = rc.reconcile(
                app.session().client,
                desired,
                named,
                options,
                run_id=run_id,
                report_dir=target,
                journal=lambda: open_journal(app),
                drive=drive,
                source=table.source,
                endpoint=endpoint_of(app),
                say=app.info,
            )
        except PlanRefused:
            click.echo(str(target))
            raise
    render(app, result)


def _apply_requested(apply: bool, no_apply: bool) -> bool:
    # A config file may make reconcile safer, never turn a write on: --apply counts only when
    # typed, and --no-apply wins over everything.
    source = click.get_current_context().get_parameter_source("apply")
    if apply and source is not ParameterSource.COMMANDLINE:
        log.warning("--apply is only taken from the command line; not applying")
        return False
    return apply and not no_apply


def _removal_ratio(value: float) -> float:
    source = click.get_current_context().get_parameter_source("max_removal_ratio")
    if source is not ParameterSource.COMMANDLINE and value > rc.DEFAULT_MAX_REMOVAL_RATIO:
        log.warning(
            "a higher --max-removal-ratio is only taken from the command line; using %s",
            rc.DEFAULT_MAX_REMOVAL_RATIO,
        )
        return rc.DEFAULT_MAX_REMOVAL_RATIO
    return value


def _max_changes(value: int) -> int:
    source = click.get_current_context().get_parameter_source("max_changes")
    if source is not ParameterSource.COMMANDLINE and value > rc.DEFAULT_MAX_CHANGES:
        log.warning(
            "a higher --max-changes is only taken from the command line; using %s",
            rc.DEFAULT_MAX_CHANGES,
        )
        return rc.DEFAULT_MAX_CHANGES
    return value


def render(app: AppContext, result: rc.ReconcileResult) -> None:
    if result.drive is not None:
        explain_result(result.run_id, result.drive, result.report_dir / "run")
    if result.withheld:
        click.echo(
            f"{result.withheld} removal(s) withheld: the desired file has "
            f"{result.final.counts[rc.INVALID]} invalid row(s) (listed in "
            f"{result.report_dir / rc.ITEMS_CSV}); no member is removed until they are fixed",
            err=True,
        )
    label = "after apply: " if result.after is not None else ""
    if not app.quiet:
        click.echo(rc.summary_line(result.final, label=label))
    click.echo(str(result.report_dir))
    raise JobExit(result.exit_code)
