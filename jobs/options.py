"""Options shared by several commands, each defined once and applied as a decorator bundle."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from jobs.config import read_config
from lf_bulk.defaults import (
    DEFAULT_DAILY_QUOTA,
    DEFAULT_HOME,
    DEFAULT_MAX_CHANGES,
    DEFAULT_MAX_REMOVAL_RATIO,
    DEFAULT_QUOTA_RESERVE,
    ENVIRONMENTS,
)
from lf_bulk.lazy import lazy_module
from lf_bulk.notify.when import WHEN_HELP, parse_when

if TYPE_CHECKING:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from lf_bulk import errors, wire
else:
    # The root group's options are built from this module: `lf-bulk --help` must not load the
    # wire profile (and its models) or the error tree; a command's first id or time loads them.
    errors = lazy_module("lf_bulk.errors")
    wire = lazy_module("lf_bulk.wire")

F = TypeVar("F", bound=Callable[..., Any])


class IdParamType(click.ParamType[str]):
    """A group or request id, checked by `wire.validate_id` before anything is sent.

    `kind` is the value of a `wire.IdKind` ('group id'): the kind is looked up when a value is
    checked, so that defining the options loads nothing of the wire profile.
    """

    def __init__(self, kind: str) -> None:
        self.name = kind

    @property
    def kind(self) -> wire.IdKind:
        return wire.IdKind(self.name)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return wire.validate_id(str(value), self.kind)
        except errors.InputError as error:
            self.fail(str(error), param, ctx)


GROUP_ID = IdParamType("group id")
REQUEST_ID = IdParamType("request id")


def compose(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


output_option = click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write to this file instead of stdout.",
)

format_option = click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)

report_dir_option = click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write the reports [default: ./lf-bulk-reports/<run id>/].",
)

certfile_option = click.option(
    "--certfile",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="TLS certificate (PEM, the chain included) to serve https.",
)

keyfile_option = click.option(
    "--keyfile",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The TLS certificate's private key (PEM).",
)

host_option = click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on."
)


def port_option(default: int) -> Callable[[F], F]:
    return click.option(
        "--port",
        default=default,
        show_default=True,
        type=click.IntRange(0, 65535),
        help="Port to listen on (0 picks a free one).",
    )


sheet_option = click.option(
    "--sheet", metavar="NAME", help="Workbook sheet to read [default: the first visible sheet]."
)

input_file_options = compose(
    sheet_option,
    click.option(
        "--column", metavar="NAME", help="Header of the ICCID column [default: found by its name]."
    ),
)

skip_invalid_option = click.option(
    "--skip-invalid",
    is_flag=True,
    help="Report invalid and duplicate rows and go on with the rest, instead of stopping.",
)

wait_options = compose(
    click.option(
        "--no-wait",
        is_flag=True,
        help="Submit and exit 5 without waiting; continue with `runs wait RUN`.",
    ),
    click.option(
        "--timeout",
        type=click.FloatRange(min=0),
        help="Stop waiting after this many seconds (exit 5; `runs wait RUN` continues).",
    ),
)

runs_timeout_option = click.option(
    "--timeout", type=click.FloatRange(min=0), help="Stop waiting after this many seconds."
)

FILE_HELP = """
FILE is a .csv, .tsv or .txt list, or an Excel workbook (.xlsx, .xlsm; --sheet picks the
sheet); - reads standard input (text, or an .xlsx workbook). The ICCID column is found by its
header (ICCID, SIM_ID, ICCID number...) in the first 100 rows, or named with --column; a
one-column list needs no header.

Every row that cannot be sent gets a reason code: empty, not_digits, bad_length, bad_prefix,
bad_checksum, numeric_cell (Excel stored the ICCID as a number and lost its last digits),
excel_error (a formula shows #N/A or another error), duplicate. Any such row stops the job
before anything is sent (exit 2) and is listed in the report, unless --skip-invalid.
"""


def sims_job_options(func: F) -> F:
    """The options of `sims add` and `sims remove`, applied when their module loads: the batch
    size's default is the wire profile's, which `lf-bulk --help` does not load."""
    return compose(
        click.argument("group", type=GROUP_ID),
        click.argument("file", metavar="FILE"),
        input_file_options,
        click.option(
            "--dry-run", is_flag=True, help="Show the plan and write it as a report; send nothing."
        ),
        skip_invalid_option,
        click.option(
            "--batch-size",
            type=click.IntRange(1, 10_000),
            default=wire.DEFAULT_BATCH_SIZE,
            show_default=True,
            help="ICCIDs per request; lowered automatically to the server's limit.",
        ),
        wait_options,
        report_dir_option,
    )(func)


verify_option = click.option(
    "--verify",
    is_flag=True,
    help="Verify every card with the Vshop service first (one call per SIM, its own run); "
    "cards it rejects (not found, another partner's, not active) are never sent and are "
    "reported `rejected`.",
)


class Ratio(click.FloatRange):
    """A fraction from 0 to 1; NaN, which FloatRange lets through (no comparison fails), is not."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        converted = super().convert(value, param, ctx)
        if math.isnan(converted):
            self.fail(f"{value!r} is not a number from 0 to 1.", param, ctx)
        return converted


RATIO = Ratio(0, 1)

reconcile_options = compose(
    click.argument("file"),
    click.option(
        "--group", type=GROUP_ID, help="The group for rows without a group column (and in scope)."
    ),
    click.option(
        "--all-groups",
        is_flag=True,
        help="Look for desired SIMs in every group of the account (finds moves, not just adds).",
    ),
    click.option(
        "--apply",
        is_flag=True,
        help="Fix the drift: removals first, then additions. Only on the command line.",
    ),
    click.option("--no-apply", is_flag=True, help="Never apply, whatever else says so."),
    click.option(
        "--max-changes",
        type=click.IntRange(min=0),
        default=DEFAULT_MAX_CHANGES,
        show_default=True,
        help="Refuse to apply a plan with more API changes than this (a move counts 2).",
    ),
    click.option(
        "--max-removal-ratio",
        type=RATIO,
        default=DEFAULT_MAX_REMOVAL_RATIO,
        show_default=True,
        help="Refuse to apply a plan that removes more than this fraction of a group's members.",
    ),
    input_file_options,
    skip_invalid_option,
    report_dir_option,
)


def _zone(ctx: click.Context, param: click.Parameter, value: str) -> ZoneInfo:
    from lf_bulk import orders  # the finance export's machinery, for its commands only

    try:
        return orders.zone_named(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


export_options = compose(
    click.argument("file", required=False, metavar="[FILE]"),
    click.option(
        "--group",
        "group_id",
        type=GROUP_ID,
        metavar="GROUP",
        help="Export the orders of every SIM in GROUP (instead of a FILE).",
    ),
    sheet_option,
    click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, path_type=Path),
        help="An .xlsx workbook, or .csv for the orders alone [default: ./orders-<timestamp>.xlsx].",
    ),
    click.option(
        "--timezone",
        "zone",
        metavar="ZONE",
        default="UTC",
        show_default=True,
        callback=_zone,
        help="The time zone the API's times are in (IANA name, e.g. Europe/London); times are "
        "written as given and the sheet says which zone they are in.",
    ),
)


# `orders create`, typed or enqueued (`lf-bulk enqueue orders create`).
create_orders_options = compose(
    click.argument("file", metavar="FILE"),
    sheet_option,
    click.option("--dry-run", is_flag=True, help="Show the plan and totals; send nothing."),
    skip_invalid_option,
    runs_timeout_option,
    report_dir_option,
)


# `payments check`, typed or enqueued (`lf-bulk enqueue payments check`).
check_payments_options = compose(
    click.argument("file", metavar="FILE"),
    sheet_option,
    click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write the results here (.xlsx, or .csv: the Payments rows only) "
        "[default: payments.xlsx in the report folder].",
    ),
    skip_invalid_option,
    runs_timeout_option,
    report_dir_option,
)


global_options = compose(
    click.option(
        "--config",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="LF_BULK_CONFIG",
        is_eager=True,
        expose_value=False,
        callback=read_config,
        help="TOML config file [default: ./lf-bulk.toml, then ~/.config/lf-bulk/config.toml].",
    ),
    click.option(
        "--env",
        type=click.Choice(ENVIRONMENTS),
        default="sandbox",
        envvar="LF_BULK_ENV",
        show_default=True,
        help="Which API: the embedded simulator, Linksfield UAT, or production.",
    ),
    click.option(
        "--base-url",
        envvar="LF_BULK_BASE_URL",
        help="Point every service (topup, vshop, payment) at this server instead of the "
        "environment's URLs.",
    ),
    click.option(
        "--vshop-url",
        envvar="LF_BULK_VSHOP_URL",
        help="The Vshop (Mall service) URL, over --base-url and the environment's.",
    ),
    click.option(
        "--payment-url",
        envvar="LF_BULK_PAYMENT_URL",
        help="The Payment (Cashier service) URL, over --base-url and the environment's.",
    ),
    click.option(
        "--allow-insecure-http",
        is_flag=True,
        help="Allow a plain-http base URL under --env prod, or to another machine (command line only).",
    ),
    click.option(
        "--partner-code",
        envvar="LF_BULK_PARTNER_CODE",
        help="Partner code issued by Linksfield (required for uat and prod).",
    ),
    click.option(
        "--home",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="LF_BULK_HOME",
        default=DEFAULT_HOME,
        show_default=True,
        help="Where the run journal and the sandbox state live.",
    ),
    click.option(
        "--store",
        envvar="LF_BULK_STORE",
        metavar="URL",
        help="Where runs, the quota ledger and locks live: the files in --home (default), or "
        "postgresql://user@host/db shared by several machines (no password in the URL: use "
        "PGPASSWORD or ~/.pgpass).",
    ),
    click.option(
        "--rate",
        type=click.FloatRange(min=0.1),
        default=10.0,
        show_default=True,
        help="Requests per second at most (polling included).",
    ),
    click.option(
        "--max-in-flight",
        type=click.IntRange(1, 32),
        default=3,
        show_default=True,
        help="Requests in flight at most.",
    ),
    click.option(
        "--retry-deadline",
        type=click.FloatRange(min=0),
        default=60.0,
        show_default=True,
        help="Give up retrying one request after this many seconds.",
    ),
    click.option(
        "--daily-quota",
        type=click.IntRange(min=1),
        envvar="LF_BULK_DAILY_QUOTA",
        default=DEFAULT_DAILY_QUOTA,
        show_default=True,
        help="Requests a day the server allows this partner code (every service counted; "
        "counted in <home>/quota.db across runs). A config file may only lower it.",
    ),
    click.option(
        "--quota-reserve",
        type=click.IntRange(min=0),
        envvar="LF_BULK_QUOTA_RESERVE",
        default=DEFAULT_QUOTA_RESERVE,
        show_default=True,
        help="The day's last requests, kept for reconcile (no other job spends them). A config "
        "file may only raise it.",
    ),
    click.option(
        "--sandbox-faults",
        envvar="LF_BULK_SANDBOX_FAULTS",
        hidden=True,
        help="Fault spec for the in-process sandbox (testing).",
    ),
    click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug)."),
    click.option(
        "-q", "--quiet", is_flag=True, help="Only data and report paths on stdout; errors."
    ),
    click.option("--no-progress", is_flag=True, help="No progress bars."),
)


def _when(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_when(value)
    except errors.InputError as error:
        raise click.BadParameter(str(error)) from None


since_option = click.option(
    "--since",
    metavar="T",
    callback=_when,
    help=f"Only pushes first received at or after T: {WHEN_HELP}.",
)
until_option = click.option(
    "--until", metavar="T", callback=_when, help="Only pushes first received before T (same forms)."
)

from_pushes_options = compose(
    click.option(
        "--from-pushes",
        is_flag=True,
        help="Export the orders pushed to `notify serve` (in --home) instead of looking keys up.",
    ),
    since_option,
)
