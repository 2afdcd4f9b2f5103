"""The `lf-bulk` command: global options and settings, then one module per command group."""

from __future__ import annotations

import importlib
from typing import Any

import click

from jobs.errors import ErrorMappingGroup, to_click_exception
from jobs.options import global_options
from lf_bulk import __version__

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

# Every command group, by the name of its module in jobs/ (and of the group in it), with the line
# `lf-bulk --help` shows for it: a group's module is imported only when the group is used, so that
# a command loads what it needs and nothing else (tests/test_lazy_imports.py checks both).
COMMANDS: dict[str, str] = {
    "groups": "Bundle groups of the account.",
    "sims": "Add SIMs to a group or remove them; verify cards, their plans and status (Vshop).",
    "renewals": "Automatic renewals of the SIMs' plans (Vshop): list them, cancel them.",
    "runs": "Runs recorded in the journal: list, inspect, resume, wait for, retry, cancel.",
    "reconcile": "Compare the membership desired in FILE with the groups; report drift; --apply "
    "fixes it.",
    "orders": "Order details of the account, for finance; top-ups.",
    "payments": "Payment results (the Payment service).",
    "ops": "Asynchronous operations (add/remove requests) on the API side.",
    "doctor": "Check config, clock, reachability, signature and envelope; exit 0 only if all pass.",
    "sandbox": "The embedded simulator of the Linksfield API (contract v1, and the Vshop and "
    "Payment services of contract v2, on the same port).",
    "notify": "Recharge Success pushes from Linksfield: receive, list, export.",
    "console": "A web console for the same jobs: upload a spreadsheet, see the plan, confirm, "
    "watch, download.",
    "worker": "Run one worker: take enqueued jobs from the shared store and run them, until "
    "Ctrl-C.",
    "enqueue": "Defer a run-creating command to the workers, checked now as the command would "
    "check it.",
    "partners": "Per-partner settings in the shared store (never the partner code itself).",
    "jobs": "The jobs enqueued for the workers.",
}

# A group whose module in jobs/ has another name (`payments check` lives with `orders create`).
COMMAND_MODULES = {
    "payments": "topups",
    "worker": "workers",
    "enqueue": "workers",
    "partners": "workers",
    "jobs": "workers",
}


class LazyGroup(ErrorMappingGroup):
    """The root group: its commands are imported when invoked, listed from `COMMANDS`."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = COMMAND_MODULES.get(cmd_name, cmd_name)
        command = getattr(importlib.import_module(f"jobs.{module}"), cmd_name)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [
            (name, click.Command(name, help=COMMANDS[name]).get_short_help_str(limit))
            for name in names
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
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
    # Here rather than at the top: `lf-bulk --help` and `--version` need none of it.
    from jobs.config import settings_from
    from jobs.context import AppContext, configure_logging, describe_config_files
    from lf_bulk.errors import ConfigError

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


def main(args: list[str] | None = None) -> Any:
    return cli.main(args=args, prog_name="lf-bulk")
