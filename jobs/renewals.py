"""`lf-bulk renewals list|cancel`: the SIMs' automatic renewals, listed or cancelled."""

from __future__ import annotations

from pathlib import Path

import click

from jobs import lookup_options as lk
from jobs.context import AppContext, pass_app
from jobs.driving import bars, client_of, open_journal
from jobs.options import report_dir_option
from lf_bulk import lookups
from lf_bulk import renewals as renewals_lib  # also registers the renewal reporters
from lf_bulk.fleet import OPTION_OUTPUT
from lf_bulk.reports import prepare_report_dir


@click.group()
def renewals() -> None:
    """Automatic renewals of the SIMs' plans (Vshop): list them, cancel them."""


@renewals.command(name="list", help="""List the SIMs of FILE, --group GROUP or --all-groups
that renew a plan automatically: sheet Renewals (iccid, order_no, pay_id, plan, periods, since,
group_id; a .csv output is this sheet alone, and a valid FILE for `renewals cancel`) and sheet
Without renewal (every other row, and why). The output path is printed on stdout. Exit 0; 3 when
some look-ups failed or a card is not found; 5 when not finished.
""" + lk.LOOKUP_FILE_HELP)  # fmt: skip
@lk.lookup_input_options
@lk.max_age_option
@lk.output_option("renewals-<date>.xlsx")
@lk.lookup_timeout_option
@report_dir_option
@pass_app
def list_renewals(
    app: AppContext, file: str | None, groups: tuple[str, ...], all_groups: bool,
    sheet: str | None, column: str | None, skip_invalid: bool, max_age: float,
    output: Path | None, timeout: float | None, report_dir: Path | None,
) -> None:  # fmt: skip
    target = lk.prepare_output(output, "renewals")
    if report_dir is not None:
        prepare_report_dir(report_dir)
    rows = lk.lookup_rows(app, file, groups, all_groups, sheet, column)
    result = lk.start(
        app, rows, lookups.LookupKind.RENEWALS, options={OPTION_OUTPUT: str(target)},
        max_age=max_age, report_dir=report_dir, skip_invalid=skip_invalid, timeout=timeout,
    )  # fmt: skip
    lk.render(app, result, target)


@renewals.command(help="""Cancel the automatic renewal of every SIM listed in FILE.

Without --yes nothing is sent: each renewal is looked up and the plan written (reason_code
WOULD_CANCEL). With --yes each renewal is cancelled once: the cancel is journaled before it is
sent, an answer that was lost is settled by looking the renewal up again (never by cancelling
blindly), and every cancelled renewal is read again at the end (still active: failed). A
cancelled renewal cannot be restored through the API.

Outcomes per row: cancelled, no_renewal, failed, invalid, duplicate, pending; items.csv adds
order_no, pay_id and plan. The report folder is printed on stdout. Exit 0 done (or the plan),
3 when some failed, 5 when not finished (`runs resume RUN` continues).
""" + lk.LOOKUP_FILE_HELP)  # fmt: skip
@lk.cancel_renewal_options
@pass_app
def cancel(
    app: AppContext, file: str, sheet: str | None, column: str | None, skip_invalid: bool,
    report_dir: Path | None, yes: bool, timeout: float | None,
) -> None:  # fmt: skip
    if report_dir is not None:
        prepare_report_dir(report_dir)
    rows = lk.lookup_rows(app, file, (), False, sheet, column)
    calls = len(lookups.CALLS[lookups.LookupKind.CANCEL_RENEWAL])
    result = renewals_lib.start_cancel(
        lambda: open_journal(app), client_of(app), app.settings, rows, yes=yes,
        report_dir=report_dir, skip_invalid=skip_invalid, timeout=timeout,
        progress=bars(app, calls), say=app.info,
    )  # fmt: skip
    lk.render(app, result, result.report_dir)
