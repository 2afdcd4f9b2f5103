"""The `lf-bulk` command: global options and settings, then one module per command group."""

from __future__ import annotations

from typing import Any

import click

from jobs.config import settings_from
from jobs.context import AppContext, configure_logging, describe_config_files
from jobs.doctor import doctor
from jobs.errors import ErrorMappingGroup, to_click_exception
from jobs.groups import groups
from jobs.notify import notify
from jobs.ops import ops
from jobs.options import global_options
from jobs.orders import orders
from jobs.reconcile import reconcile
from jobs.runs import runs
from jobs.sandbox import sandbox
from jobs.sims import sims
from jobs.topups import payments
from lf_bulk import __version__
from lf_bulk.errors import ConfigError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=ErrorMappingGroup, context_settings=CONTEXT_SETTINGS)
@global_options
@click.version_option(__version__, prog_name="lf-bulk")
@click.pass_context
def cli(ctx: click.Context, /, verbose: int, quiet: bool, no_progress: bool, **given: Any) -> None:
    """Manage Linksfield SIM bundle groups in bulk: add, remove, reconcile, export orders.

    Settings come from flags, then LF_BULK_* environment variables, then the folder config
    (./lf-bulk.toml), then the user config (~/.config/lf-bulk/config.toml); --config replaces both.
    Exit codes: 0 done, 1 fatal, 2 bad input (nothing sent), 3 some ICCIDs failed,
    4 drift found and not applied, 5 not finished (resume with `runs wait`/`runs resume`).
    """
    verbosity = -1 if quiet else verbose
    configure_logging(verbosity)
    settings = settings_from(ctx, given)
    app = AppContext(settings=settings, verbosity=verbosity, show_progress=not no_progress)
    ctx.obj = app
    if ctx.invoked_subcommand in ("sandbox", "notify", None):
        return
    try:
        settings.validate()
    except ConfigError as error:
        raise to_click_exception(error) from None
    if not settings.in_process_sandbox:
        if settings.config_files:
            app.info(f"config: {describe_config_files(settings)}")
        for warning in settings.warnings():
            click.echo(warning, err=True)


for command in (groups, sims, runs, reconcile, orders, payments, ops, doctor, sandbox, notify):
    cli.add_command(command)


def main(args: list[str] | None = None) -> Any:
    return cli.main(args=args, prog_name="lf-bulk")
