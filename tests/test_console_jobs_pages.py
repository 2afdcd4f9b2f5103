"""The console's New job pages over HTTP (Starlette TestClient), against a real sandbox server."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from consolehelp import console_client, console_over, csrf_of, settings_over, state_of, wait_for_run
from markupsafe import escape
from starlette.testclient import TestClient

from lf_bulk import runs
from lf_bulk.iccid import with_check_digit
from lf_bulk.sandbox import cards
from lf_bulk.sandbox.seed import PILOT_GROUP
from lf_bulk.sandbox.server import SandboxServer

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")

GOOD = with_check_digit("894450010219830482")
BAD_CHECKSUM = GOOD[:-1] + str((int(GOOD[-1]) + 1) % 10)


@pytest.fixture
def console(sandbox: SandboxServer, tmp_path: Path) -> Iterator[TestClient]:
    with console_over(sandbox, tmp_path) as client:
        yield client


def csv_bytes(iccids: list[str], header: str = "iccid") -> bytes:
    return (header + "\n" + "".join(f"{i}\n" for i in iccids)).encode()


def start_job(client: TestClient, action: str, name: str, data: bytes, group_id: str = "") -> str:
    """Upload through the New job form; the URL it sends the browser to."""
    answer = client.post(
        "/jobs/new",
        data={"csrf_token": csrf_of(client), "action": action, "group_id": group_id},
        files={"file": (name, data, "text/csv")},
    )
    assert answer.status_code == 303, answer.text
    return answer.headers["location"]


def used_today(client: TestClient) -> int:
    return state_of(client).quota().used_today()


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def test_the_form_offers_every_action_and_the_groups(console: TestClient) -> None:
    page = console.get("/jobs/new")
    assert page.status_code == 200
    for action in ("add", "remove", "verify", "status", "renewals_cancel", "topups"):
        assert f'value="{action}"' in page.text
    assert PILOT_GROUP in page.text and 'id="upload"' in page.text
    assert 'name="csrf_token"' in page.text


def test_invalid_rows_are_named_on_the_validation_page_and_nothing_is_sent(
    console: TestClient, sandbox: SandboxServer
) -> None:
    fresh = sandbox.state.ungrouped_sims(1)
    data = csv_bytes([*fresh, BAD_CHECKSUM, "8.98524201809103E+19", fresh[0]])
    where = start_job(console, "add", "leavers.csv", data, PILOT_GROUP)
    assert where.endswith("/check")
    sent, mutations = used_today(console), len(sandbox.state.mutation_log())
    page = console.get(where)
    assert page.status_code == 200
    table = page.text[page.text.index('id="invalid-rows"') :]
    found = re.findall(
        r'<td class="num">(\d+)</td><td class="iccid">[^<]*</td><td><code>(\w+)', table
    )
    assert found == [("3", "bad_checksum"), ("4", "numeric_cell"), ("5", "duplicate")]
    assert 'id="numeric-hint"' in page.text and "Format the column as Text" in page.text
    # without skipping, the plan sends the browser back to the rows to fix
    plan = console.get(where.replace("/check", "/plan"))
    assert plan.status_code == 303 and plan.headers["location"].endswith("/check")
    refused = console.post(
        where.replace("/check", "/confirm"), data={"csrf_token": csrf_of(console)}
    )
    assert refused.status_code == 400 and "invalid" in refused.text
    assert used_today(console) == sent and len(sandbox.state.mutation_log()) == mutations
    assert sandbox.state.members(PILOT_GROUP).count(fresh[0]) == 0


def test_upload_plan_confirm_and_the_run_finishes_with_its_report(
    console: TestClient, sandbox: SandboxServer
) -> None:
    fresh = sandbox.state.ungrouped_sims(3)
    member = sandbox.state.members(PILOT_GROUP)[0]
    where = start_job(console, "add", "joiners.csv", csv_bytes([*fresh, member]), PILOT_GROUP)
    check = console.get(where)
    assert check.status_code == 200 and 'id="to-plan"' in check.text
    mutations = len(sandbox.state.mutation_log())
    plan = console.get(where.replace("/check", "/plan"))
    assert plan.status_code == 200, plan.text
    assert re.search(r'id="plan-to-change">3<', plan.text)
    assert re.search(r'id="plan-already">1<', plan.text)
    assert 'id="plan-calls"' in plan.text and 'id="plan-quota"' in plan.text
    assert plan.text.count("would_add") == 3 and 'id="consent"' not in plan.text
    assert len(sandbox.state.mutation_log()) == mutations  # the plan sends nothing
    confirmed = console.post(
        where.replace("/check", "/confirm"), data={"csrf_token": csrf_of(console)}
    )
    assert confirmed.status_code == 303, confirmed.text
    run_id = confirmed.headers["location"].removeprefix("/runs/")
    shown = wait_for_run(console, run_id)
    assert shown["status"] == "finished", shown
    items = rows_of(Path(str(shown["report_dir"])) / "items.csv")
    assert {r["iccid"]: r["outcome"] for r in items} == {
        **{i: "added" for i in fresh}, member: "already_member",
    }  # fmt: skip
    assert set(fresh) <= set(sandbox.state.members(PILOT_GROUP))
    assert shown["source"] == "joiners.csv"  # the user's file, not the stored upload


def test_a_mass_removal_is_refused_without_the_typed_number(
    console: TestClient, sandbox: SandboxServer
) -> None:
    members = sandbox.state.members(PILOT_GROUP)
    leaving = members[: len(members) // 2]
    where = start_job(console, "remove", "leavers.csv", csv_bytes(leaving), PILOT_GROUP)
    plan = console.get(where.replace("/check", "/plan"))
    assert plan.status_code == 200
    assert 'id="guard"' in plan.text and 'id="consent"' in plan.text
    assert f'<strong id="consent-number">{len(leaving)}</strong>' in plan.text
    consent_input = re.search(r'<input[^>]*id="consent"[^>]*>', plan.text)
    assert consent_input is not None and "value=" not in consent_input.group(0)  # never pre-filled
    confirm = where.replace("/check", "/confirm")
    for typed in ("", "yes", str(len(leaving) + 1)):
        refused = console.post(confirm, data={"csrf_token": csrf_of(console), "consent": typed})
        assert refused.status_code == 400, refused.text
        assert f"type {len(leaving)}" in refused.text
    assert sorted(sandbox.state.members(PILOT_GROUP)) == sorted(members)
    with runs.open_journal(state_of(console).settings.home) as journal:
        assert runs.listing(journal, state_of(console).settings.home) == []
    done = console.post(
        confirm, data={"csrf_token": csrf_of(console), "consent": str(len(leaving))}
    )
    assert done.status_code == 303, done.text
    shown = wait_for_run(console, done.headers["location"].removeprefix("/runs/"))
    assert shown["status"] == "finished"
    assert sorted(sandbox.state.members(PILOT_GROUP)) == sorted(members[len(leaving) :])


def test_a_script_file_name_and_a_formula_cell_are_shown_escaped_and_reported_neutralised(
    console: TestClient, sandbox: SandboxServer
) -> None:
    formula = '=HYPERLINK("http://evil.example","x")'
    fresh = sandbox.state.ungrouped_sims(1)
    data = f'iccid\n{fresh[0]}\n"{formula.replace(chr(34), chr(34) * 2)}"\n'.encode()
    where = start_job(console, "verify", "<script>alert(1)</script>.csv", data)
    page = console.get(where)
    assert "<script>alert(1)</script>" not in page.text
    assert str(escape("<script>alert(1)</script>.csv")) in page.text
    assert str(escape(formula)) in page.text
    assert "evil.example" not in page.text.replace(str(escape(formula)), "")
    stored = list(state_of(console).uploads_dir.rglob("*"))
    assert not [p for p in stored if "script" in p.name]
    confirmed = console.post(
        where.replace("/check", "/confirm"),
        data={"csrf_token": csrf_of(console), "skip_invalid": "1"},
    )
    assert confirmed.status_code == 303, confirmed.text
    shown = wait_for_run(console, confirmed.headers["location"].removeprefix("/runs/"))
    text = (Path(str(shown["report_dir"])) / "items.csv").read_text(encoding="utf-8")
    assert "'=HYPERLINK" in text and ",=HYPERLINK" not in text


def test_an_upload_of_another_kind_is_refused_by_name(console: TestClient) -> None:
    answer = console.post(
        "/jobs/new",
        data={"csrf_token": csrf_of(console), "action": "verify"},
        files={"file": ("list.xls", b"\xd0\xcf\x11\xe0", "application/vnd.ms-excel")},
    )
    assert answer.status_code == 400 and ".csv or .xlsx" in answer.text


def test_a_workbook_with_two_sheets_asks_which(console: TestClient) -> None:
    from openpyxl import Workbook

    book = Workbook()
    book.active.title = "Notes"  # type: ignore[union-attr]
    book.active.append(["<b>read me</b>"])  # type: ignore[union-attr]
    sims = book.create_sheet("<i>SIMs<i>")
    sims.append(["Name", "Card"])
    sims.append(["a", GOOD])
    out = io.BytesIO()
    book.save(out)
    where = start_job(console, "verify", "two.xlsx", out.getvalue())
    assert where.endswith("/columns")
    page = console.get(where)
    assert 'id="sheet"' in page.text and "&lt;i&gt;SIMs&lt;i&gt;" in page.text
    chosen = console.post(where, data={"csrf_token": csrf_of(console), "sheet": "<i>SIMs<i>"})
    assert chosen.status_code == 303 and "/columns?sheet=" in chosen.headers["location"]
    page = console.get(chosen.headers["location"])
    assert 'id="column"' in page.text and 'value="Card"' in page.text
    chosen = console.post(
        where, data={"csrf_token": csrf_of(console), "sheet": "<i>SIMs<i>", "column": "Card"}
    )
    assert chosen.headers["location"].endswith("/check")
    check = console.get(chosen.headers["location"])
    assert re.search(r'id="valid-count">1<', check.text)


def test_top_ups_show_exact_totals_and_need_the_typed_number_of_orders(
    console: TestClient, sandbox: SandboxServer
) -> None:
    sims = sandbox.state.iccids_with(card_status=cards.CARD_ACTIVE, limit=3)
    lines, expected = ["iccid,package_code,periods,amount,currency,pay_id"], Decimal(0)
    currencies = set()
    for n, sim in enumerate(sims):
        card = sandbox.state.card(sim)
        assert card is not None
        plan = cards.plans_for(card["area"])[0]
        amount = Decimal(plan.price) * (n + 1)
        expected += amount
        currencies.add(plan.currency)
        lines.append(f"{sim},{plan.package_code},{n + 1},{amount:f},{plan.currency},pi_console_{n}")
    assert len(currencies) == 1, "one currency keeps the expected total simple"
    where = start_job(console, "topups", "orders.csv", ("\n".join(lines) + "\n").encode())
    assert where.endswith("/check"), where
    plan = console.get(where.replace("/check", "/plan"))
    assert plan.status_code == 200, plan.text
    assert 'id="plan-totals"' in plan.text and f"{expected:,f}" in plan.text
    assert 'id="consent"' in plan.text and ">3</strong>" in plan.text
    confirm = where.replace("/check", "/confirm")
    orders_before = len(sandbox.state.orders())
    refused = console.post(confirm, data={"csrf_token": csrf_of(console), "consent": "yes"})
    assert refused.status_code == 400 and "type 3" in refused.text
    assert len(sandbox.state.orders()) == orders_before
    done = console.post(confirm, data={"csrf_token": csrf_of(console), "consent": "3"})
    assert done.status_code == 303, done.text
    shown = wait_for_run(console, done.headers["location"].removeprefix("/runs/"))
    assert shown["status"] == "finished" and shown["outcomes"] == {"created": 3}, shown
    assert len(sandbox.state.orders()) == orders_before + 3


def test_renewals_are_cancelled_only_with_the_typed_number(
    console: TestClient, sandbox: SandboxServer
) -> None:
    sims = sandbox.state.iccids_with(renewal=True, limit=2)
    assert len(sims) == 2
    where = start_job(console, "renewals_cancel", "renewals.csv", csv_bytes(sims))
    plan = console.get(where.replace("/check", "/plan"))
    assert plan.status_code == 200 and 'id="consent"' in plan.text
    assert re.search(r'id="plan-calls">about 6<', plan.text)
    confirm = where.replace("/check", "/confirm")
    refused = console.post(confirm, data={"csrf_token": csrf_of(console)})
    assert refused.status_code == 400
    assert all(sandbox.state.renewal(sim) is not None for sim in sims)
    done = console.post(confirm, data={"csrf_token": csrf_of(console), "consent": "2"})
    assert done.status_code == 303, done.text
    shown = wait_for_run(console, done.headers["location"].removeprefix("/runs/"))
    assert shown["outcomes"] == {"cancelled": 2}, shown
    assert all(sandbox.state.renewal(sim) is None for sim in sims)


def test_the_fleet_status_of_a_group_writes_its_workbook(console: TestClient) -> None:
    started = console.post(
        "/jobs/status-group", data={"csrf_token": csrf_of(console), "group_id": PILOT_GROUP}
    )
    assert started.status_code == 303, started.text
    shown = wait_for_run(console, started.headers["location"].removeprefix("/runs/"))
    assert shown["kind"] == "lookup" and shown["operation"] == "status", shown
    assert (Path(str(shown["report_dir"])) / "fleet.xlsx").is_file()
    unknown = console.post(
        "/jobs/status-group", data={"csrf_token": csrf_of(console), "group_id": "G404"}
    )
    assert unknown.status_code == 400 and "G404" in unknown.text


def test_a_second_confirmation_goes_to_the_first_run_and_sends_nothing_more(
    console: TestClient, sandbox: SandboxServer
) -> None:
    fresh = sandbox.state.ungrouped_sims(2)
    where = start_job(console, "add", "joiners.csv", csv_bytes(fresh), PILOT_GROUP)
    confirm = where.replace("/check", "/confirm")
    first = console.post(confirm, data={"csrf_token": csrf_of(console)})
    second = console.post(confirm, data={"csrf_token": csrf_of(console)})
    assert first.status_code == 303, first.text
    assert second.status_code == 303 and second.headers["location"] == first.headers["location"]
    wait_for_run(console, first.headers["location"].removeprefix("/runs/"))
    with runs.open_journal(state_of(console).settings.home) as journal:
        assert len(runs.listing(journal, state_of(console).settings.home)) == 1


def test_an_upload_over_the_consoles_limit_is_refused_with_413(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    settings = settings_over(sandbox, tmp_path / "home")
    with console_client(tmp_path, settings=settings, max_upload_bytes=1000) as client:
        answer = client.post(
            "/jobs/new",
            data={"csrf_token": csrf_of(client), "action": "verify"},
            files={"file": ("big.csv", b"iccid\n" + b"8" * 2000, "text/csv")},
        )
        assert answer.status_code == 413 and "larger than" in answer.text
        assert not any(state_of(client).uploads_dir.iterdir())
