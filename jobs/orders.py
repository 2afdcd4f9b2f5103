"""`lf-bulk orders export`: order details and exact totals for finance, to .xlsx or .csv."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from jobs.context import AppContext, pass_app
from jobs.options import export_options, from_pushes_options
from jobs.progress import progress_bar
from jobs.topups import create
from lf_bulk import order_export as lib
from lf_bulk.api_values import MemberPage
from lf_bulk.notify import export as notify_export
from lf_bulk.orders import OrderExport, group_keys, read_keys, write_xlsx

orders = click.Group("orders", help="Order details of the account, for finance; top-ups.")
orders.add_command(create)


@orders.command()
@export_options
@from_pushes_options
@pass_app
def export(
    app: AppContext, file: str | None, group_id: str | None, sheet: str | None,
    output: Path | None, zone: ZoneInfo, from_pushes: bool, since: datetime | None,
) -> None:  # fmt: skip
    """Export the orders found by the keys in FILE, or of every SIM in --group GROUP.

    FILE (.csv, .tsv, .txt, .xlsx or - for stdin) has any of the columns purchase_order_id,
    order_id and iccid; on each row the first non-empty one is the key (the API's precedence).
    Rows with an invalid key are listed on the Not found sheet, with keys that found nothing.

    The workbook has an Orders sheet (one row per order, each order once), a Totals sheet (count
    and exact sum per currency and pay status, and per bundle and currency) and a Not found sheet;
    its path is printed on stdout. With a .csv output the orders go to the file (its path on
    stdout), the totals to <name>.totals.csv and keys not found to <name>.not-found.csv beside it.

    --from-pushes exports every order pushed to `notify serve` (since --since), with the same
    columns and totals: no keys needed, nothing looked up.
    """
    if [file is not None, group_id is not None, from_pushes].count(True) != 1:
        raise click.UsageError("give either FILE or --group GROUP (not both), or --from-pushes")
    if since is not None and not from_pushes:
        raise click.UsageError("--since goes with --from-pushes")
    target = _output_path(output)
    if from_pushes:
        listing = notify_export.load(app.settings.home, since=since)
        _write(app, notify_export.as_order_export(listing, zone), target)
        return
    if file is not None:
        keys = read_keys(file, sheet=sheet)
    else:
        keys = group_keys(group_id or "", _members(app, group_id or ""))
    if keys.invalid_rows:
        app.info(
            f"warning: {len(keys.invalid_rows)} row(s) of {keys.source} have an invalid key; "
            "they are listed on the Not found sheet and everything else is exported"
        )
    client = app.session().client
    lib.check_quota(client, keys)
    with progress_bar(app, total=len(keys.lookups), desc="order lookups", unit="key") as bar:
        timed = lib.export_orders(client, keys, zone, on_result=lambda _: bar.update(1))
    export = timed.export
    for warning in export.warnings:
        app.info(f"warning: {warning}")
    app.info(timed.summary())
    if target.suffix.lower() == ".csv":
        written = lib.write_csv_outputs(export, target)
        app.info(f"totals written to {written.totals}")
        if written.not_found:
            app.info(f"{len(export.not_found)} key(s) not found or invalid: {written.not_found}")
        for line in lib.total_lines(export):
            app.info(line)
    else:
        write_xlsx(export, target)
    click.echo(str(target))


def _output_path(output: Path | None) -> Path:
    try:
        return lib.prepare_output(output)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'-o' / '--output'") from None


def _members(app: AppContext, group_id: str) -> list[str]:
    client = app.session().client
    with progress_bar(app, desc=f"{group_id} members", unit="sim") as bar:

        def advance(page: MemberPage) -> None:
            bar.total = page.total
            bar.update(len(page.iccids))

        iccids = client.list_members(group_id, on_page=advance)
    app.info(f"{len(iccids)} SIMs in {group_id}")
    return iccids


def _write(app: AppContext, export: OrderExport, target: Path) -> None:
    """An export whose orders are already known (pushes), written as the key-based one is."""
    app.info(f"{len(export.orders)} orders from {export.source}. {export.zone_note}")
    if target.suffix.lower() == ".csv":
        written = lib.write_csv_outputs(export, target)
        app.info(f"totals written to {written.totals}")
        for line in lib.total_lines(export):
            app.info(line)
    else:
        write_xlsx(export, target)
    click.echo(str(target))
