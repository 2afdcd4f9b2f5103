"""`lf-bulk console`: the web console, serving the CLI's jobs to people who upload spreadsheets."""

from __future__ import annotations

from pathlib import Path

import click

from jobs.context import SANDBOX_NOTICE, AppContext, pass_app
from jobs.errors import serving
from jobs.options import certfile_option, host_option, keyfile_option, port_option
from lf_bulk.settings import is_loopback

DEFAULT_PORT = 8770


def check_binding(
    host: str, certfile: Path | None, keyfile: Path | None, allow_remote: bool, behind_proxy: bool
) -> None:
    """Refuse (usage error, exit 2) a console other machines could reach without consent and
    TLS: its pages hold the account's data and its buttons change SIMs."""
    if (certfile is None) != (keyfile is None):
        raise click.UsageError("give both --certfile and --keyfile, or neither")
    if is_loopback(host):
        return
    if not allow_remote:
        raise click.UsageError(
            f"--host {host} would let other machines reach the console: pass --allow-remote to "
            "mean it (and serve it over TLS), or keep the default --host 127.0.0.1"
        )
    if certfile is None and not behind_proxy:
        raise click.UsageError(
            f"--host {host} with --allow-remote needs TLS: give --certfile and --keyfile, or "
            "--behind-tls-proxy when a proxy in front of it terminates TLS"
        )


@click.command()
@host_option
@port_option(DEFAULT_PORT)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow a --host other machines can reach (needs TLS: --certfile/--keyfile or "
    "--behind-tls-proxy).",
)
@certfile_option
@keyfile_option
@click.option(
    "--behind-tls-proxy",
    is_flag=True,
    help="A proxy in front of the console terminates TLS (the cookie is sent over https only).",
)
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the console's jobs write their reports, a folder each [default: "
    "<home>/console/reports].",
)
@pass_app
def console(
    app: AppContext, host: str, port: int, allow_remote: bool, certfile: Path | None,
    keyfile: Path | None, behind_tls_proxy: bool, report_dir: Path | None,
) -> None:  # fmt: skip
    """A web console for the same jobs: upload a spreadsheet, see the plan, confirm, watch, download.

    Prints the URL to open, with a one-off access token (a cookie keeps you in after that), on
    stdout; serves until interrupted (Ctrl-C). It uses the same journal, locks and quota as the
    commands: `runs list` and `runs resume` see what it did. Only 127.0.0.1 by default; another
    address needs --allow-remote and TLS.
    """
    check_binding(host, certfile, keyfile, allow_remote, behind_tls_proxy)
    from lf_bulk.console.app import ConsoleConfig  # starlette and jinja2 load only here
    from lf_bulk.console.server import serve

    config = ConsoleConfig(
        settings=app.settings,
        host=host,
        port=port,
        tls=bool(certfile) or behind_tls_proxy,
        report_dir=report_dir.absolute() if report_dir else None,
    )

    def announce(url: str) -> None:
        if app.settings.in_process_sandbox:
            click.echo(SANDBOX_NOTICE, err=True)
        click.echo(url)
        app.info("open the URL above in your browser; Ctrl-C stops the console")

    with serving("the console", "console stopped", certfile, keyfile):
        serve(config, certfile=certfile, keyfile=keyfile, on_ready=announce)
