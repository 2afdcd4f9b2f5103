"""Options shared by several commands, each defined once and applied as a decorator bundle."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from lf_bulk import errors, wire

F = TypeVar("F", bound=Callable[..., Any])


class IdParamType(click.ParamType[str]):
    """A group or request id, checked by `wire.validate_id` before anything is sent."""

    def __init__(self, kind: wire.IdKind) -> None:
        self.kind = kind
        self.name = kind.value

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return wire.validate_id(str(value), self.kind)
        except errors.InputError as error:
            self.fail(str(error), param, ctx)


GROUP_ID = IdParamType(wire.IdKind.GROUP)
REQUEST_ID = IdParamType(wire.IdKind.REQUEST)


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
