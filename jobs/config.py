"""Config files for the command line: what a file may set, read before the other options."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from jobs.errors import to_click_exception

if TYPE_CHECKING:
    from lf_bulk.settings import LoadedConfig, Schema, Settings

# The settings machinery is imported by the functions below, when a command runs: the root
# group's options are defined with `read_config`, and `lf-bulk --help` loads none of it.

CONFIG_META_KEY = "lf_bulk.config"


# Secrets a config file (or the environment) may hold but no command-line flag may take: other
# users of the machine can read a process's arguments.
def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string in quotes")
    return value


def file_only_settings() -> Schema:
    from lf_bulk.settings import KnownSetting

    return {"notify_key": KnownSetting(None, _text)}


# Settings whose origin an error message may need to name.
TRACED_SETTINGS = (
    "env",
    "base_url",
    "vshop_url",
    "payment_url",
    "partner_code",
    "home",
    "daily_quota",
    "quota_reserve",
    "store",
)


def config_schema(ctx: click.Context, command: click.Command) -> Schema:
    """What a config file may set: every option of every command, a table per (sub)command."""
    from lf_bulk.settings import KnownSetting

    schema: dict[str, Any] = {
        param.name: KnownSetting(param.default, _converter(ctx, param))
        for param in command.params
        if param.name and param.name != "config" and isinstance(param, click.Option)
    }
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None:
                schema[name.replace("-", "_")] = config_schema(ctx, sub)
    return schema


def _converter(ctx: click.Context, param: click.Parameter) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        try:
            return param.type_cast_value(ctx, value)
        except click.BadParameter as exc:
            raise ValueError(exc.message) from None

    return convert


def read_config(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    # Eager, so the files' values become defaults before the other options are read: flags and
    # environment variables still win over them.
    from lf_bulk.errors import ConfigError
    from lf_bulk.settings import load_config

    try:
        # The schema imports every command group: built only when a config file is there.
        config = load_config(
            value, lambda: {**config_schema(ctx, ctx.command), **file_only_settings()}
        )
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


def settings_from(ctx: click.Context, given: dict[str, Any]) -> Settings:
    """The root command's options as settings; secrets are registered for redaction first."""
    from lf_bulk.errors import InvalidSetting
    from lf_bulk.redaction import register_secret
    from lf_bulk.settings import LoadedConfig, Settings, url_password
    from lf_bulk.store import password_of, refuse_password

    register_secret(given["partner_code"])
    register_secret(password_of(given["store"]) if given["store"] else None)
    for url_setting in ("base_url", "vshop_url", "payment_url"):
        url = given[url_setting]
        register_secret(url_password(url) if url else None)
    config: LoadedConfig = ctx.meta.get(CONFIG_META_KEY) or LoadedConfig()
    store_source = ctx.get_parameter_source("store")
    if store_source is not ParameterSource.ENVIRONMENT:
        where = "--store" if store_source is ParameterSource.COMMANDLINE else "the config file"
        try:
            refuse_password(given["store"], where)
        except InvalidSetting as error:
            raise to_click_exception(error) from None
    return Settings(
        env=given["env"],
        base_url=given["base_url"],
        partner_code=given["partner_code"],
        home=given["home"],
        rate_per_second=given["rate"],
        max_in_flight=given["max_in_flight"],
        retry_deadline=given["retry_deadline"],
        sandbox_faults=given["sandbox_faults"],
        allow_insecure_http=given["allow_insecure_http"],
        vshop_url=given["vshop_url"],
        payment_url=given["payment_url"],
        daily_quota=given["daily_quota"],
        quota_reserve=given["quota_reserve"],
        store_url=given["store"],
        config_files=config.files,
        origins=setting_origins(ctx, config),
    )
