"""`lf-bulk orders export`: order details and exact totals for finance, to .xlsx or .csv."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from jobs.context import AppContext, pass_app
from jobs.options import GROUP_ID, sheet_option
from jobs.progress import progress_bar
from lf_bulk import orders as lib
from lf_bulk.client import LinksfieldClient
from lf_bulk.files import make_folders
from lf_bulk.models import MemberPage

OUTPUT_SUFFIXES = (".xlsx", ".csv")

orders = click.Group("orders", help="Order details of the account, for finance.")


def _zone(ctx: click.Context, param: click.Parameter, value: str) -> ZoneInfo:
    try:
        return lib.zone_named(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@orders.command()
@click.argument("file", required=False, metavar="[FILE]")
@click.option(
    "--group",
    "group_id",
    type=GROUP_ID,
    metavar="GROUP",
    help="Export the orders of every SIM in GROUP (instead of a FILE).",
)
@sheet_option
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="An .xlsx workbook, or .csv for the orders alone [default: ./orders-<timestamp>.xlsx].",
)
@click.option(
    "--timezone",
    "zone",
    metavar="ZONE",
    default="UTC",
    show_default=True,
    callback=_zone,
    help="The time zone the API's times are in (IANA name, e.g. Europe/London); times are "
    "written as given and the sheet says which zone they are in.",
)
@pass_app
def export(
    app: AppContext,
    file: str | None,
    group_id: str | None,
    sheet: str | None,
    output: Path | None,
    zone: ZoneInfo,
) -> None:
    """Export the orders found by the keys in FILE, or of every SIM in --group GROUP.

    FILE (.csv, .tsv, .txt, .xlsx or - for stdin) has any of the columns purchase_order_id,
    order_id and iccid; on each row the first non-empty one is the key (the API's precedence).
    Rows with an invalid key are listed on the Not found sheet, with keys that found nothing.

    The workbook has an Orders sheet (one row per order, each order once), a Totals sheet (count
    and exact sum per currency and pay status, and per bundle and currency) and a Not found sheet;
    its path is printed on stdout. With a .csv output the orders go to the file (its path on
    stdout), the totals to <name>.totals.csv and keys not found to <name>.not-found.csv beside it.
    """
    if (file is None) == (group_id is None):
        raise click.UsageError("give either FILE or --group GROUP (not both)")
    target = _output_path(output)
    if file is not None:
        keys = lib.read_keys(file, sheet=sheet)
    else:
        keys = lib.group_keys(group_id or "", _members(app, group_id or ""))
    if keys.invalid_rows:
        app.info(
            f"warning: {len(keys.invalid_rows)} row(s) of {keys.source} have an invalid key; "
            "they are listed on the Not found sheet and everything else is exported"
        )
    client = app.session().client
    started = time.monotonic()
    results = _look_up(app, client, keys)
    elapsed = time.monotonic() - started
    export = lib.build_export(keys, results, zone)
    for warning in export.warnings:
        app.info(f"warning: {warning}")
    rate = f", {len(results) / elapsed:.1f} lookups/s" if elapsed > 0 and results else ""
    app.info(
        f"{len(export.orders)} orders from {len(results)} lookups in {elapsed:.1f}s{rate}; "
        f"{len(export.not_found)} key(s) not found or invalid. {export.zone_note}"
    )
    if target.suffix.lower() == ".csv":
        _write_csv(app, export, target)
    else:
        lib.write_xlsx(export, target)
        click.echo(str(target))


def _output_path(output: Path | None) -> Path:
    """The output file, checked before any lookup so that a typo costs nothing."""
    target = output or Path(f"orders-{datetime.now().strftime('%Y%m%d-%H%M%S')}.xlsx")
    if target.suffix.lower() not in OUTPUT_SUFFIXES:
        raise click.BadParameter(
            f"{target}: use a .xlsx or .csv file name", param_hint="'-o' / '--output'"
        )
    try:
        make_folders(target.parent)
    except OSError as error:
        raise click.BadParameter(
            f"{target.parent}: {error.strerror or error}", param_hint="'-o' / '--output'"
        ) from None
    return target


def _members(app: AppContext, group_id: str) -> list[str]:
    client = app.session().client
    with progress_bar(app, desc=f"{group_id} members", unit="sim") as bar:

        def advance(page: MemberPage) -> None:
            bar.total = page.total
            bar.update(len(page.iccids))

        iccids = client.list_members(group_id, on_page=advance)
    app.info(f"{len(iccids)} SIMs in {group_id}")
    return iccids


def _look_up(
    app: AppContext, client: LinksfieldClient, keys: lib.KeyInput
) -> list[lib.LookupResult]:
    lookups = keys.lookups
    with progress_bar(app, total=len(lookups), desc="order lookups", unit="key") as bar:
        return lib.run_lookups(client, lookups, on_result=lambda _: bar.update(1))


def _write_csv(app: AppContext, export: lib.OrderExport, target: Path) -> None:
    """The orders to `target` (its path on stdout), the totals and the keys not found beside it."""
    lib.write_csv(export, target)
    totals = target.with_name(f"{target.stem}.totals.csv")
    lib.write_totals_csv(export, totals)
    app.info(f"totals written to {totals}")
    if export.not_found:
        missing = target.with_name(f"{target.stem}.not-found.csv")
        lib.write_not_found_csv(export, missing)
        app.info(f"{len(export.not_found)} key(s) not found or invalid: {missing}")
    for t in export.by_status:
        app.info(
            f"total {t.currency} {t.pay_status}: {t.orders} orders, {lib.money_text(t.amount)}"
        )
    click.echo(str(target))
