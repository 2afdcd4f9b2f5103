"""`lf-bulk worker`, `lf-bulk enqueue`, `lf-bulk partners`, `lf-bulk jobs`: many partner codes,
many machines, one shared PostgreSQL store (lf_bulk/workers)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import click

from jobs import lookup_options as lk
from jobs.context import AppContext, pass_app
from jobs.errors import JobExit
from jobs.options import (
    FILE_HELP,
    check_payments_options,
    create_orders_options,
    export_options,
    from_pushes_options,
    reconcile_options,
    sims_job_options,
    verify_option,
)
from lf_bulk import runs, workers
from lf_bulk.errors import InvalidSetting
from lf_bulk.exitcodes import ExitCode
from lf_bulk.journal import new_run_id
from lf_bulk.models import Operation
from lf_bulk.quota import DEFAULT_DAILY_QUOTA, DEFAULT_QUOTA_RESERVE
from lf_bulk.sources import read_iccids
from lf_bulk.workers.spec import ROWS_LOOKUPS, JobCommand, JobSpec, check_partner_name

DEFAULT_REPORT_ROOT = Path("lf-bulk-reports")
ENQUEUE_KEY = "lf_bulk_enqueue"


def store_url(app: AppContext) -> str:
    """The shared PostgreSQL store, or a clear refusal (exit 2) and what to install or pass."""
    return workers.require_postgresql(app.settings.store_url)


def partner_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return check_partner_name(value)
    except InvalidSetting as error:
        raise click.BadParameter(str(error)) from None


# ---------------------------------------------------------------- worker


@click.command()
@click.option(
    "--concurrency", type=click.IntRange(1, 64), default=1, show_default=True,
    help="Jobs this worker runs at once (each partner's jobs still run one at a time).",
)  # fmt: skip
@click.option("--queue", "queues", multiple=True, help="Take jobs of this queue only (repeat).")
@click.option(
    "--report-dir", type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_REPORT_ROOT, show_default=True,
    help="Folder of every run's reports (<folder>/<run id>/): share it between the machines.",
)  # fmt: skip
@click.option(
    "--heartbeat", type=click.FloatRange(0.1, 600), default=10.0, show_default=True,
    help="Seconds between heartbeats; a worker silent for 3 of them is dead and its jobs are "
    "taken over (their runs resume from the journal).",
)  # fmt: skip
@click.option("--init", is_flag=True, help="Create the job tables in the store, then exit.")
@pass_app
def worker(
    app: AppContext, concurrency: int, queues: tuple[str, ...], report_dir: Path,
    heartbeat: float, init: bool,
) -> None:  # fmt: skip
    """Run one worker: take enqueued jobs from the shared store and run them, until Ctrl-C.

    The jobs' partners come from `lf-bulk partners`; each partner's code from this machine's
    LF_BULK_PARTNER_CODE_<NAME> or the [partner_codes] table of <home>/credentials.toml (0600).
    """
    url = store_url(app)
    from lf_bulk.workers import app as worker_app

    if init:
        applied = worker_app.ensure_schema(url)
        app.info("job tables created" if applied else "job tables present already")
        raise JobExit(ExitCode.OK)
    runner = worker_app.JobRunner(
        settings=app.settings, store_url=url, report_root=report_dir.absolute(), say=app.info
    )
    app.info(f"worker: reports under {runner.report_root}; Ctrl-C stops it after its jobs")
    asyncio.run(
        worker_app.run_worker(
            runner, concurrency=concurrency, queues=list(queues) or None, heartbeat=heartbeat
        )
    )


# ---------------------------------------------------------------- enqueue


@click.group()
@click.option(
    "--partner", callback=partner_name,
    help="The partner (`lf-bulk partners list`) the job runs for; never its code.",
)  # fmt: skip
@click.option("--queue", default="default", show_default=True, help="The queue of the job.")
@click.pass_context
def enqueue(ctx: click.Context, partner: str | None, queue: str) -> None:
    """Defer a run-creating command to the workers, checked now as the command would check it.

    The input file is read and checked here; its rows travel with the job, so no worker needs
    the file. Each partner's jobs run one at a time; the same job still waiting is refused
    (exit 2). Prints the job id on stdout.
    """
    ctx.meta[ENQUEUE_KEY] = (partner, queue)


@enqueue.group(name="sims")
def enqueue_sims() -> None:
    """Add SIMs to a group or remove them, on a worker."""


# Options of the commands that have no meaning on a worker: it always waits for the run's end,
# and writes the reports under its own --report-dir.
NOT_ON_A_WORKER = {
    "dry_run": "--dry-run (run the command itself for a plan)",
    "no_wait": "--no-wait (a worker always waits for the run's end)",
    "timeout": "--timeout (a worker always waits for the run's end)",
    "report_dir": "--report-dir (the reports go under the worker's --report-dir)",
    "output": "--output (a worker writes the workbook in the job's report folder)",
    "from_pushes": "--from-pushes (the pushes are in the --home of `notify serve`: export "
    "them there)",
    "since": "--since (it goes with --from-pushes)",
}


def refuse_worker_options(given: dict[str, object]) -> None:
    for name, label in NOT_ON_A_WORKER.items():
        if given.pop(name, None):
            raise click.UsageError(f"enqueue takes no {label}")


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _sims_job(operation: Operation) -> click.Command:
    command = JobCommand.ADD if operation is Operation.ADD else JobCommand.REMOVE

    @sims_job_options
    @verify_option
    @pass_app
    def job(app: AppContext, /, **given: object) -> None:
        refuse_worker_options(given)
        partner, queue, url = enqueue_target(app)
        group, file, skip_invalid = (
            str(given["group"]),
            str(given["file"]),
            bool(given["skip_invalid"]),
        )
        table = read_iccids(
            file, sheet=_text(given["sheet"]), column=_text(given["column"]), stdin=stdin_for(file)
        )
        run_id = new_run_id()
        runs.check_input(
            table, operation, group, None, skip_invalid=skip_invalid, say=app.info, run_id=run_id
        )
        options = {"group": group, "batch_size": given["batch_size"], "skip_invalid": skip_invalid}
        if given["verify"]:  # the verification's own run, its id chosen now like the run's
            options.update(verify=True, verify_run_id=new_run_id())
        submit(app, url, JobSpec.of(command, partner, run_id, table, options), queue)

    verb = "Add the ICCIDs listed in FILE to GROUP" if operation is Operation.ADD else (
        "Remove the ICCIDs listed in FILE from GROUP"
    )  # fmt: skip
    help_text = f"{verb}, on a worker.\n" + FILE_HELP
    return click.command(name=str(operation).lower(), help=help_text)(job)


@enqueue.command(name="reconcile")
@reconcile_options
@pass_app
def enqueue_reconcile(app: AppContext, /, **given: object) -> None:
    """Compare the membership desired in FILE with the groups, on a worker; --apply (typed
    here, and only here) fixes the drift within --max-changes and --max-removal-ratio."""
    from jobs.reconcile import _typed  # the one rule: a write and higher limits only when typed
    from lf_bulk import reconcile as rc

    refuse_worker_options(given)
    partner, queue, url = enqueue_target(app)
    file, sheet, group = str(given["file"]), _text(given["sheet"]), _text(given["group"])
    table = runs.read_desired(file, sheet=sheet, column=_text(given["column"]))
    run_id, skip_invalid = new_run_id(), bool(given["skip_invalid"])
    runs.check_reconcile_input(
        table, group_id=group, sheet_named=sheet is not None, skip_invalid=skip_invalid,
        run_id=run_id,
    )  # fmt: skip
    max_changes, ratio = int(given["max_changes"]), float(given["max_removal_ratio"])  # type: ignore[call-overload,arg-type]
    options = {
        "group": group,
        "sheet_named": sheet is not None,
        "skip_invalid": skip_invalid,
        "apply": _typed("apply", bool(given["apply"]), False) and not given["no_apply"],
        "all_groups": bool(given["all_groups"]),
        "max_changes": _typed("max_changes", max_changes, rc.DEFAULT_MAX_CHANGES),
        "max_removal_ratio": _typed("max_removal_ratio", ratio, rc.DEFAULT_MAX_REMOVAL_RATIO),
    }
    submit(app, url, JobSpec.of(JobCommand.RECONCILE, partner, run_id, table, options), queue)


@enqueue_sims.command(name="status")
@lk.lookup_input_options
@lk.expiring_within_option
@lk.max_age_option
@pass_app
def enqueue_status(
    app: AppContext, file: str | None, groups: tuple[str, ...], all_groups: bool,
    sheet: str | None, column: str | None, skip_invalid: bool, expiring_within: int,
    max_age: float,
) -> None:  # fmt: skip
    """The fleet workbook of FILE's SIMs, or of the members of --group GROUP or --all-groups
    (read by the worker when the job runs), on a worker: fleet.xlsx in the run's report folder."""
    options = {"expiring_within": expiring_within, "max_age": max_age}
    enqueue_rows_lookup(app, JobCommand.STATUS, file, groups, all_groups, sheet, column,
                        skip_invalid, options)  # fmt: skip


@enqueue_sims.command(name="plans")
@lk.lookup_input_options
@lk.area_option
@lk.max_age_option
@pass_app
def enqueue_plans(
    app: AppContext, file: str | None, groups: tuple[str, ...], all_groups: bool,
    sheet: str | None, column: str | None, skip_invalid: bool, area: str | None,
    max_age: float,
) -> None:  # fmt: skip
    """The plans FILE's SIMs, or the members of --group GROUP or --all-groups (read by the
    worker when the job runs), can buy, on a worker: plans.xlsx in the run's report folder."""
    options = {"area": area, "max_age": max_age}
    enqueue_rows_lookup(app, JobCommand.PLANS, file, groups, all_groups, sheet, column,
                        skip_invalid, options)  # fmt: skip


def enqueue_rows_lookup(
    app: AppContext, command: JobCommand, file: str | None, groups: tuple[str, ...],
    all_groups: bool, sheet: str | None, column: str | None, skip_invalid: bool,
    options: Mapping[str, object],
) -> None:  # fmt: skip
    """A look-up of FILE's rows (checked now) or of groups' members (read by the worker)."""
    from lf_bulk import lookups
    from lf_bulk.sources import InputTable

    if sum((file is not None, bool(groups), all_groups)) != 1:
        raise click.UsageError("give one of FILE, --group GROUP (repeatable) or --all-groups")
    partner, queue, url = enqueue_target(app)
    run_id = new_run_id()
    if file is not None:
        table = read_iccids(file, sheet=sheet, column=column, stdin=stdin_for(file))
        kind = lookups.LookupKind(ROWS_LOOKUPS[command])
        lookups.check_lookup_input(table, kind, skip_invalid=skip_invalid, run_id=run_id)
    else:
        table = InputTable("", None, "", [])
    given = {"groups": list(groups), "all_groups": all_groups, "from_file": file is not None,
             "skip_invalid": skip_invalid, **options}  # fmt: skip
    submit(app, url, JobSpec.of(command, partner, run_id, table, given), queue)


@enqueue_sims.command(name="verify")
@lk.single_file_options
@lk.lookup_timeout_option
@pass_app
def enqueue_verify(app: AppContext, /, **given: object) -> None:
    """Verify every card listed in FILE with Linksfield (one call per SIM), on a worker."""
    enqueue_file_lookup(app, given, JobCommand.VERIFY, {})


def enqueue_file_lookup(
    app: AppContext, given: dict[str, object], command: JobCommand, options: dict[str, object]
) -> None:
    """Queue a look-up of the SIMs of FILE (checked here as the command checks them)."""
    from lf_bulk import lookups

    kind = {
        JobCommand.VERIFY: lookups.LookupKind.VERIFY,
        JobCommand.CANCEL_RENEWALS: lookups.LookupKind.CANCEL_RENEWAL,
    }[command]
    refuse_worker_options(given)
    partner, queue, url = enqueue_target(app)
    file, skip_invalid = str(given["file"]), bool(given["skip_invalid"])
    table = read_iccids(
        file, sheet=_text(given["sheet"]), column=_text(given["column"]), stdin=stdin_for(file)
    )
    run_id = new_run_id()
    lookups.check_lookup_input(table, kind, skip_invalid=skip_invalid, run_id=run_id)
    spec = JobSpec.of(command, partner, run_id, table, {**options, "skip_invalid": skip_invalid})
    submit(app, url, spec, queue)


@enqueue.group(name="renewals")
def enqueue_renewals() -> None:
    """List or cancel automatic renewals, on a worker."""


@enqueue_renewals.command(name="list")
@lk.lookup_input_options
@lk.max_age_option
@pass_app
def enqueue_list_renewals(
    app: AppContext, file: str | None, groups: tuple[str, ...], all_groups: bool,
    sheet: str | None, column: str | None, skip_invalid: bool, max_age: float,
) -> None:  # fmt: skip
    """The SIMs of FILE, --group GROUP or --all-groups (read by the worker when the job runs)
    that renew a plan automatically, on a worker: renewals.xlsx in the run's report folder."""
    enqueue_rows_lookup(app, JobCommand.LIST_RENEWALS, file, groups, all_groups, sheet, column,
                        skip_invalid, {"max_age": max_age})  # fmt: skip


@enqueue_renewals.command(name="cancel")
@lk.cancel_renewal_options
@pass_app
def enqueue_cancel_renewals(app: AppContext, /, **given: object) -> None:
    """Cancel the automatic renewal of every SIM listed in FILE, on a worker. Without --yes
    (typed here, and only here) nothing is sent: the plan is written (WOULD_CANCEL)."""
    enqueue_file_lookup(app, given, JobCommand.CANCEL_RENEWALS, {"yes": bool(given["yes"])})


@enqueue.group(name="orders")
def enqueue_orders() -> None:
    """Top-ups and order exports, on a worker."""


@enqueue_orders.command(name="create")
@create_orders_options
@pass_app
def enqueue_create_orders(app: AppContext, /, **given: object) -> None:
    """Record one paid top-up order per row of FILE, on a worker (see `orders create`).

    Every row is checked here, and the order numbers of rows without one are fixed here: every
    attempt of the job pays the same orders. A FILE with a pay_id that an earlier job of the
    partner holds is refused (exit 2), even after that job ran: continue its run instead.
    """
    from lf_bulk import topups

    refuse_worker_options(given)
    partner, queue, url = enqueue_target(app)
    file, skip_invalid = str(given["file"]), bool(given["skip_invalid"])
    table = topups.read_order_table(file, sheet=_text(given["sheet"]), stdin=stdin_for(file))
    generated: dict[str, str] = {}

    def order_no(row: int) -> str:
        generated[str(row)] = topups.generate_order_no(row)
        return generated[str(row)]

    order_input = topups.orders_of(table, make_order_no=order_no)
    app.info(f"{order_input.source}: {order_input.counts.describe()}")
    topups.check_orders(order_input, skip_invalid=skip_invalid)
    options = {"skip_invalid": skip_invalid, "order_nos": generated}
    spec = JobSpec.of(JobCommand.CREATE_ORDERS, partner, new_run_id(), table, options)
    submit(app, url, spec, queue)


@enqueue.group(name="payments")
def enqueue_payments() -> None:
    """Payment results, on a worker."""


@enqueue_payments.command(name="check")
@check_payments_options
@pass_app
def enqueue_check_payments(app: AppContext, /, **given: object) -> None:
    """Look up the result of every payment in FILE (a pay_id column), on a worker:
    payments.xlsx in the run's report folder."""
    from lf_bulk import lookups, topups

    refuse_worker_options(given)
    partner, queue, url = enqueue_target(app)
    file, skip_invalid = str(given["file"]), bool(given["skip_invalid"])
    table = topups.read_pay_id_table(file, sheet=_text(given["sheet"]), stdin=stdin_for(file))
    run_id = new_run_id()
    lookups.check_planned_input(
        topups.pay_ids_of(table), lookups.LookupKind.CHECK_PAYMENT, skip_invalid=skip_invalid,
        run_id=run_id,
    )  # fmt: skip
    options = {"skip_invalid": skip_invalid}
    submit(app, url, JobSpec.of(JobCommand.CHECK_PAYMENTS, partner, run_id, table, options), queue)


@enqueue_orders.command(name="export")
@export_options
@from_pushes_options
@pass_app
def enqueue_export_orders(app: AppContext, /, **given: object) -> None:
    """Export the orders found by the keys in FILE, or of every SIM in --group GROUP (read by
    the worker when the job runs), on a worker: orders.xlsx in the job's report folder."""
    from lf_bulk import orders
    from lf_bulk.sources import InputTable

    refuse_worker_options(given)
    file, group = _text(given["file"]), _text(given["group_id"])
    if (file is None) == (group is None):
        raise click.UsageError("give either FILE or --group GROUP (not both)")
    partner, queue, url = enqueue_target(app)
    table = InputTable("", None, "", [])
    if file is not None:
        table = orders.read_key_table(file, sheet=_text(given["sheet"]), stdin=stdin_for(file))
        orders.keys_of(table)  # no key at all: refused now, as the command refuses it
    options = {"group": group, "timezone": str(given["zone"])}
    spec = JobSpec.of(JobCommand.EXPORT_ORDERS, partner, new_run_id(), table, options)
    submit(app, url, spec, queue)


def enqueue_target(app: AppContext) -> tuple[str, str, str]:
    """The partner, queue and store URL given to `enqueue`. Checked here, so that `--help` needs
    none of them; the partner must exist before its job is queued (a typo fails now, not at
    2 a.m.)."""
    from lf_bulk.workers import app as worker_app
    from lf_bulk.workers import partners

    partner, queue = click.get_current_context().meta[ENQUEUE_KEY]
    if partner is None:
        raise click.UsageError("enqueue needs --partner NAME (`lf-bulk partners list`)")
    url = store_url(app)
    with worker_app.connect(url) as db:
        partners.get(db, str(partner))
    return str(partner), str(queue), url


def stdin_for(file: str) -> BinaryIO | None:
    return sys.stdin.buffer if file == "-" else None


def submit(app: AppContext, url: str, spec: JobSpec, queue: str) -> None:
    from lf_bulk.workers import app as worker_app

    job_id = worker_app.enqueue(url, spec, queue=queue)
    app.info(f"job {job_id}: {spec.command} for {spec.partner}, run {spec.run_id} when it starts")
    click.echo(str(job_id))
    raise JobExit(ExitCode.OK)


enqueue_sims.add_command(_sims_job(Operation.ADD))
enqueue_sims.add_command(_sims_job(Operation.REMOVE))


# ---------------------------------------------------------------- partners


@click.group()
def partners() -> None:
    """Per-partner settings in the shared store (never the partner code itself)."""


@partners.command(name="add")
@click.argument("name", callback=partner_name)
@click.option("--env", "environment", type=click.Choice(["uat", "prod"]), required=True,
              help="The partner's environment.")  # fmt: skip
@click.option("--base-url", help="One URL for every service (no password in it).")
@click.option("--vshop-url", help="The Vshop service's URL, over --base-url.")
@click.option("--payment-url", help="The Payment service's URL, over --base-url.")
@click.option("--quota", type=click.IntRange(min=1), default=DEFAULT_DAILY_QUOTA,
              show_default=True, help="The partner's daily request quota.")  # fmt: skip
@click.option("--reserve", type=click.IntRange(min=0), default=DEFAULT_QUOTA_RESERVE,
              show_default=True, help="Requests of the quota kept for reconcile.")  # fmt: skip
@click.option(
    "--report-dir", type=click.Path(file_okay=False),
    help="The partner's own report folder (an absolute path every worker machine mounts) "
    "[default: the worker's --report-dir].",
)  # fmt: skip
@pass_app
def partners_add(
    app: AppContext, name: str, environment: str, base_url: str | None, vshop_url: str | None,
    payment_url: str | None, quota: int, reserve: int, report_dir: str | None,
) -> None:  # fmt: skip
    """Add partner NAME (or change its settings). Its code stays on each worker machine:
    LF_BULK_PARTNER_CODE_<NAME>, or [partner_codes] in <home>/credentials.toml (mode 0600)."""
    from lf_bulk.workers import app as worker_app
    from lf_bulk.workers import partners as table

    url = store_url(app)
    partner = table.Partner(
        name, environment, base_url, vshop_url, payment_url, daily_quota=quota,
        quota_reserve=reserve, report_dir=report_dir,
    )  # fmt: skip
    # Its URLs checked now as a job would check them (https, no password), not at 2 a.m.
    partner.settings(app.settings, partner_code="not-stored")
    with worker_app.connect(url) as db:
        added = table.save(db, partner)
    app.info(f"partner {name} {'added' if added else 'updated'}")


@partners.command(name="list")
@click.option("--names", is_flag=True, help="Only the names, one a line (for shell loops).")
@pass_app
def partners_list(app: AppContext, names: bool) -> None:
    """Every partner in the store, as JSON lines (or only their names)."""
    from lf_bulk.workers import app as worker_app
    from lf_bulk.workers import partners as table

    with worker_app.connect(store_url(app)) as db:
        found = table.listing(db)
    for partner in found:
        click.echo(partner.name if names else json.dumps(partner.as_row()))


@partners.command(name="remove")
@click.argument("name", callback=partner_name)
@pass_app
def partners_remove(app: AppContext, name: str) -> None:
    """Remove partner NAME from the store (its jobs still queued will fail)."""
    from lf_bulk.workers import app as worker_app
    from lf_bulk.workers import partners as table

    with worker_app.connect(store_url(app)) as db:
        removed = table.remove(db, name)
    if not removed:
        raise click.UsageError(f"no partner named {name!r} in the store")
    app.info(f"partner {name} removed")


# ---------------------------------------------------------------- jobs


@click.group(name="jobs")
def jobs_group() -> None:
    """The jobs enqueued for the workers."""


@jobs_group.command(name="list")
@pass_app
def jobs_list(app: AppContext) -> None:
    """Every job, newest first, as JSON lines: status, partner, command, run id, next try."""
    from lf_bulk.workers import app as worker_app

    for job in worker_app.list_jobs(store_url(app)):
        click.echo(json.dumps(job, default=str))


# `lf-bulk jobs` (the name `jobs` is this package's: the group is bound under it for the CLI).
jobs = jobs_group
