"""`renewals list` and `renewals cancel`'s reports (renewals.py), from hand-made answers."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import openpyxl
import pytest

from lf_bulk.api_values import Renewal
from lf_bulk.exitcodes import ExitCode
from lf_bulk.lookups import SimAnswers
from lf_bulk.renewals import build_renewal_list, write_cancel_report, write_renewal_list
from lf_bulk.sources import read_iccids

A, B, C = "8988303000000000010", "8988303000000000028", "8988303000000000036"


def renewal(iccid: str) -> Renewal:
    return Renewal(
        iccid, f"O-{iccid[-3:]}", f"PAY-{iccid[-3:]}", "EU monthly", 3, "1", "2026.01.05"
    )


def sim(row: int, iccid: str, outcome: str, r: Renewal | None, code: str = "") -> SimAnswers:
    return SimAnswers(row, iccid, "G1", outcome, code, "", None, None, r, None, 1.0e9)


LISTED = [
    sim(2, A, "looked_up", renewal(A)),
    sim(3, B, "looked_up", None),
    sim(4, C, "not_found", None, "CARD_NOT_FOUND"),
    sim(5, "12", "invalid", None, "bad_length"),
]


def test_the_list_has_one_row_per_renewing_sim_and_the_rest_aside() -> None:
    listing = build_renewal_list(LISTED)
    assert [r[:5] for r in listing.renewing] == [[A, "O-010", "PAY-010", "EU monthly", 3]]
    assert [(r[0], r[3]) for r in listing.others] == [
        (3, "no_renewal"),
        (4, "not_found"),
        (5, "invalid"),
    ]
    assert listing.exit_code == ExitCode.SOME_FAILED
    assert build_renewal_list(LISTED[:2]).exit_code == ExitCode.OK


def test_the_list_workbook_and_its_csv_which_renewals_cancel_reads(tmp_path: Path) -> None:
    write_renewal_list(tmp_path / "r.xlsx", build_renewal_list(LISTED))
    book = openpyxl.load_workbook(tmp_path / "r.xlsx")
    assert book.sheetnames == ["Summary", "Renewals", "Without renewal"]
    since = book["Renewals"]["F2"]
    assert since.is_date and since.value == datetime(2026, 1, 5)
    write_renewal_list(tmp_path / "r.csv", build_renewal_list(LISTED))
    with (tmp_path / "r.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows == [
        ["iccid", "order_no", "pay_id", "plan", "periods", "since", "group_id"],
        [A, "O-010", "PAY-010", "EU monthly", "3", "2026-01-05", "G1"],
    ]
    table = read_iccids(tmp_path / "r.csv")
    assert [row.iccid for row in table.valid_rows] == [A]


CANCELLED = [
    sim(2, A, "cancelled", renewal(A)),
    sim(3, B, "no_renewal", None),
    sim(4, C, "not_found", None, "CARD_NOT_FOUND"),
    sim(5, "12", "invalid", None, "bad_length"),
    sim(6, A, "duplicate", None, "duplicate"),
]


def test_the_cancel_report(tmp_path: Path) -> None:
    code = write_cancel_report(tmp_path, CANCELLED, run_id="R1", source="f.csv", planned=False)
    assert code == ExitCode.SOME_FAILED  # the card not found is a row that could not be settled
    with (tmp_path / "items.csv").open(newline="") as handle:
        items = list(csv.DictReader(handle))
    assert [(i["row"], i["outcome"]) for i in items] == [
        ("2", "cancelled"), ("3", "no_renewal"), ("4", "failed"), ("5", "invalid"),
        ("6", "duplicate"),
    ]  # fmt: skip
    assert items[0]["order_no"] == "O-010" and items[2]["reason_code"] == "CARD_NOT_FOUND"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["outcomes"] == {
        "cancelled": 1, "no_renewal": 1, "failed": 1, "invalid": 1, "duplicate": 1, "pending": 0,
    }  # fmt: skip
    assert summary["exit_code"] == 3 and summary["planned"] is False
    assert openpyxl.load_workbook(tmp_path / "report.xlsx").sheetnames == ["Summary", "Items"]


@pytest.mark.parametrize("found", ["pending", "looked_up"])
def test_the_cancel_plan_says_what_would_be_cancelled(tmp_path: Path, found: str) -> None:
    answers = [sim(2, A, found, renewal(A)), sim(3, B, found, None)]
    code = write_cancel_report(tmp_path, answers, run_id="R1", source="f.csv", planned=True)
    # B not asked yet ("pending") leaves the plan unfinished; answered ("looked_up"): no renewal
    assert code == (ExitCode.OK if found == "looked_up" else ExitCode.NOT_FINISHED)
    with (tmp_path / "items.csv").open(newline="") as handle:
        items = list(csv.DictReader(handle))
    assert (items[0]["outcome"], items[0]["reason_code"]) == ("pending", "WOULD_CANCEL")
    assert items[1]["outcome"] == ("no_renewal" if found == "looked_up" else "pending")
    assert json.loads((tmp_path / "summary.json").read_text())["would_cancel"] == 1


def test_a_cancel_run_with_a_row_pending_is_not_finished(tmp_path: Path) -> None:
    answers = [sim(2, A, "pending", renewal(A))]
    code = write_cancel_report(tmp_path, answers, run_id="R1", source="f.csv", planned=False)
    assert code == ExitCode.NOT_FINISHED


def test_a_plan_with_a_failed_or_unasked_query_is_not_a_clean_plan(tmp_path: Path) -> None:
    would = sim(2, A, "looked_up", renewal(A), "WOULD_CANCEL")
    failed = sim(3, B, "failed", None, "SYSTEM_BUSY")
    unasked = sim(4, C, "pending", None)
    plan = write_cancel_report(tmp_path, [would, failed], run_id="R", source="f", planned=True)
    assert plan == ExitCode.SOME_FAILED
    plan = write_cancel_report(tmp_path, [would, unasked], run_id="R", source="f", planned=True)
    assert plan == ExitCode.NOT_FINISHED
    assert write_cancel_report(tmp_path, [would], run_id="R", source="f", planned=True) == 0
