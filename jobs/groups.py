"""`lf-bulk groups`: the account's groups and their members (read-only)."""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from jobs.context import AppContext, pass_app
from jobs.options import GROUP_ID, format_option, output_option
from jobs.progress import progress_bar
from jobs.render import emit, render
from lf_bulk.api_values import MemberPage

GROUP_COLUMNS = ("group_id", "group_name", "sim_count", "bundles")


@click.group()
def groups() -> None:
    """Bundle groups of the account."""


@groups.command(name="list")
@format_option
@output_option
@pass_app
def list_groups(app: AppContext, output_format: str, output: Path | None) -> None:
    """List every group with its SIM count and plans.

    With -o FILE.csv or FILE.json and no --format, the format follows the file name.
    """
    output_format = _format_for(output_format, output)
    rows = [
        {
            "group_id": g.group_id,
            "group_name": g.group_name,
            "sim_count": g.sim_count,
            "bundles": "; ".join(f"{b.bundle_id} {b.bundle_name}" for b in g.bundles),
        }
        for g in app.session().client.list_groups()
    ]
    emit(render(rows, GROUP_COLUMNS, output_format), output)


@groups.command()
@click.argument("group", type=GROUP_ID)
@output_option
@click.option("--page-size", type=click.IntRange(1, 1000), default=1000, show_default=True)
@pass_app
def members(app: AppContext, group: str, output: Path | None, page_size: int) -> None:
    """List every member ICCID of GROUP: all pages, each once, under an `iccid` header."""
    client = app.session().client
    with progress_bar(app, desc=f"{group} members", unit="sim") as bar:

        def advance(page: MemberPage) -> None:
            bar.total = page.total
            bar.update(len(page.iccids))

        iccids = client.list_members(group, page_size=page_size, on_page=advance)
    emit("iccid\n" + "".join(f"{i}\n" for i in iccids), output)
    app.info(f"{len(iccids)} members in {group}")


def _format_for(output_format: str, output: Path | None) -> str:
    """The --format given, else the one an output file's suffix names (a table otherwise)."""
    source = click.get_current_context().get_parameter_source("output_format")
    suffix = output.suffix.lower().lstrip(".") if output is not None else ""
    if source is ParameterSource.DEFAULT and suffix in ("csv", "json"):
        return suffix
    return output_format
