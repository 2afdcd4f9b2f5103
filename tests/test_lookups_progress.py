"""The progress of a look-up run says when the day's quota will stop it before its end."""

from __future__ import annotations

from pathlib import Path

import click

from jobs.context import AppContext
from jobs.driving import quota_stop
from lf_bulk.settings import Settings


def test_the_bar_names_the_quota_stop_only_when_the_day_cannot_finish_the_job(
    tmp_path: Path,
) -> None:
    settings = Settings(
        env="uat",
        base_url="http://127.0.0.1:9",
        partner_code="P000270",
        home=tmp_path / "home",
        daily_quota=1000,
        quota_reserve=0,
    )
    app = AppContext(settings=settings)
    with click.Context(click.Command("status")):
        assert quota_stop(app, 1000) == ""
        for _ in range(200):
            app.session().quota.take()
        assert quota_stop(app, 3 * 400) == "800 calls left today; the rest after 00:00 UTC"
