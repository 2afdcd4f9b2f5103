"""`lf-bulk reconcile FILE`: desired membership against the real groups; report, maybe fix."""

from __future__ import annotations

from pathlib import Path

import click

from jobs.context import AppContext, pass_app
from jobs.driving import drive_and_report, endpoint_of, explain_result, open_journal
from jobs.errors import JobError, JobExit
from jobs.options import input_file_options, report_dir_option, skip_invalid_option
from lf_bulk import reconcile as rc
from lf_bulk.bulk import report_dir_for
from lf_bulk.engine import EngineOptions
from lf_bulk.exitcodes import ExitCode
from lf_bulk.journal import new_run_id
from lf_bulk.locking import exclusive_all
from lf_bulk.sources import read_iccids


@click.command()
@click.argument("file")
@click.option("--group", help="The group for rows without a group column (and in scope).")
@click.option(
    "--all-groups",
    is_flag=True,
    help="Look for desired SIMs in every group of the account (finds moves, not just adds).",
)
@click.option("--apply", is_flag=True, help="Fix the drift: removals first, then additions.")
@click.option(
    "--max-changes",
    type=click.IntRange(min=0),
    default=500,
    show_default=True,
    help="Refuse to apply a plan with more API changes than this (a move counts 2).",
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
    max_changes: int,
    sheet: str | None,
    column: str | None,
    skip_invalid: bool,
    report_dir: Path | None,
) -> None:
    """Compare the membership desired in FILE with the groups; report drift; --apply fixes it.

    FILE has an ICCID column and an optional group column (group_id, group); --group names the
    group for rows without one. Exit 0 in sync (or converged), 4 drift found and not applied,
    3 some changes failed, 2 bad input or a plan over --max-changes.
    """
    table = read_iccids(
        file,
        sheet=sheet,
        column=column,
        extra_columns={"group": list(rc.GROUP_COLUMN_ALIASES)},
    )
    desired = rc.desired_rows(table, group)
    named = rc.named_groups(desired, group)
    if not named:
        raise JobError("no group in scope: add a group column to the file, or pass --group", 2)
    invalid = [r for r in desired if r.problem]
    if invalid and not skip_invalid:
        shown = "; ".join(f"row {r.row}: {r.problem} ({r.iccid!r})" for r in invalid[:10])
        raise JobError(
            f"{table.source}: {len(invalid)} invalid row(s): {shown}. Nothing was compared; "
            "fix the file or pass --skip-invalid",
            ExitCode.BAD_INPUT,
        )
    run_id = new_run_id()
    app.info(f"run {run_id}")
    target = report_dir_for(run_id, report_dir)
    with exclusive_all(
        app.settings.home,
        [f"group-{g}" for g in named],
        f"reconcile of {', '.join(named)}",
        holder=f"reconcile run {run_id}",
    ):
        client = app.session().client
        scope = (
            sorted({g.group_id for g in client.list_groups()} | set(named)) if all_groups else named
        )
        app.info(f"reading members of {len(scope)} group(s)")
        before = rc.diff(desired, rc.read_actual(client, scope), named)
        if not apply or not before.changes:
            code = ExitCode.DRIFT if before.drift else ExitCode.OK
            rc.write_reconcile_report(target, before, exit_code=code, run_id=run_id)
            finish(before, target, code, label="")
        changes = before.change_count()
        if changes > max_changes:
            rc.write_reconcile_report(target, before, exit_code=ExitCode.BAD_INPUT, run_id=run_id)
            click.echo(str(target))
            raise JobError(
                f"the plan has {changes} changes ({before.counts[rc.MISSING]} additions, "
                f"{before.counts[rc.UNEXPECTED]} removals, {before.counts[rc.MISPLACED]} moves "
                f"counting 2) and --max-changes is {max_changes}; nothing was sent. Check "
                f"{target / 'drift.csv'}, then pass --max-changes {changes} to allow it",
                ExitCode.BAD_INPUT,
            )
        app.info(rc.summary_line(before, label="plan: "))
        journal = open_journal(app)
        journal.create_run(
            run_id=run_id,
            kind="reconcile",
            operation="RECONCILE",
            group_id=",".join(named),
            items=rc.plan_items(before.changes),
            batch_size=500,
            source=table.source,
            report_dir=str(target / "run"),
            endpoint=endpoint_of(app),
            counts=(len(desired), len(desired) - len(invalid), len(invalid), 0),
        )
        result, _ = drive_and_report(app, journal, run_id, EngineOptions(), announce=False)
        after = rc.diff(desired, rc.read_actual(client, scope), named)
    converged = (
        after.counts[rc.MISSING] + after.counts[rc.UNEXPECTED] + after.counts[rc.MISPLACED] == 0
    )
    if result.exit_code == ExitCode.NOT_FINISHED:
        code = ExitCode.NOT_FINISHED
    elif result.exit_code == ExitCode.SOME_FAILED or not converged:
        code = ExitCode.SOME_FAILED
    else:
        code = ExitCode.DRIFT if after.drift else ExitCode.OK
    rc.write_reconcile_report(target, before, after=after, exit_code=code, run_id=run_id)
    explain_result(run_id, result, target / "run")
    finish(after, target, code, label="after apply: ")


def finish(diff: rc.Diff, report_dir: Path, code: ExitCode, *, label: str) -> None:
    click.echo(rc.summary_line(diff, label=label))
    click.echo(str(report_dir))
    raise JobExit(code)
