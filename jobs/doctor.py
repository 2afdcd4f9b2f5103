"""`lf-bulk doctor`: is this machine set up to talk to the API?"""

from __future__ import annotations

from dataclasses import dataclass

import click

from jobs.context import AppContext, describe_config_files, describe_store, pass_app
from jobs.errors import JobExit
from lf_bulk import errors
from lf_bulk.doctor import Check, describe_contract, run_checks
from lf_bulk.exitcodes import ExitCode


@dataclass
class _Line:
    check: Check

    def __str__(self) -> str:
        mark = "ok  " if self.check.passed else "FAIL"
        return f"{mark} {self.check.name:<12} {self.check.detail}"


@click.command()
@pass_app
def doctor(app: AppContext) -> None:
    """Check config, clock, reachability, signature and envelope; exit 0 only if all pass.

    Also shows the three services' URLs (topup, vshop, payment) and today's request quota.
    """
    settings = app.settings
    click.echo(f"env          {settings.env} (from {settings.origin('env')})")
    click.echo(f"config       {describe_config_files(settings)}")
    click.echo(f"partner code {settings.masked_partner_code or '(the sandbox default)'}")
    click.echo(f"store        {describe_store(settings)}")
    try:
        session = app.session()
    except errors.LfBulkError as error:
        click.echo(f"FAIL start        {error}")
        raise JobExit(ExitCode.FATAL) from None
    for service, url in session.service_urls.items():
        click.echo(f"{service + ' URL':<12} {url}")
    click.echo(f"quota today  {session.quota.describe()}")
    click.echo(f"contract     {describe_contract(session.client.profile)}")
    checks = run_checks(session.client)
    for check in checks:
        click.echo(str(_Line(check)))
    if not all(c.passed for c in checks):
        raise JobExit(ExitCode.FATAL)
