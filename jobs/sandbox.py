"""`lf-bulk sandbox`: run the Linksfield API simulator as a standalone HTTP server."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import click

from jobs.context import AppContext
from jobs.notify import KEY_VARIABLE
from lf_bulk.redaction import register_secret
from lf_bulk.sandbox.faults import FAULT_KEYS, FaultSpec
from lf_bulk.sandbox.pusher import PushTarget
from lf_bulk.settings import DEFAULT_HOME, is_loopback
from lf_bulk.sqlite import ensure_private_dir

NOTICE = "lf-bulk sandbox: a simulator of the Linksfield API; no real SIM card is touched."
FAULTS_HELP = (
    "Faults and limits as key=value pairs joined with commas, e.g. "
    "'latency=50ms,5xx=0.3,429=0.1,drop=0.05,async=5-30s,seed=42'. "
    f"Keys: {', '.join(FAULT_KEYS)}."
)


def _parse_faults(ctx: click.Context, param: click.Parameter, value: str | None) -> FaultSpec:
    try:
        return FaultSpec.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


STATE_HELP = (
    "SQLite state file; created and seeded on first use, kept afterwards "
    "[default: <home>/sandbox.db, the in-process sandbox's world]."
)


def _state_path(state_path: Path | None) -> Path:
    if state_path is not None:
        return state_path
    app = click.get_current_context().find_object(AppContext)
    home = app.settings.home if app else DEFAULT_HOME
    return ensure_private_dir(home) / "sandbox.db"


@click.group()
def sandbox() -> None:
    """The embedded simulator of the Linksfield API (contract v1, and the Vshop and Payment
    services of contract v2, on the same port)."""


@sandbox.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0 picks a free one).",
)
@click.option(
    "--state", "state_path", type=click.Path(dir_okay=False, path_type=Path), help=STATE_HELP
)
@click.option("--faults", callback=_parse_faults, metavar="SPEC", help=FAULTS_HELP)
@click.option(
    "--daily-quota",
    type=click.IntRange(min=0),
    metavar="N",
    help="Answer more than N requests per partner code per UTC day with HTTP 429 (code 1429, "
    "data.quota DAILY), every service and call counted [default: no quota; the same as "
    "daily_quota=N in --faults, which this overrides]. `lf-bulk sandbox new-day` resets it.",
)
@click.option(
    "--push-url",
    metavar="URL",
    help="Push a signed Recharge Success event here for every order SynOrderInfo creates (e.g. "
    "the URL `lf-bulk notify serve` prints); the key from LF_BULK_NOTIFY_KEY. A delivery without "
    "a 2xx is retried, 30 tries within 24 hours (push_time_scale in --faults shortens that), "
    "then dropped. Needs --push-key-id.",
)
@click.option("--push-key-id", metavar="ID", help="The notification key's id for --push-url.")
@click.option("--sims", type=click.IntRange(min=100), hidden=True, help="World size for new state.")
def serve_command(
    host: str,
    port: int,
    state_path: Path | None,
    faults: FaultSpec,
    daily_quota: int | None,
    push_url: str | None,
    push_key_id: str | None,
    sims: int | None,
) -> None:
    """Serve the simulated API until interrupted (Ctrl-C).

    Point lf-bulk at it with --env uat --base-url URL --partner-code P000270.
    """
    push = _push_target(push_url, push_key_id)
    state_path = _state_path(state_path)
    if daily_quota is not None:
        faults = dataclasses.replace(faults, daily_quota=daily_quota)
    click.echo(NOTICE, err=True)
    if not is_loopback(host):
        click.echo(
            f"warning: listening on {host}, so other machines can reach this simulator",
            err=True,
        )

    def announce(url: str) -> None:
        click.echo(
            f"listening on {url} (state: {state_path}, faults: {faults.describe()})", err=True
        )
        if push:
            click.echo(f"pushing Recharge Success events to {push.url} (key id {push.key_id})",
                       err=True)  # fmt: skip

    try:
        from lf_bulk.sandbox.server import serve  # uvicorn and starlette load only to serve

        serve(host, port, state_path, faults, sims=sims, push=push, on_ready=announce)
    except KeyboardInterrupt:
        # uvicorn has already shut down cleanly; it re-raises the Ctrl-C for the caller.
        click.echo("sandbox stopped", err=True)
    except OSError as exc:
        raise click.ClickException(f"cannot start the sandbox: {exc}") from None


def _push_target(url: str | None, key_id: str | None) -> PushTarget | None:
    if url is None and key_id is None:
        return None
    if not url or not key_id:
        raise click.UsageError("give both --push-url and --push-key-id, or neither")
    key_hex = os.environ.get(KEY_VARIABLE, "").strip()
    register_secret(key_hex or None)
    if not key_hex:
        raise click.UsageError(
            f"--push-url needs the notification key in {KEY_VARIABLE} (the same value "
            "`notify serve` uses); it is never taken from the command line"
        )
    try:
        return PushTarget(url, key_id, key_hex)
    except ValueError as error:
        raise click.UsageError(str(error)) from None


@sandbox.command("new-day")
@click.option(
    "--state", "state_path", type=click.Path(dir_okay=False, path_type=Path), help=STATE_HELP
)
def new_day_command(state_path: Path | None) -> None:
    """Start a new day of the sandbox's daily quota: every partner's count starts from 0.

    Works on a running `sandbox serve` too (they share the state file).
    """
    state_path = _state_path(state_path)
    if not state_path.exists():
        raise click.ClickException(f"no sandbox state at {state_path}: nothing to reset")
    from lf_bulk.sandbox.server import open_state

    with open_state(state_path, FaultSpec()) as state:
        state.new_day()
    click.echo(f"sandbox {state_path}: a new day; the daily quota starts from 0", err=True)
