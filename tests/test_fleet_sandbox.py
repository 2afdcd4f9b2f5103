"""The look-up commands end to end: the CLI against the real sandbox over 127.0.0.1.

The sandbox's own state is the oracle: each row of the fleet workbook must say what the sandbox
holds for that card (status, plans, renewal), and its call log says what was asked, and cancelled.
"""

from __future__ import annotations

import csv
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from click.testing import CliRunner, Result

from jobs.cli import cli
from lf_bulk.iccid import with_check_digit
from lf_bulk.sandbox.cards import AREA_EUROPE, plans_for
from lf_bulk.sandbox.seed import DEFAULT_SIMS, DEMO_GROUP, FOREIGN_GROUP
from lf_bulk.sandbox.server import SandboxServer
from lf_bulk.settings import SANDBOX_PARTNER_CODE

FAST = "rate=400,concurrency=8"
CLIENT = ["--rate", "200", "--max-in-flight", "4", "--no-progress"]


def unknown_iccid() -> str:
    """A well-formed ICCID the sandbox has never seen (its check digit right)."""
    return with_check_digit("898830399999999999")


@pytest.fixture
def server(make_sandbox: Any) -> SandboxServer:
    started: SandboxServer = make_sandbox(FAST)
    return started


def run(server: SandboxServer, home: Path, *args: str, expect: int) -> Result:
    base = ["--home", str(home), "--env", "uat", "--partner-code", SANDBOX_PARTNER_CODE]
    base += ["--base-url", server.base_url, *CLIENT]
    result = CliRunner().invoke(cli, [*base, *args])
    assert "Traceback" not in result.stderr, result.stderr
    assert result.exit_code == expect, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return result


def expected_flags(server: SandboxServer, iccid: str, today: date, within: int) -> list[str]:
    """The flags, from the sandbox's truth (its wire dicts), by the design notes' words."""
    card = server.state.card(iccid)
    if card is None or card["partner_code"] != SANDBOX_PARTNER_CODE:
        return ["not_found"]
    held = server.state.held_plans(iccid)
    in_use = [h for h in held if h["orderStatus"] == "2"]
    pending = [h for h in held if h["orderStatus"] == "1"]
    flags = []
    if not in_use:
        flags.append("pending_only" if pending else "no_plan")
    else:
        ends = max(date.fromisoformat(h["expireDate"]) for h in in_use)
        if ends <= today + timedelta(days=within):
            flags.append("expiring")
    if card["card_status"] != "ACTIVE":
        flags.append("card_inactive")
    return flags


def fleet_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize(
    "world",
    [
        pytest.param(None, id="67-sims"),
        # The acceptance: the 5,000-SIM demo group (15,000 calls; past the default quota).
        pytest.param(DEFAULT_SIMS, id="5000-sims", marks=pytest.mark.slow),
    ],
)
def test_status_of_a_group_matches_the_sandbox_and_a_second_run_reuses_the_answers(
    make_sandbox: Any, tmp_path: Path, world: int | None
) -> None:
    server = make_sandbox(FAST) if world is None else make_sandbox(FAST, sims=world)
    out = tmp_path / "fleet.csv"
    result = run(
        server, tmp_path / "home", "--daily-quota", "20000", "sims", "status", "--group",
        DEMO_GROUP, "-o", str(out), "--report-dir", str(tmp_path / "r1"), expect=4,
    )  # fmt: skip
    assert result.stdout.strip() == str(out)
    rows = fleet_csv(out)
    members = server.state.members(DEMO_GROUP)
    assert [r["iccid"] for r in rows] == members
    today = server.state.today()
    kinds = set()
    for row in rows:
        flags = row["flags"].split()
        assert flags == expected_flags(server, row["iccid"], today, 7), row
        kinds.update(flags)
        assert row["card_status"] == server.state.card(row["iccid"])["card_status"]
        in_use = [h for h in server.state.held_plans(row["iccid"]) if h["orderStatus"] == "2"]
        if in_use:
            assert row["expire_date"] == max(h["expireDate"] for h in in_use)
        renewal = server.state.renewal(row["iccid"])
        assert row["auto_renewal"] == (renewal["servicePlanShowName"] if renewal else "")
    assert kinds == {"no_plan", "pending_only", "expiring", "card_inactive"}
    asked = sum(server.state.vshop_call_counts(acted_only=False).values())
    assert asked >= len(members)

    again = tmp_path / "fleet-again.xlsx"
    run(
        server, tmp_path / "home", "--daily-quota", "20000", "sims", "status", "--group",
        DEMO_GROUP, "-o", str(again), "--report-dir", str(tmp_path / "r2"), expect=4,
    )  # fmt: skip
    assert sum(server.state.vshop_call_counts(acted_only=False).values()) == asked
    book = openpyxl.load_workbook(again)
    assert book.sheetnames == ["Summary", "Fleet", "Not found"]
    assert book["Fleet"].max_row == len(members) + 1


def test_status_of_a_file_puts_unknown_and_foreign_cards_on_not_found(
    server: SandboxServer, tmp_path: Path
) -> None:
    ours = server.state.members(DEMO_GROUP)[:3]
    foreign = server.state.members(FOREIGN_GROUP)[0]
    source = tmp_path / "sims.csv"
    source.write_text("iccid\n" + "\n".join([*ours, foreign, unknown_iccid()]) + "\n")
    out = tmp_path / "fleet.xlsx"
    run(server, tmp_path / "home", "sims", "status", str(source), "-o", str(out), expect=4)
    book = openpyxl.load_workbook(out)
    missing = list(book["Not found"].iter_rows(min_row=3, values_only=True))
    assert [(m[1], m[4]) for m in missing] == [
        (foreign, "CARD_NOT_OWNED"),
        (unknown_iccid(), "CARD_NOT_FOUND"),
    ]


def test_plans_of_a_file_match_the_sandboxs_catalogue_with_exact_prices(
    server: SandboxServer, tmp_path: Path
) -> None:
    sims = server.state.members(DEMO_GROUP)[:20]
    source = tmp_path / "sims.csv"
    source.write_text("iccid\n" + "\n".join(sims) + "\n")
    out = tmp_path / "plans.csv"
    run(
        server, tmp_path / "home", "sims", "plans", str(source), "--area", AREA_EUROPE, "-o",
        str(out), expect=0,
    )  # fmt: skip
    expected: Counter[tuple[str, str]] = Counter()
    for iccid in sims:
        card = server.state.card(iccid)
        if card is not None and card["card_status"] == "ACTIVE":
            expected.update((p.package_code, p.price) for p in plans_for(card["area"], AREA_EUROPE))
    rows = fleet_csv(out)
    assert {(r["package_code"], r["price"]): int(r["sims"]) for r in rows} == dict(expected)
    assert rows and {r["area"] for r in rows} == {AREA_EUROPE}


def test_renewals_list_then_cancel_plan_then_cancel(server: SandboxServer, tmp_path: Path) -> None:
    home = tmp_path / "home"
    listed = tmp_path / "renewals.csv"
    run(server, home, "renewals", "list", "--group", DEMO_GROUP, "-o", str(listed), expect=0)
    renewing = [r["iccid"] for r in fleet_csv(listed)]
    truth = [i for i in server.state.members(DEMO_GROUP) if server.state.renewal(i)]
    assert renewing == truth and renewing

    plan = run(
        server, home, "renewals", "cancel", str(listed), "--report-dir", str(tmp_path / "p"),
        expect=0,
    )  # fmt: skip
    assert plan.stdout.strip() == str(tmp_path / "p")
    assert server.state.cancelled_renewals() == {}
    items = fleet_csv(tmp_path / "p" / "items.csv")
    assert {i["reason_code"] for i in items} == {"WOULD_CANCEL"}

    run(
        server, home, "renewals", "cancel", str(listed), "--yes", "--report-dir",
        str(tmp_path / "c"), expect=0,
    )  # fmt: skip
    assert sorted(server.state.cancelled_renewals()) == sorted(renewing)
    items = fleet_csv(tmp_path / "c" / "items.csv")
    assert {i["outcome"] for i in items} == {"cancelled"}


def test_a_status_run_stopped_by_the_servers_daily_quota_resumes_to_the_same_workbook(
    make_sandbox: Any, tmp_path: Path
) -> None:
    server = make_sandbox(f"{FAST},daily_quota=150")
    home, out = tmp_path / "home", tmp_path / "fleet.csv"
    stopped = run(server, home, "sims", "status", "--group", DEMO_GROUP, "-o", str(out), expect=5)
    assert stopped.stdout.strip() == str(out)
    assert "runs resume" in stopped.stderr
    first = fleet_csv(out)
    assert {r["outcome"] for r in first} >= {"pending"}  # written at the stop, pending shown
    run_id = next(w for w in stopped.stderr.split() if w[:8].isdigit() and "-" in w)

    server.state.new_day()
    resumed = run(server, home, "runs", "resume", run_id, expect=4)
    assert "Traceback" not in resumed.stderr
    rows = fleet_csv(out)
    assert [r["iccid"] for r in rows] == server.state.members(DEMO_GROUP)
    assert "pending" not in {r["outcome"] for r in rows}
    today = server.state.today()
    assert all(r["flags"].split() == expected_flags(server, r["iccid"], today, 7) for r in rows)
    looked_up = server.state.vshop_call_counts()
    assert looked_up and max(looked_up.values()) == 1  # nobody looked up twice


def test_quiet_prints_only_the_output_path(server: SandboxServer, tmp_path: Path) -> None:
    out = tmp_path / "renewals.xlsx"
    base = ["--home", str(tmp_path / "home"), "--env", "uat", "--partner-code"]
    base += [SANDBOX_PARTNER_CODE, "--base-url", server.base_url, *CLIENT, "-q"]
    result = CliRunner().invoke(
        cli, [*base, "renewals", "list", "--group", DEMO_GROUP, "-o", str(out)]
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{out}\n"
    assert result.stderr == ""


def test_verify_rejects_unknown_foreign_and_inactive_cards(
    server: SandboxServer, tmp_path: Path
) -> None:
    good = server.state.iccids_with(card_status="ACTIVE", group_id=DEMO_GROUP, limit=1)
    inactive = server.state.iccids_with(card_status="INACTIVE", limit=1)
    foreign = server.state.members(FOREIGN_GROUP)[0]
    source = tmp_path / "sims.csv"
    source.write_text("iccid\n" + "\n".join([*good, *inactive, foreign, unknown_iccid()]) + "\n")
    result = run(
        server, tmp_path / "home", "sims", "verify", str(source), "--report-dir",
        str(tmp_path / "v"), expect=3,
    )  # fmt: skip
    assert result.stdout.strip() == str(tmp_path / "v")
    items = fleet_csv(tmp_path / "v" / "items.csv")
    assert [(i["outcome"], i["reason_code"]) for i in items] == [
        ("verified", ""),
        ("rejected", "CARD_INACTIVE"),
        ("rejected", "CARD_NOT_OWNED"),
        ("rejected", "CARD_NOT_FOUND"),
    ]
    assert items[1]["card_status"] == "INACTIVE"


@pytest.mark.parametrize(
    "sims", [pytest.param(12, id="12-sims"), pytest.param(67, id="67-sims", marks=pytest.mark.slow)]
)
def test_renewals_cancel_under_lost_answers_and_busy_cancels_each_listed_renewal_once(
    make_sandbox: Any, tmp_path: Path, sims: int
) -> None:
    server = make_sandbox(f"{FAST},drop=0.25,busy=0.1,seed=7")
    members = server.state.members(DEMO_GROUP)[:sims]
    assert len(members) == sims
    renewing = {i for i in members if server.state.renewal(i)}
    assert renewing and len(renewing) < sims
    source = tmp_path / "sims.csv"
    source.write_text("iccid\n" + "\n".join(members) + "\n")
    run(
        server, tmp_path / "home", "renewals", "cancel", str(source), "--yes", "--report-dir",
        str(tmp_path / "c"), expect=0,
    )  # fmt: skip
    assert set(server.state.cancelled_renewals()) == renewing
    sent = server.state.vshop_call_counts()
    assert all(sent[("cancelAutoRenewalRecord", i)] == 1 for i in renewing)
    items = fleet_csv(tmp_path / "c" / "items.csv")
    assert {i["iccid"]: i["outcome"] for i in items} == {
        i: "cancelled" if i in renewing else "no_renewal" for i in members
    }


def test_an_unknown_group_exits_2_and_looks_nothing_up(
    server: SandboxServer, tmp_path: Path
) -> None:
    out = tmp_path / "f.xlsx"
    result = run(
        server, tmp_path / "home", "sims", "status", "--group", DEMO_GROUP, "--group", "G999",
        "-o", str(out), expect=2,
    )  # fmt: skip
    assert "group G999 does not exist" in result.stderr
    assert not out.exists()
    assert not server.state.vshop_calls()


def test_a_timeout_stops_cleanly_and_the_workbook_shows_what_is_pending(
    server: SandboxServer, tmp_path: Path
) -> None:
    out = tmp_path / "fleet.csv"
    result = run(
        server, tmp_path / "home", "sims", "status", "--group", DEMO_GROUP, "--timeout", "0",
        "-o", str(out), expect=5,
    )  # fmt: skip
    assert result.stdout.strip() == str(out)
    assert "runs resume" in result.stderr
    rows = fleet_csv(out)
    assert len(rows) == len(server.state.members(DEMO_GROUP))
    assert "pending" in {r["outcome"] for r in rows}
    assert all(r["flags"] == "" for r in rows if r["outcome"] == "pending")


def test_a_run_stopped_by_failing_calls_says_how_to_continue(
    make_sandbox: Any, tmp_path: Path
) -> None:
    server = make_sandbox(f"{FAST},5xx=1")
    source = tmp_path / "sims.csv"
    source.write_text("iccid\n" + "\n".join(server.state.members(DEMO_GROUP)[:8]) + "\n")
    out = tmp_path / "fleet.csv"
    result = run(
        server, tmp_path / "home", "--retry-deadline", "0", "sims", "status", str(source), "-o",
        str(out), expect=1,
    )  # fmt: skip
    assert "Nothing is lost: continue it with `lf-bulk runs resume" in result.stderr
    # The workbook was written at the stop, every SIM still to be looked up.
    assert {r["outcome"] for r in fleet_csv(out)} == {"pending"}
