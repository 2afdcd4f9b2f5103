"""`lf-bulk ops`: asynchronous operations on the API side."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from jobs.context import AppContext, pass_app
from jobs.options import REQUEST_ID


@click.group()
def ops() -> None:
    """Asynchronous operations (add/remove requests) on the API side."""


@ops.command()
@click.argument("request_id", type=REQUEST_ID)
@pass_app
def status(app: AppContext, request_id: str) -> None:
    """Look up REQUEST_ID once and print its status and per-SIM results as JSON."""
    result = app.session().client.async_result(request_id)
    click.echo(json.dumps(asdict(result), indent=2, default=str))
