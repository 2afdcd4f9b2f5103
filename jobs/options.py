"""Options shared by several commands, each defined once and applied as a decorator bundle."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


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
