"""`lf-bulk notify`: receive Linksfield's Recharge Success pushes, list and export them."""

from __future__ import annotations

import os
import stat
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from jobs.config import CONFIG_META_KEY
from jobs.context import AppContext, pass_app
from jobs.errors import serving
from jobs.options import (
    certfile_option,
    host_option,
    keyfile_option,
    port_option,
    since_option,
    until_option,
)
from jobs.render import render
from lf_bulk import order_export
from lf_bulk.errors import ConfigError, InvalidSetting
from lf_bulk.notify import export as lib
from lf_bulk.redaction import register_secret
from lf_bulk.settings import LoadedConfig, is_loopback

if TYPE_CHECKING:
    from lf_bulk.notify.receiver import ReceiverKeys

KEY_VARIABLE = "LF_BULK_NOTIFY_KEY"
KEY_SETTING = "notify_key"
PROXY_DOC = "docs/notify.md"

notify = click.Group(
    "notify", help="Recharge Success pushes from Linksfield: receive, list, export."
)


def _key_hex(app: AppContext) -> tuple[str, str]:
    """The key's value and where it came from (the environment wins over a config file)."""
    from_env = os.environ.get(KEY_VARIABLE, "")
    register_secret(from_env.strip() or None)
    if from_env.strip():
        return from_env, KEY_VARIABLE
    root = click.get_current_context().find_root()
    config: LoadedConfig = root.meta.get(CONFIG_META_KEY) or LoadedConfig()
    value = config.values.get(KEY_SETTING)
    if isinstance(value, str) and value.strip():
        register_secret(value.strip())
        origin = config.origin_of(KEY_SETTING)
        if origin is not None and os.stat(origin).st_mode & (stat.S_IRGRP | stat.S_IROTH):
            app.info(
                f"warning: {origin} holds the notification key and others may read it: chmod 600 it"
            )
        return value, f"config file {origin} ({KEY_SETTING})"
    raise ConfigError(
        f"notify serve needs the notification key (key_hex from Linksfield's developer console): "
        f"set {KEY_VARIABLE}, or put {KEY_SETTING} in a config file only you can read; it is "
        "never taken from the command line"
    )


def _keys(app: AppContext, key_id: str | None) -> ReceiverKeys:
    if not key_id:
        raise click.UsageError("give --key-id ID: the key id Linksfield shows with the key")
    from lf_bulk.notify.receiver import parse_keys  # uvicorn loads only for `serve`

    value, origin = _key_hex(app)
    for part in value.split(","):
        for form in (part.strip(), part.strip().lower(), part.strip().upper()):
            register_secret(form or None)
    try:
        return parse_keys(key_id, value)
    except ValueError as error:
        raise InvalidSetting(f"{error} (from {origin})") from None


@notify.command("serve")
@host_option
@port_option(8443)
@click.option("--key-id", metavar="ID", help="The notification key's id (Linksfield's console).")
@certfile_option
@keyfile_option
@pass_app
def serve_command(
    app: AppContext, host: str, port: int, key_id: str | None, certfile: Path | None,
    keyfile: Path | None,
) -> None:  # fmt: skip
    """Receive Recharge Success pushes at POST / until interrupted (Ctrl-C).

    Each push is checked (key id, HMAC-SHA1 signature, version, algorithm, a timestamp within
    10 minutes: 401 otherwise; at most 1 MB: 413; a JSON object: 400) and stored in
    <home>/notify.db before it is answered 200. A re-sent event is answered 200 and stored once.
    The key comes from LF_BULK_NOTIFY_KEY or the config file key notify_key, never a flag.

    Serve https with --certfile/--keyfile, or keep the default 127.0.0.1 behind a TLS proxy
    (docs/notify.md has a Caddy and an nginx snippet, and a systemd unit).
    """
    if (certfile is None) != (keyfile is None):
        raise click.UsageError("give both --certfile and --keyfile, or neither")
    if not is_loopback(host) and certfile is None:
        raise click.UsageError(
            f"--host {host} would receive pushes over plain http from other machines: give "
            f"--certfile and --keyfile, or keep --host 127.0.0.1 behind a TLS proxy ({PROXY_DOC})"
        )
    keys = _keys(app, key_id)
    from lf_bulk.notify.receiver import serve

    def announce(url: str, store: Path) -> None:
        click.echo(f"receiving pushes at {url} (key id {keys.key_id}, store {store})", err=True)

    with serving("the receiver", "receiver stopped", certfile, keyfile):
        serve(
            app.settings.home, keys, host=host, port=port, certfile=certfile, keyfile=keyfile,
            on_ready=announce,
        )  # fmt: skip


@notify.command("list")
@since_option
@until_option
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table for people; json: an array, one object per order (amounts as exact text).",
)
@pass_app
def list_command(
    app: AppContext, since: datetime | None, until: datetime | None, output_format: str
) -> None:
    """The orders pushed to `notify serve`, one per order however often it was pushed.

    Totals per currency (exact) go to stderr.
    """
    listing = lib.load(app.settings.home, since=since, until=until)
    rows = [lib.json_row(push) for push in listing.pushes]
    if output_format == "table":
        rows = [{k: "" if v is None else v for k, v in row.items()} for row in rows]
    click.echo(render(rows, lib.COLUMNS, output_format), nl=False)
    _tell(app, listing)


@notify.command("export")
@since_option
@until_option
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="An .xlsx workbook (Pushes and Summary sheets), or .csv for the rows alone.",
)
@pass_app
def export_command(
    app: AppContext, since: datetime | None, until: datetime | None, output: Path
) -> None:
    """Export the pushed orders: one row per order, exact amounts, ICCIDs as text.

    The workbook's Summary sheet has the exact total per currency; with .csv the totals go to
    stderr. The file's path is printed on stdout.
    """
    try:
        target = order_export.prepare_output(output)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'-o' / '--output'") from None
    listing = lib.load(app.settings.home, since=since, until=until)
    if target.suffix.lower() == ".csv":
        lib.write_csv(listing, target)
    else:
        lib.write_xlsx(listing, target)
    _tell(app, listing)
    click.echo(str(target))


def _tell(app: AppContext, listing: lib.PushListing) -> None:
    app.info(
        f"{len(listing.pushes)} orders ({listing.deliveries} deliveries) from {listing.source}"
    )
    for line in [*listing.warnings(), *lib.total_lines(listing)]:
        app.info(line)
