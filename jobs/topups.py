"""`lf-bulk orders create` (top-ups, one per row) and `lf-bulk payments check` (payment results)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from jobs.context import AppContext, pass_app
from jobs.driving import bars, client_of, open_journal, render_run
from jobs.errors import JobExit
from jobs.options import check_payments_options, create_orders_options
from lf_bulk import topups as lib
from lf_bulk.exitcodes import ExitCode
from lf_bulk.reports import prepare_report_dir


@click.command()
@create_orders_options
@pass_app
def create(
    app: AppContext, file: str, sheet: str | None, dry_run: bool, skip_invalid: bool,
    timeout: float | None, report_dir: Path | None,
) -> None:  # fmt: skip
    """Record one paid top-up order per row of FILE (Linksfield's third-party-payment order).

    FILE (.csv, .tsv, .xlsx or - for stdin) has the columns iccid, package_code, periods,
    amount, currency, pay_id and optionally order_no, pay_type, pay_time (2026-11-29 08:00:00)
    and auto_renewal (0/1). Every row is checked before anything is sent: an exact amount above 0
    with at most two decimals (a numeric Excel cell is read as Excel shows it), an ISO 4217
    currency, whole periods of at least 1, a plan code, a pay_id, and order_no / pay_id not
    repeated in the file; any problem stops the job (exit 2) unless --skip-invalid.

    At most one order per row, whatever happens: a row without order_no gets one, fixed in the
    journal before the first send; a row with an order_no that Linksfield has already is reported
    `exists` and not sent; an order whose answer was lost is looked up before it is ever sent
    again. --dry-run writes the plan with exact totals per currency and, where `sims plans` left
    the SIM's plan prices in the answer cache, flags amounts that differ from price x periods.
    """
    if report_dir is not None:
        prepare_report_dir(report_dir)
    stdin = sys.stdin.buffer if file == "-" else None
    order_input = lib.read_orders(file, sheet=sheet, stdin=stdin)
    if dry_run:
        plan = lib.plan_orders(client_of(app), app.settings, order_input, report_dir=report_dir)
        app.info(f"{order_input.source}: {plan.counts.describe()}")
        app.info(f"dry run: would create {lib.totals_line(plan.totals)}; nothing was sent")
        if plan.price_differs:
            app.info(
                f"warning: {plan.price_differs} row(s) differ from the plan's price x periods "
                "(see price_check in items.csv)"
            )
        click.echo(str(plan.report_dir))
        raise JobExit(ExitCode.OK)
    result = lib.start_orders(
        lambda: open_journal(app), client_of(app), app.settings, order_input,
        skip_invalid=skip_invalid, report_dir=report_dir, timeout=timeout,
        progress=bars(app), say=app.info,
    )  # fmt: skip
    render_run(app, result)


payments = click.Group("payments", help="Payment results (the Payment service).")


@payments.command()
@check_payments_options
@pass_app
def check(
    app: AppContext, file: str, sheet: str | None, output: Path | None, skip_invalid: bool,
    timeout: float | None, report_dir: Path | None,
) -> None:  # fmt: skip
    """Look up the result of every payment in FILE (a pay_id column).

    The output has a Payments sheet (pay_id, pay_status, amount, currency, pay_time, order_no,
    iccid; unknown ids as not_found) and a Totals sheet (count and exact sum per status and
    currency). Exit 3 when some pay_id was not found or its look-up failed.
    """
    if report_dir is not None:
        prepare_report_dir(report_dir)
    if output is not None:
        output = lib.check_output_path(output)
    stdin = sys.stdin.buffer if file == "-" else None
    planned = lib.read_pay_ids(file, sheet=sheet, stdin=stdin)
    result = lib.start_payments(
        lambda: open_journal(app), client_of(app), app.settings, planned, output=output,
        skip_invalid=skip_invalid, report_dir=report_dir, timeout=timeout,
        progress=bars(app), say=app.info,
    )  # fmt: skip
    if result.driven:
        app.info(f"payments written to {output or result.report_dir / 'payments.xlsx'}")
    render_run(app, result)
