"""`lf-bulk runs list/show/retry/cancel` on a look-up run (nothing here reaches a network)."""

from __future__ import annotations

import json
from pathlib import Path

from lf_bulk import lookups
from lf_bulk import runs as runs_lib
from lf_bulk.lookups import LookupKind
from lf_bulk.settings import Settings
from tests.clihelp import expect, invoke
from tests.lookups_fake import FakeVshop, make_iccid

URL = "https://vshop.test"


def stopped_lookup(home: Path) -> str:
    """A STATUS run stopped by the quota after one SIM of three."""
    settings = Settings(env="uat", base_url=URL, home=home)
    api = FakeVshop(max_in_flight=1)
    sims = [api.add_card(make_iccid(n)) for n in range(1, 4)]
    api.quota_left = 3
    with runs_lib.open_journal(home) as journal:
        result = lookups.start_lookup(
            journal, api, settings, [(s, "G7") for s in sims], LookupKind.STATUS,
            report_dir=home.parent / "r",
        )  # fmt: skip
    return result.run_id


def cli(home: Path, *args: str) -> list[str]:
    return ["--home", str(home), "--env", "uat", "--partner-code", "P1", "--base-url", URL, *args]


def test_runs_list_and_show_describe_a_look_up_run(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run_id = stopped_lookup(home)
    listed = json.loads(expect(invoke(cli(home, "runs", "list", "--format", "json")), 0).stdout)
    assert [(r["run_id"], r["operation"], r["group_id"], r["status"]) for r in listed] == [
        (run_id, "status", "G7", "not_finished")
    ]
    shown = json.loads(expect(invoke(cli(home, "runs", "show", run_id)), 0).stdout)
    assert shown["kind"] == "lookup" and shown["next"] == f"lf-bulk runs resume {run_id}"
    assert shown["calls"] == {"held_orders api": 1, "renewal api": 1, "verify api": 1}
    assert shown["outcomes"] == {"looked_up": 1, "pending": 2}


def test_runs_retry_refuses_a_look_up_run_and_cancel_closes_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run_id = stopped_lookup(home)
    refused = expect(invoke(cli(home, "runs", "retry", run_id)), 2)
    assert "look-up" in refused.stderr and f"runs resume {run_id}" in refused.stderr
    cancelled = expect(invoke(cli(home, "runs", "cancel", run_id)), 0)
    assert cancelled.stdout.strip() == str(tmp_path / "r")
    rows = (tmp_path / "r" / "items.csv").read_text().splitlines()
    assert sum(",failed,CANCELLED," in line for line in rows) == 2
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["outcomes"]["failed"] == 2 and summary["outcomes"]["looked_up"] == 1
