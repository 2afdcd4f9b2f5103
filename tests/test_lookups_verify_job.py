"""`sims add|remove --verify`: a VERIFY look-up run first, then the add with the verified cards
only; a rejected card is never submitted and is reported `rejected` with the Vshop code."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import cast

from lf_bulk import lookups
from lf_bulk import runs as runs_lib
from lf_bulk.client import LinksfieldClient
from lf_bulk.exitcodes import ExitCode
from lf_bulk.models import Operation
from lf_bulk.pacing import RequestPacer
from lf_bulk.sandbox import seed
from lf_bulk.sandbox.server import SandboxServer
from lf_bulk.settings import Settings
from lf_bulk.sources import read_iccids
from tests.clihelp import expect, invoke
from tests.lookups_fake import FakeVshop, VshopBesideTopup, VshopServer, make_iccid


def items_of(folder: Path) -> dict[str, dict[str, str]]:
    with (folder / "items.csv").open(newline="") as f:
        return {row["iccid"]: row for row in csv.DictReader(f)}


def test_only_verified_cards_are_added_and_rejected_ones_are_reported(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    group = sandbox.state.groups(seed.PARTNER)[0]["group_id"]
    good, asleep, foreign = sandbox.state.ungrouped_sims(3)
    vshop = VshopServer()
    vshop.cards = {good: "ACTIVE", asleep: "SUSPENDED"}  # `foreign`: CARD_NOT_FOUND
    source = tmp_path / "sims.csv"
    source.write_text(f"iccid\n{good}\n{asleep}\n{foreign}\n")
    settings = Settings(env="uat", base_url=sandbox.base_url, home=tmp_path / "home")
    client = LinksfieldClient(
        sandbox.base_url, seed.PARTNER, transport=VshopBesideTopup(vshop),
        pacer=RequestPacer(200, 4),
    )  # fmt: skip
    with client, runs_lib.open_journal(settings.home) as journal:
        result = runs_lib.start_verified(
            journal, client, settings, read_iccids(source), Operation.ADD, group,
            report_dir=tmp_path / "r",
        )  # fmt: skip
        verify_run = journal.run(result.run_id).details["verified_by"]
        assert journal.run(verify_run).kind == "lookup"
        assert journal.run(verify_run).operation == lookups.LookupKind.VERIFY
    assert result.exit_code == ExitCode.SOME_FAILED
    assert sandbox.state.group_of(good) == group
    assert sandbox.state.group_of(asleep) is None and sandbox.state.group_of(foreign) is None
    submitted = {i for record in sandbox.state.mutation_log() for i in record.iccids}
    assert submitted == {good}  # a rejected card never reached the add
    rows = items_of(tmp_path / "r")
    assert rows[good]["outcome"] == "added"
    assert (rows[asleep]["outcome"], rows[asleep]["reason_code"]) == ("rejected", "CARD_INACTIVE")
    assert (rows[foreign]["outcome"], rows[foreign]["reason_code"]) == (
        "rejected",
        "CARD_NOT_FOUND",
    )
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["outcomes"]["rejected"] == 2 and summary["outcomes"]["added"] == 1
    assert items_of(tmp_path / "r" / "verify")[good]["outcome"] == "verified"


def test_verify_and_dry_run_together_are_a_usage_error(tmp_path: Path) -> None:
    source = tmp_path / "sims.csv"
    source.write_text("iccid\n89440000000000000000\n")
    result = invoke(["--home", str(tmp_path / "h"), "sims", "add", "G1", str(source), "--verify",
                     "--dry-run"])  # fmt: skip
    expect(result, 2)
    assert "--verify" in result.stderr


def test_a_verification_stopped_by_the_quota_sends_nothing_and_says_what_next(
    tmp_path: Path,
) -> None:
    api = FakeVshop()
    sims = [api.add_card(make_iccid(n)) for n in range(1, 4)]
    api.quota_left = 1
    source = tmp_path / "sims.csv"
    source.write_text("iccid\n" + "\n".join(sims) + "\n")
    settings = Settings(env="uat", base_url="https://vshop.test", home=tmp_path / "home")
    with runs_lib.open_journal(settings.home) as journal:
        result = runs_lib.start_verified(
            journal, cast(LinksfieldClient, api), settings, read_iccids(source), Operation.ADD,
            "G1",
        )  # fmt: skip
        assert [r.kind for r in journal.runs()] == ["lookup"]  # no add run was created
    assert result.exit_code == ExitCode.NOT_FINISHED
    assert f"runs resume {result.run_id}" in result.stopped and "nothing was sent" in result.stopped
    assert api.submitted == []
