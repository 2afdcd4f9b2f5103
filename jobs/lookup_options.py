"""Options of the per-SIM look-up commands (`sims verify/status/plans`, `renewals list/cancel`),
each defined once, and how such a run is started and rendered."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from jobs.context import AppContext
from jobs.driving import bars, client_of, open_journal
from jobs.errors import JobExit
from jobs.options import (
    GROUP_ID,
    compose,
    input_file_options,
    report_dir_option,
    skip_invalid_option,
)
from jobs.progress import progress_bar
from lf_bulk import fleet, lookups, runs
from lf_bulk.api_values import MemberPage
from lf_bulk.exitcodes import ExitCode
from lf_bulk.files import prove_writable
from lf_bulk.sources import InputTable, read_iccids

F = TypeVar("F", bound=Callable[..., Any])


class Duration(click.ParamType[float]):
    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        try:
            return lookups.parse_max_age(str(value).strip())
        except ValueError as error:
            self.fail(str(error), param, ctx)


max_age_option = click.option(
    "--max-age",
    type=Duration(),
    default="12h",
    show_default=True,
    metavar="DURATION",
    help="Reuse answers fetched within this long (e.g. 30m, 12h, 2d); 0 asks afresh.",
)

lookup_timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    help="Stop after this many seconds (exit 5; `lf-bulk runs resume RUN` continues).",
)


def output_option(default_name: str) -> Callable[[F], F]:
    return click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, path_type=Path),
        help=f"An .xlsx workbook, or .csv for its main sheet alone [default: ./{default_name}].",
    )


lookup_input_options = compose(
    click.argument("file", required=False, metavar="[FILE]"),
    click.option(
        "--group",
        "groups",
        type=GROUP_ID,
        multiple=True,
        metavar="GROUP",
        help="Every SIM of GROUP instead of a FILE (repeat for several groups).",
    ),
    click.option("--all-groups", is_flag=True, help="Every SIM of every group of the account."),
    input_file_options,
    skip_invalid_option,
)

single_file_options = compose(
    click.argument("file", metavar="FILE"),
    input_file_options,
    skip_invalid_option,
    report_dir_option,
)

area_option = click.option(
    "--area", metavar="AREA", help="Only the plans of this area (e.g. 欧洲)."
)

# `renewals cancel`, typed or enqueued (`lf-bulk enqueue renewals cancel`).
cancel_renewal_options = compose(
    single_file_options,
    click.option("--yes", is_flag=True, help="Send the cancels (only on the command line)."),
    lookup_timeout_option,
)

LOOKUP_FILE_HELP = """
FILE is a .csv, .tsv or .txt list, or an Excel workbook (.xlsx, .xlsm), or - for standard
input; its ICCID column is found by its header or named with --column. Invalid or duplicate rows
stop the job before anything is sent (exit 2) unless --skip-invalid. Each SIM costs one Vshop
call per answer (the day's quota counts them); answers younger than --max-age are reused.
"""


def prepare_output(output: Path | None, stem: str, now: datetime | None = None) -> Path:
    """The output file as an absolute path (a resumed run writes it there), checked first."""
    day = (now or datetime.now(UTC)).strftime("%Y-%m-%d")
    target = (output or Path(f"{stem}-{day}.xlsx")).absolute()
    if target.suffix.lower() not in (".xlsx", ".csv"):
        raise click.BadParameter(f"{target}: use a .xlsx or .csv file name", param_hint="'-o'")
    if not target.parent.is_dir():
        raise click.BadParameter(f"{target.parent} is not a folder", param_hint="'-o'")
    try:  # before any call: a look-up's quota is spent once, its workbook must be writable
        prove_writable(target.parent)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise click.BadParameter(
            f"{target.parent} cannot be written ({reason})", param_hint="'-o'"
        ) from None
    return target


def lookup_rows(
    app: AppContext,
    file: str | None,
    groups: Sequence[str],
    all_groups: bool,
    sheet: str | None,
    column: str | None,
) -> InputTable | list[tuple[str, str]]:
    """The SIMs to look up: FILE's rows, or the members of --group GROUP... / --all-groups."""
    if sum((file is not None, bool(groups), all_groups)) != 1:
        raise click.UsageError("give one of FILE, --group GROUP (repeatable) or --all-groups")
    if file is not None:
        return read_iccids(file, sheet=sheet, column=column, stdin=_stdin(file))
    client = app.session().client
    with progress_bar(app, desc="members", unit="sim") as bar:

        def advance(page: MemberPage) -> None:
            bar.update(len(page.iccids))

        pairs = fleet.member_rows(client, None if all_groups else groups, on_page=advance)
    app.info(f"{len(pairs)} SIMs in {', '.join(groups) if groups else 'every group'}")
    return pairs


def _stdin(file: str) -> Any:
    return sys.stdin.buffer if file == "-" else None


def start(
    app: AppContext,
    rows: InputTable | list[tuple[str, str]],
    kind: lookups.LookupKind,
    *,
    options: dict[str, Any],
    max_age: float = lookups.DEFAULT_MAX_AGE,
    report_dir: Path | None = None,
    skip_invalid: bool = False,
    timeout: float | None = None,
) -> runs.RunResult:
    return lookups.start_lookup(
        lambda: open_journal(app), client_of(app), app.settings, rows, kind, options=options,
        max_age=max_age, report_dir=report_dir, skip_invalid=skip_invalid, timeout=timeout,
        progress=bars(app, len(lookups.CALLS[kind])), say=app.info,
    )  # fmt: skip


def render(app: AppContext, result: runs.RunResult, shown: Path, line: str = "") -> None:
    """`shown` (the output file, or the report folder) on stdout, what next on stderr; exit."""
    click.echo(str(shown))
    app.info(runs.summary_line(result.run_id, result.counts) + (f"; {line}" if line else ""))
    why = f" ({result.stopped})" if result.stopped else ""
    if result.exit_code == ExitCode.NOT_FINISHED:
        app.info(
            f"run {result.run_id} is not finished{why}; `lf-bulk runs resume {result.run_id}` "
            "continues it without asking again what was answered"
        )
    elif result.exit_code == ExitCode.SOME_FAILED:
        app.info(
            f"run {result.run_id}: some SIMs were rejected, not found or could not be looked up; "
            f"see {result.report_dir / 'items.csv'}"
        )
    raise JobExit(result.exit_code)


expiring_within_option = click.option(
    "--expiring-within", type=click.IntRange(0, 3650), default=fleet.DEFAULT_EXPIRING_WITHIN,
    show_default=True, metavar="DAYS", help="Flag a plan in use that ends within DAYS days.",
)  # fmt: skip
