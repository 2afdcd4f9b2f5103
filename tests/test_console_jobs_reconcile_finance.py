"""The console's Reconcile and Finance pages over HTTP (Starlette TestClient), on a real sandbox."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from consolehelp import console_over, csrf_of, state_of, wait_for_run
from markupsafe import escape
from notifyhelp import event
from openpyxl import load_workbook
from starlette.testclient import TestClient

from lf_bulk import wire
from lf_bulk.notify.store import Delivery, PushStore
from lf_bulk.sandbox.seed import PILOT_GROUP
from lf_bulk.sandbox.server import SandboxServer

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")


@pytest.fixture
def console(sandbox: SandboxServer, tmp_path: Path) -> Iterator[TestClient]:
    with console_over(sandbox, tmp_path) as client:
        yield client


def desired_csv(rows: list[tuple[str, str]]) -> bytes:
    return ("iccid,group_id\n" + "".join(f"{i},{g}\n" for i, g in rows)).encode()


def test_reconcile_shows_the_drift_then_applies_it_with_the_typed_consent(
    console: TestClient, sandbox: SandboxServer
) -> None:
    members = sandbox.state.members(PILOT_GROUP)
    keep = members[: len(members) // 2]
    fresh = sandbox.state.ungrouped_sims(2)
    removals = len(members) - len(keep)
    uploaded = console.post(
        "/reconcile",
        data={"csrf_token": csrf_of(console)},
        files={"file": ("desired.csv", desired_csv([(i, PILOT_GROUP) for i in [*keep, *fresh]]))},
    )
    assert uploaded.status_code == 303, uploaded.text
    where = uploaded.headers["location"]
    mutations = len(sandbox.state.mutation_log())
    page = console.get(where)
    assert page.status_code == 200, page.text
    assert re.search(r'id="drift-missing">2<', page.text)
    assert re.search(rf'id="drift-unexpected">{removals}<', page.text)
    assert 'id="drift-groups"' in page.text and PILOT_GROUP in page.text
    assert 'id="guard"' in page.text and 'id="consent"' in page.text
    assert 'id="max-changes"' in page.text and 'id="apply"' in page.text
    assert re.search(r'id="max-changes"[^>]*value=', page.text) is None  # nothing pre-filled
    assert re.search(r'type="checkbox"[^>]*checked', page.text) is None
    apply = where + "/apply"
    token = csrf_of(console)
    for typed in (
        {"max_changes": "", "consent": str(removals)},
        {"max_changes": str(2 + removals), "consent": ""},
        {"max_changes": str(2 + removals), "consent": str(removals - 1)},
        {"max_changes": "1", "consent": str(removals)},
    ):
        refused = console.post(apply, data={"csrf_token": token, **typed})
        assert refused.status_code == 400, (typed, refused.text)
    assert len(sandbox.state.mutation_log()) == mutations
    assert sorted(sandbox.state.members(PILOT_GROUP)) == sorted(members)
    applied = console.post(
        apply,
        data={"csrf_token": token, "max_changes": str(2 + removals), "consent": str(removals)},
    )
    assert applied.status_code == 303, applied.text
    shown = wait_for_run(console, applied.headers["location"].removeprefix("/runs/"))
    assert shown["kind"] == "reconcile" and shown["status"] == "finished", shown
    assert sorted(sandbox.state.members(PILOT_GROUP)) == sorted([*keep, *fresh])
    again = console.get(where)
    assert re.search(r'id="drift-summary">[^<]*in sync', again.text)
    assert 'id="apply"' not in again.text


def test_the_group_export_has_exact_totals_and_downloads(
    console: TestClient, sandbox: SandboxServer
) -> None:
    page = console.get("/finance")
    assert page.status_code == 200
    assert 'id="export"' in page.text and 'id="pushed"' in page.text and 'id="totals"' in page.text
    made = console.post(
        "/finance/export", data={"csrf_token": csrf_of(console), "group_id": PILOT_GROUP}
    )
    assert made.status_code == 200, made.text
    link = re.search(r'href="(/finance/files/(orders-[^"]+\.xlsx))"', made.text)
    assert link, made.text
    download = console.get(link.group(1))
    assert download.status_code == 200
    assert "attachment" in download.headers["content-disposition"]
    book = load_workbook(io.BytesIO(download.content), read_only=True)
    amounts: dict[str, Decimal] = {}
    rows = list(book["Orders"].values)
    first = next(n for n, row in enumerate(rows) if "order_id" in row)  # below the sheet's note
    header = list(rows[first])
    for row in rows[first + 1 :]:
        if row[header.index("order_id")] and row[header.index("amount")] is not None:
            currency = str(row[header.index("currency")])
            amount = Decimal(str(row[header.index("amount")])).quantize(Decimal("0.01"))
            amounts[currency] = amounts.get(currency, Decimal(0)) + amount
    assert amounts, "the pilot group's SIMs have orders"
    shown = re.findall(
        r"<tr><td>([A-Z]{3})</td><td>[^<]*</td><td class=\"num\">\d+</td><td class=\"num\">([\d,.]+)</td>",
        made.text,
    )
    per_currency: dict[str, Decimal] = {}
    for currency, amount in shown:
        per_currency[currency] = per_currency.get(currency, Decimal(0)) + Decimal(
            amount.replace(",", "")
        )
    assert per_currency == amounts


@pytest.mark.parametrize("name", ["../journal.db", "orders-x.xlsx", "x.xlsx"])
def test_only_the_consoles_exports_are_served(console: TestClient, name: str) -> None:
    assert console.get(f"/finance/files/{name}").status_code == 404


def test_pushed_orders_are_listed_with_exact_totals_per_currency(console: TestClient) -> None:
    home = state_of(console).settings.home
    headers = wire.PushHeaders("2", "HmacSHA256", "key-1", "sig", "1780000000000")
    bodies = [
        event("O1", "T1", "0.10", "EUR"), event("O2", "T2", "0.20", "EUR"),
        event("O3", "T3", "1000000.01", "USD"), event("<b>O4</b>", "T4", "0.01", "USD"),
    ]  # fmt: skip
    with PushStore.open(home) as store:
        store.record([Delivery(b"{}", b, headers, datetime.now(UTC)) for b in bodies])
    page = console.get("/finance")
    assert page.status_code == 200
    assert re.search(r'id="total-EUR">0.30<', page.text)  # not 0.30000000000000004
    assert re.search(r'id="total-USD">1,000,000.02<', page.text)
    assert "<b>O4</b>" not in page.text and "&lt;b&gt;O4&lt;/b&gt;" in page.text


def test_the_export_by_keys_lists_what_it_found_and_what_it_did_not(
    console: TestClient, sandbox: SandboxServer
) -> None:
    known = sandbox.state.orders()[:2]
    data = "order_id\n" + "".join(f"{o['order_id']}\n" for o in known) + "LF999999999\n"
    made = console.post(
        "/finance/export",
        data={"csrf_token": csrf_of(console)},
        files={"file": ("<keys>.csv", data.encode(), "text/csv")},
    )
    assert made.status_code == 200, made.text
    assert str(escape("<keys>.csv")) in made.text and "<keys>" not in made.text
    assert "upload.csv" not in made.text
    assert 'id="not-found"' in made.text and "LF999999999" in made.text
    expected: dict[str, Decimal] = {}
    for order in known:
        expected[order["currency"]] = expected.get(order["currency"], Decimal(0)) + Decimal(
            order["amount"]
        )
    totals = re.search(r'<table id="totals">.*?</table>', made.text, re.S)
    assert totals
    shown: dict[str, Decimal] = {}
    for currency, amount in re.findall(
        r"<tr><td>([A-Z]{3})</td><td>[^<]*</td><td class=\"num\">\d+</td><td class=\"num\">([\d,.]+)</td>",
        totals.group(0),
    ):
        shown[currency] = shown.get(currency, Decimal(0)) + Decimal(amount.replace(",", ""))
    assert shown == expected


def test_an_export_without_keys_or_group_is_refused_by_name(console: TestClient) -> None:
    refused = console.post(
        "/finance/export",
        data={"csrf_token": csrf_of(console)},
        files={"file": ("keys.csv", b"name\nx\n", "text/csv")},
    )
    assert refused.status_code == 400
    assert "keys.csv" in refused.text and "purchase_order_id" in refused.text
    assert "upload.csv" not in refused.text
