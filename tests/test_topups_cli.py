"""`orders create` and `payments check` as a user runs them, against a served sandbox: validation
with row numbers (nothing sent), the dry run's totals and price flags, -q, payments incl. not_found."""

from __future__ import annotations

import csv
import time
from decimal import Decimal
from pathlib import Path

from openpyxl import Workbook, load_workbook

from lf_bulk import runs, topups
from lf_bulk.answers import CACHE_NAME, Answer, AnswerCache, encode
from lf_bulk.api_values import PlanOffer
from lf_bulk.journal import Journal
from lf_bulk.pacing import RequestPacer
from lf_bulk.sandbox import cards, seed
from lf_bulk.sandbox.server import SandboxServer
from lf_bulk.settings import Settings
from tests.clihelp import base_args, expect, invoke, read_items, read_summary
from tests.lookups_fake import make_iccid

HEADER = "iccid,package_code,periods,amount,currency,pay_id,order_no\n"


def active_sims(server: SandboxServer, count: int) -> list[tuple[str, cards.PlanSeed]]:
    found = []
    for sim in server.state.iccids_with(card_status=cards.CARD_ACTIVE, limit=count):
        card = server.state.card(sim)
        assert card is not None
        found.append((sim, cards.plans_for(card["area"])[0]))
    return found


def test_invalid_rows_stop_the_job_with_their_row_numbers_and_nothing_is_sent(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    (sim, plan), (other, _) = active_sims(sandbox, 2)
    good = f"{sim},{plan.package_code},1,{plan.price},{plan.currency},pi_a,A-1\n"
    source = tmp_path / "orders.csv"
    source.write_text(
        HEADER
        + good  # row 2
        + f"{other},DP1,1,12.345,EUR,pi_b,\n"  # row 3: three decimals
        + f"{other},DP1,1,10,EURO,pi_c,\n"  # row 4: not ISO 4217
        + f"{other},DP1,0,10,EUR,pi_d,\n"  # row 5: periods 0
        + f"{other},,1,10,EUR,pi_e,\n"  # row 6: no plan
        + f"{other},DP1,1,10,EUR,pi_f,A-1\n"  # row 7: order_no again
        + f"{other},DP1,1,-3,EUR,pi_g,\n"  # row 8: negative
        + f"{other},DP1,1,10,EUR,pi_a,\n"  # row 9: pay_id again
        + f"{other},DP1,1,10,EUR,pi_h,=HYPERLINK(1)\n"  # row 10: not an id
        + f"{other},DP1,1,10,EUR,,\n"  # row 11: no pay_id
    )
    home = tmp_path / "home"
    result = expect(invoke([*base_args(home, sandbox.base_url), "orders", "create", str(source),
                            "--report-dir", str(tmp_path / "r")]), 2)  # fmt: skip
    for number, code in [(3, "bad_amount"), (4, "bad_currency"), (5, "bad_periods"),
                         (6, "no_package_code"), (7, "duplicate_order_no"), (8, "bad_amount"),
                         (9, "duplicate_pay_id"), (10, "bad_order_no"), (11, "no_pay_id")]:  # fmt: skip
        assert f"row {number}: {code}" in result.stderr, result.stderr
    assert "row 2:" not in result.stderr and "--skip-invalid" in result.stderr
    assert sandbox.state.vshop_calls() == []
    assert not (home / "journal.db").exists() or Journal(home / "journal.db").runs() == []
    reported = {i["row"]: i["reason_code"] for i in read_items(tmp_path / "r")}
    assert reported["3"] == "bad_amount" and "2" not in reported


def test_a_file_without_the_order_columns_names_them(tmp_path: Path) -> None:
    source = tmp_path / "orders.csv"
    source.write_text(f"iccid,amount\n{make_iccid(1)},1\n")
    result = expect(invoke(["--home", str(tmp_path / "h"), "orders", "create", str(source)]), 2)
    assert "package_code" in result.stderr and "pay_id" in result.stderr


def test_numeric_amount_cells_are_read_as_excel_shows_them_and_still_need_two_decimals(
    tmp_path: Path,
) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["iccid", "package_code", "periods", "amount", "currency", "pay_id"])
    sheet.append([make_iccid(1), "DP1", 2, 12.5, "eur", "pi_1"])
    sheet.append([make_iccid(2), "DP1", 1, 12.345, "EUR", "pi_2"])
    sheet.append([make_iccid(3), "DP1", 1, 0.1 + 0.2, "EUR", "pi_3"])
    book.save(tmp_path / "orders.xlsx")
    rows = topups.read_orders(tmp_path / "orders.xlsx").rows
    assert rows[0].top_up is not None and rows[0].top_up.amount == Decimal("12.5")
    assert rows[0].top_up.currency == "EUR" and rows[0].top_up.periods == 2
    assert rows[1].top_up is None and rows[1].reason_code == "bad_amount"
    # the float 0.30000000000000004 is what Excel shows as 0.3: never a float in the amount
    assert rows[2].top_up is not None and str(rows[2].top_up.amount) == "0.3"


class PartnerOnly:
    pacer = RequestPacer(1000, 1)
    base_url = "https://lf.test"
    partner_code = "P1"


def test_the_dry_run_has_exact_totals_and_flags_amounts_that_differ_from_the_plan(
    tmp_path: Path,
) -> None:
    settings = Settings(env="uat", base_url="https://lf.test", home=tmp_path / "home")
    settings.home.mkdir()
    priced = PlanOffer("DP1", "Europe 1GB", "EU", 1024, 30, Decimal("9.99"), "EUR", False)
    sims = [make_iccid(n) for n in (1, 2, 3)]
    with AnswerCache(settings.home / CACHE_NAME) as cache:
        asker = cache.asker(runs.endpoint_of(settings), "P1")
        for sim in sims[:2]:
            cache.put(asker, "plans", f"{sim}|", encode(Answer([priced])), time.time())
    source = tmp_path / "orders.csv"
    source.write_text(
        "iccid,package_code,periods,amount,currency,pay_id\n"
        f"{sims[0]},DP1,3,29.97,EUR,pi_1\n"  # 9.99 x 3: right
        f"{sims[1]},DP1,2,19.00,EUR,pi_2\n"  # should be 19.98
        f"{sims[2]},DP1,1,0.10,GBP,pi_3\n"  # no plans cached: unknown
    )
    plan = topups.plan_orders(PartnerOnly(), settings, topups.read_orders(source),
                              report_dir=tmp_path / "plan")  # fmt: skip
    assert plan.totals == {"EUR": (2, Decimal("48.97")), "GBP": (1, Decimal("0.10"))}
    assert (plan.price_differs, plan.price_unknown) == (1, 1)
    checks = {i["iccid"]: i["price_check"] for i in read_items(tmp_path / "plan")}
    assert checks[sims[0]] == "ok" and checks[sims[2]] == ""
    assert checks[sims[1]] == "differs: plan price 9.99 x 2 = 19.98 EUR"
    summary = read_summary(tmp_path / "plan")
    assert summary["totals"]["EUR"] == {"orders": 2, "amount": "48.97"}
    assert {i["outcome"] for i in read_items(tmp_path / "plan")} == {"would_create"}


def test_orders_create_quietly_prints_only_the_report_folder_and_writes_totals(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    chosen = active_sims(sandbox, 3)
    source = tmp_path / "orders.csv"
    source.write_text(HEADER + "".join(
        f"{sim},{plan.package_code},2,{Decimal(plan.price) * 2},{plan.currency},pi_q{n},\n"
        for n, (sim, plan) in enumerate(chosen)
    ))  # fmt: skip
    report = tmp_path / "r"
    args = [*base_args(tmp_path / "home", sandbox.base_url), "-q"]
    result = expect(invoke([*args, "orders", "create", str(source), "--report-dir", str(report)]),
                    0)  # fmt: skip
    assert result.stdout == f"{report}\n"
    items = read_items(report)
    assert [i["outcome"] for i in items] == ["created"] * 3
    assert all(i["order_no"].startswith("LFB-") and i["order_id"] for i in items)
    at_linksfield = {o["purchase_order_id"]: o for o in sandbox.state.orders(seed.PARTNER)}
    assert all(at_linksfield[i["order_no"]]["order_id"] == i["order_id"] for i in items)
    expected: dict[str, Decimal] = {}
    for _, plan in chosen:
        expected[plan.currency] = expected.get(plan.currency, Decimal(0)) + Decimal(plan.price) * 2
    totals = read_summary(report)["totals"]
    assert {c: Decimal(t["amount"]) for c, t in totals.items()} == expected
    book = load_workbook(report / "report.xlsx")
    assert book.sheetnames[:3] == ["Summary", "Items", "Totals"]
    # a second run of the same file: new numbers would double the top-ups, so the file's
    # generated numbers are not reused; with the numbers given, they are `exists`
    given = tmp_path / "given.csv"
    given.write_text(HEADER + "".join(
        f"{i['iccid']},{i['package_code']},{i['periods']},{i['amount']},{i['currency']},"
        f"{i['pay_id']},{i['order_no']}\n" for i in items
    ))  # fmt: skip
    again = expect(invoke([*args, "orders", "create", str(given), "--report-dir",
                           str(tmp_path / "r2")]), 0)  # fmt: skip
    assert again.stdout.strip() == str(tmp_path / "r2")
    assert [i["outcome"] for i in read_items(tmp_path / "r2")] == ["exists"] * 3
    assert len(sandbox.state.vshop_calls("SynOrderInfo")) == 3


def test_payments_check_writes_statuses_totals_and_not_found(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    paid = [o for o in sandbox.state.orders(seed.PARTNER) if o["pay_id"]][:4]
    source = tmp_path / "pays.csv"
    source.write_text("pay_id\n" + "".join(f"{o['pay_id']}\n" for o in paid) + "pi_nosuch\n")
    args = base_args(tmp_path / "home", sandbox.base_url)
    out = tmp_path / "pays.xlsx"
    result = expect(invoke([*args, "payments", "check", str(source), "-o", str(out),
                            "--report-dir", str(tmp_path / "r")]), 3)  # fmt: skip
    assert str(tmp_path / "r") in result.stdout
    book = load_workbook(out)
    assert book.sheetnames == ["Payments", "Totals"]
    rows = list(book["Payments"].iter_rows(values_only=True))
    header = rows[0]
    assert header[:9] == ("row", "pay_id", "outcome", "pay_status", "amount", "currency",
                          "pay_time", "order_no", "iccid")  # fmt: skip
    by_id = {r[1]: dict(zip(header, r, strict=True)) for r in rows[1:]}
    assert by_id["pi_nosuch"]["outcome"] == "not_found"
    for order in paid:
        line = by_id[order["pay_id"]]
        assert line["outcome"] == "looked_up" and line["order_no"] == order["purchase_order_id"]
        assert Decimal(str(line["amount"])) == Decimal(order["amount"])
        assert line["iccid"] == order["sim_id"]
    summary = read_summary(tmp_path / "r")
    total = sum(Decimal(t["amount"]) for t in summary["totals"])
    assert total == sum(Decimal(o["amount"]) for o in paid)
    assert summary["outcomes"] == {"looked_up": 4, "not_found": 1}
    # .csv: the Payments rows only
    expect(invoke([*args, "payments", "check", str(source), "-o", str(tmp_path / "p.csv"),
                   "--report-dir", str(tmp_path / "r2")]), 3)  # fmt: skip
    with (tmp_path / "p.csv").open(newline="") as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == 5 and lines[-1]["outcome"] == "not_found"


def test_payments_check_without_a_pay_id_column_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "pays.csv"
    source.write_text("payment\npi_1\n")
    result = expect(invoke(["--home", str(tmp_path / "h"), "payments", "check", str(source)]), 2)
    assert "pay_id" in result.stderr
