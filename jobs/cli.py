"""The `lf-bulk` command: global options and settings, then one module per command group."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from jobs.context import AppContext, configure_logging, describe_config_files
from jobs.doctor import doctor
from jobs.errors import ErrorMappingGroup, to_click_exception
from jobs.groups import groups
from jobs.ops import ops
from jobs.orders import orders
from jobs.reconcile import reconcile
from jobs.runs import runs
from jobs.sandbox import sandbox
from jobs.sims import sims
from lf_bulk import __version__
from lf_bulk.errors import ConfigError
from lf_bulk.redaction import register_secret
from lf_bulk.settings import (
    DEFAULT_HOME,
    ENVIRONMENTS,
    KnownSetting,
    LoadedConfig,
    Schema,
    Settings,
    load_config,
    url_password,
)

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
CONFIG_META_KEY = "lf_bulk.config"
# Settings whose origin an error message may need to name.
TRACED_SETTINGS = ("env", "base_url", "partner_code", "home")


def config_schema(ctx: click.Context, command: click.Command) -> Schema:
    """What a config file may set: every option of every command, a table per (sub)command."""
    schema: dict[str, Any] = {
        param.name: KnownSetting(param.default, _converter(ctx, param))
        for param in command.params
        if param.name and param.name != "config" and isinstance(param, click.Option)
    }
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            schema[name.replace("-", "_")] = config_schema(ctx, sub)
    return schema


def _converter(ctx: click.Context, param: click.Parameter) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        try:
            return param.type_cast_value(ctx, value)
        except click.BadParameter as exc:
            raise ValueError(exc.message) from None

    return convert


def _read_config(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    # Eager, so the files' values become defaults before the other options are read: flags and
    # environment variables still win over them.
    try:
        config = load_config(value, config_schema(ctx, ctx.command))
    except ConfigError as error:
        raise to_click_exception(error) from None
    ctx.meta[CONFIG_META_KEY] = config
    if config.values:
        ctx.default_map = {**config.values, **(ctx.default_map or {})}
    return value


def setting_origins(ctx: click.Context, config: LoadedConfig) -> dict[str, str]:
    """Where each traced setting came from, in words an error message can use."""
    options = {p.name: p for p in ctx.command.params if isinstance(p, click.Option)}
    origins = {}
    for name in TRACED_SETTINGS:
        source = ctx.get_parameter_source(name)
        option = options[name]
        if source is ParameterSource.COMMANDLINE:
            origins[name] = max(option.opts, key=len)
        elif source is ParameterSource.ENVIRONMENT:
            origins[name] = str(option.envvar)
        elif source is ParameterSource.DEFAULT_MAP:
            origins[name] = f"config file {config.origin_of(name)} ({name})"
    return origins


@click.group(cls=ErrorMappingGroup, context_settings=CONTEXT_SETTINGS)
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="LF_BULK_CONFIG",
    is_eager=True,
    expose_value=False,
    callback=_read_config,
    help="TOML config file [default: ./lf-bulk.toml, then ~/.config/lf-bulk/config.toml].",
)
@click.option(
    "--env",
    type=click.Choice(ENVIRONMENTS),
    default="sandbox",
    envvar="LF_BULK_ENV",
    show_default=True,
    help="Which API: the embedded simulator, Linksfield UAT, or production.",
)
@click.option("--base-url", envvar="LF_BULK_BASE_URL", help="Override the environment's URL.")
@click.option(
    "--allow-insecure-http",
    is_flag=True,
    help="Allow a plain-http base URL under --env prod, or to another machine (command line only).",
)
@click.option(
    "--partner-code",
    envvar="LF_BULK_PARTNER_CODE",
    help="Partner code issued by Linksfield (required for uat and prod).",
)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="LF_BULK_HOME",
    default=DEFAULT_HOME,
    show_default=True,
    help="Where the run journal and the sandbox state live.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Requests per second at most (polling included).",
)
@click.option(
    "--max-in-flight",
    type=click.IntRange(1, 32),
    default=3,
    show_default=True,
    help="Requests in flight at most.",
)
@click.option(
    "--retry-deadline",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Give up retrying one request after this many seconds.",
)
@click.option(
    "--sandbox-faults",
    envvar="LF_BULK_SANDBOX_FAULTS",
    hidden=True,
    help="Fault spec for the in-process sandbox (testing).",
)
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only data and report paths on stdout; errors.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.version_option(__version__, prog_name="lf-bulk")
@click.pass_context
def cli(
    ctx: click.Context,
    env: str,
    base_url: str | None,
    allow_insecure_http: bool,
    partner_code: str | None,
    home: Path,
    rate: float,
    max_in_flight: int,
    retry_deadline: float,
    sandbox_faults: str | None,
    verbose: int,
    quiet: bool,
    no_progress: bool,
) -> None:
    """Manage Linksfield SIM bundle groups in bulk: add, remove, reconcile, export orders.

    Settings come from flags, then LF_BULK_* environment variables, then the folder config
    (./lf-bulk.toml), then the user config (~/.config/lf-bulk/config.toml); --config replaces both.
    Exit codes: 0 done, 1 fatal, 2 bad input (nothing sent), 3 some ICCIDs failed,
    4 drift found and not applied, 5 not finished (resume with `runs wait`/`runs resume`).
    """
    verbosity = -1 if quiet else verbose
    configure_logging(verbosity)
    register_secret(partner_code)
    register_secret(url_password(base_url) if base_url else None)
    config: LoadedConfig = ctx.meta.get(CONFIG_META_KEY) or LoadedConfig()
    settings = Settings(
        env=env,
        base_url=base_url,
        partner_code=partner_code,
        home=home,
        rate_per_second=rate,
        max_in_flight=max_in_flight,
        retry_deadline=retry_deadline,
        sandbox_faults=sandbox_faults,
        allow_insecure_http=allow_insecure_http,
        config_files=config.files,
        origins=setting_origins(ctx, config),
    )
    app = AppContext(settings=settings, verbosity=verbosity, show_progress=not no_progress)
    ctx.obj = app
    if ctx.invoked_subcommand in ("sandbox", None):
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


for command in (groups, sims, runs, reconcile, orders, ops, doctor, sandbox):
    cli.add_command(command)


def main(args: list[str] | None = None) -> Any:
    return cli.main(args=args, prog_name="lf-bulk")
