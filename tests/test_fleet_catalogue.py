"""`sims plans`'s library: the catalogue of plans the SIMs can buy (catalogue.py)."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import openpyxl

from lf_bulk.api_values import PlanOffer
from lf_bulk.catalogue import PLAN_COLUMNS, build_catalogue, write_catalogue
from lf_bulk.exitcodes import ExitCode
from lf_bulk.lookups import SimAnswers

EU = PlanOffer("DP001", "Europe 5GB", "欧洲", 5120, 30, Decimal("19.990"), "EUR", True)
EU_CHEAP = PlanOffer("DP001", "Europe 5GB", "欧洲", 5120, 30, Decimal("9.10"), "EUR", True)
ASIA = PlanOffer("DP002", "=Asia 1GB", "亚洲", 1024, 7, Decimal("0.1"), "USD", False)


def sim(row: int, iccid: str, plans: tuple[PlanOffer, ...] | None, outcome: str = "looked_up"):
    return SimAnswers(row, iccid, "G1", outcome, "", "", None, None, None, plans, 1.0e9)


ANSWERS = [
    sim(2, "8988303000000000010", (EU, ASIA, EU)),  # a plan listed twice counts once
    sim(3, "8988303000000000028", (EU,)),
    sim(4, "8988303000000000036", (EU_CHEAP,)),
    sim(5, "8988303000000000044", ()),
    sim(6, "8988303000000000051", None, outcome="not_found"),
    sim(7, "123", None, outcome="invalid"),
]


def test_one_row_per_offer_with_the_sims_that_can_buy_it() -> None:
    catalogue = build_catalogue(ANSWERS)
    assert [(o.plan, o.sims) for o in catalogue.plans] == [(ASIA, 1), (EU_CHEAP, 1), (EU, 2)]


def test_every_input_row_is_on_the_by_sim_sheet() -> None:
    rows = build_catalogue(ANSWERS).by_sim
    assert [r[0] for r in rows] == [2, 2, 3, 4, 5, 6, 7]
    assert rows[-2][3] == "not_found" and rows[-2][4] == ""


def test_exit_codes() -> None:
    assert build_catalogue(ANSWERS).exit_code == ExitCode.SOME_FAILED  # a card not found
    assert build_catalogue(ANSWERS[:4]).exit_code == ExitCode.OK
    pending = sim(9, "8988303000000000069", None, outcome="pending")
    assert build_catalogue([*ANSWERS, pending]).exit_code == ExitCode.NOT_FINISHED


def test_the_workbook_keeps_prices_exact(tmp_path: Path) -> None:
    path = tmp_path / "plans.xlsx"
    write_catalogue(path, build_catalogue(ANSWERS, area="欧洲"))
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["Summary", "Plans", "By SIM"]
    plans = list(book["Plans"].iter_rows(min_row=3, values_only=True))
    assert plans[0] == ("DP002", "'=Asia 1GB", "亚洲", 1024, 7, 0.1, "USD", "no", 1)
    assert plans[2][5] == 19.99 and plans[2][7] == "yes" and plans[2][8] == 2
    assert book["Plans"]["F3"].number_format == "#,##0.00"
    assert book["By SIM"]["B2"].data_type == "s"


def test_the_csv_is_the_plans_sheet_with_exact_digits(tmp_path: Path) -> None:
    path = tmp_path / "plans.csv"
    write_catalogue(path, build_catalogue(ANSWERS))
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == [c.header for c in PLAN_COLUMNS]
    assert [r[5] for r in rows[1:]] == ["0.1", "9.10", "19.990"]  # never through a float
    assert rows[1][1] == "'=Asia 1GB"
