"""`sims status`'s library: flags per SIM, the fleet rows, workbook and exit code (fleet.py).

Hand-made answers, no API: what the look-up run hands the reporter.
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest

from lf_bulk import fleet
from lf_bulk.api_values import CardInfo, HeldPlan, Renewal
from lf_bulk.exitcodes import ExitCode
from lf_bulk.fleet import Flag, build_report, flags_of, fleet_rows, write_fleet
from lf_bulk.lookups import SimAnswers
from lf_bulk.models import OutcomeCode

TODAY = date(2026, 11, 29)
ICCID = "8988303000000000010"
ACTIVE = CardInfo(ICCID, "ACTIVE", "欧洲")


def held(status: str, name: str = "Europe 5GB", expire: str = "", remaining: int | None = None):
    return HeldPlan(status, name, 30, "DAY", expire, remaining, "O1", "DP1", "")


def answers(
    *,
    outcome: str = OutcomeCode.LOOKED_UP,
    card: CardInfo | None = ACTIVE,
    plans: tuple[HeldPlan, ...] | None = (),
    renewal: Renewal | None = None,
    reason_code: str = "",
    row: int = 2,
    iccid: str = ICCID,
    group_id: str = "G1000001",
) -> SimAnswers:
    return SimAnswers(
        row, iccid, group_id, outcome, reason_code, "", card, plans, renewal, None, 1.0e9
    )


def in_use(days_left: int, name: str = "Europe 5GB") -> HeldPlan:
    return held("2", name, (TODAY.fromordinal(TODAY.toordinal() + days_left)).isoformat())


@pytest.mark.parametrize(
    ("sim", "expected"),
    [
        (answers(plans=()), [Flag.NO_PLAN]),
        (answers(plans=(held("3", expire="2026-10-01"),)), [Flag.NO_PLAN]),  # expired only
        (answers(plans=(held("1"),)), [Flag.PENDING_ONLY]),
        (answers(plans=(in_use(30),)), []),
        (answers(plans=(in_use(7),)), [Flag.EXPIRING]),  # within 7 days: the edge counts
        (answers(plans=(in_use(8),)), []),
        (answers(plans=(in_use(0),)), [Flag.EXPIRING]),
        (answers(plans=(in_use(3), held("1"))), [Flag.EXPIRING]),  # in use: not pending_only
        (answers(plans=(in_use(3), in_use(40))), []),  # covered by the plan that runs longest
        (answers(plans=(held("2", remaining=2),)), [Flag.EXPIRING]),  # no date: remainingDays
        (answers(plans=(held("2"),)), []),  # in use, end unknown: not called expiring
        (answers(card=CardInfo(ICCID, "SUSPENDED", ""), plans=()), [Flag.NO_PLAN, Flag.CARD_INACTIVE]),
        (answers(card=CardInfo(ICCID, "INACTIVE", ""), plans=(in_use(30),)), [Flag.CARD_INACTIVE]),
        (answers(card=None, reason_code="CARD_INACTIVE", plans=None), [Flag.CARD_INACTIVE]),
        (answers(outcome="not_found", card=None, plans=None, reason_code="CARD_NOT_FOUND"), [Flag.NOT_FOUND]),
        (answers(outcome="not_found", card=None, plans=None, reason_code="CARD_NOT_OWNED"), [Flag.NOT_FOUND]),
        (answers(outcome="failed", card=None, plans=None, reason_code="SYSTEM_BUSY"), []),
        (answers(outcome="pending", card=None, plans=None), []),
        (answers(plans=None), []),  # held orders not asked: no plan flag guessed
    ],
)  # fmt: skip
def test_flags_of(sim: SimAnswers, expected: list[Flag]) -> None:
    assert flags_of(sim, TODAY, 7) == expected


def test_expiring_within_is_the_users_number() -> None:
    sim = answers(plans=(in_use(10),))
    assert flags_of(sim, TODAY, 7) == []
    assert flags_of(sim, TODAY, 10) == [Flag.EXPIRING]
    assert flags_of(sim, TODAY, 0) == []


def test_a_fleet_row_shows_the_plan_that_runs_longest_and_the_pending_ones() -> None:
    renewal = Renewal(ICCID, "O9", "PAY9", "Europe 5GB monthly", 3, "1", "2026.01.05")
    sim = answers(
        plans=(in_use(3, "Short"), in_use(40, "Long"), held("1", "Next A"), held("1", "Next B")),
        renewal=renewal,
    )
    [row] = fleet_rows([sim], TODAY, 7)
    assert (row.plan_in_use, row.expire_date, row.remaining_days) == ("Long", date(2027, 1, 8), 40)
    assert row.pending_plans == "Next A; Next B"
    assert row.auto_renewal == "Europe 5GB monthly"
    assert row.card_status == "ACTIVE"
    assert row.flags == ()


def test_the_apis_remaining_days_wins_over_our_arithmetic() -> None:
    [row] = fleet_rows([answers(plans=(held("2", expire="2026-12-09", remaining=9),))], TODAY)
    assert (row.expire_date, row.remaining_days) == (date(2026, 12, 9), 9)


def test_an_unreadable_expire_date_is_no_date_and_no_crash() -> None:
    [row] = fleet_rows([answers(plans=(held("2", expire="9999-99-99"),))], TODAY)
    assert row.expire_date is None
    assert row.flags == ()


def mixed() -> list[SimAnswers]:
    return [
        answers(row=2, iccid="8988303000000000010", plans=(in_use(3),)),
        answers(row=3, iccid="8988303000000000028", plans=(in_use(60),), group_id="G1000002"),
        answers(row=4, iccid="8988303000000000036", plans=()),
        answers(
            row=5, iccid="8988303000000000044", outcome="not_found", card=None, plans=None,
            reason_code="CARD_NOT_OWNED",
        ),
        answers(row=6, iccid="12345", outcome="invalid", card=None, plans=None,
                reason_code="bad_length"),
        answers(row=7, iccid="8988303000000000010", outcome="duplicate", card=None, plans=None),
    ]  # fmt: skip


def test_each_input_row_is_on_the_fleet_or_the_not_found_sheet() -> None:
    report = build_report(mixed(), TODAY, 7)
    assert [r.row for r in report.rows] == [2, 3, 4, 5]
    assert [m.row for m in report.not_found] == [5, 6, 7]
    assert report.flag_counts == {
        Flag.NO_PLAN: 1, Flag.PENDING_ONLY: 0, Flag.EXPIRING: 1, Flag.CARD_INACTIVE: 0,
        Flag.NOT_FOUND: 1,
    }  # fmt: skip
    assert report.flagged == 3
    assert report.by_group() == [
        ["G1000001", 3, 3, 1, 0, 1, 0, 1],
        ["G1000002", 1, 0, 0, 0, 0, 0, 0],
    ]


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ([], ExitCode.DRIFT),
        ([answers(row=9, outcome="failed", card=None, plans=None)], ExitCode.SOME_FAILED),
        ([answers(row=9, outcome="pending", card=None, plans=None)], ExitCode.NOT_FINISHED),
    ],
)
def test_exit_code_not_finished_then_failed_then_flagged(
    extra: list[SimAnswers], code: ExitCode
) -> None:
    assert build_report(mixed() + extra, TODAY, 7).exit_code == code


def test_no_flag_is_exit_0() -> None:
    assert build_report([answers(plans=(in_use(30),))], TODAY, 7).exit_code == ExitCode.OK


def test_the_workbook(tmp_path: Path) -> None:
    hostile = answers(row=8, iccid="8988303000000000051", plans=(in_use(3, "=HYPERLINK(1)"),))
    report = build_report([*mixed(), hostile], TODAY, 7, source="sims.csv", run_id="R1")
    path = tmp_path / "fleet.xlsx"
    write_fleet(path, report)
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["Summary", "Fleet", "Not found"]
    sheet = book["Fleet"]
    header = [c.value for c in sheet[1]]
    assert header[:9] == [
        "iccid", "group_id", "card_status", "plan_in_use", "expire_date", "remaining_days",
        "pending_plans", "auto_renewal", "flags",
    ]  # fmt: skip
    first = [c for c in sheet[2]]
    assert first[0].value == "8988303000000000010" and first[0].data_type == "s"
    assert first[0].number_format == "@"
    assert first[4].value == datetime(2026, 12, 2) and first[4].is_date
    assert first[4].number_format == "yyyy-mm-dd"
    assert first[5].value == 3
    assert first[8].value == "expiring"
    last = [c.value for c in sheet[sheet.max_row]]
    assert last[3] == "'=HYPERLINK(1)"  # neutralised, never a formula
    assert sheet.freeze_panes == "A2"
    missing = [[c.value for c in r] for r in book["Not found"].iter_rows(min_row=3)]
    assert [m[0] for m in missing] == [5, 6, 7]
    assert missing[0][4] == "CARD_NOT_OWNED"
    summary = [[c.value for c in r] for r in book["Summary"].iter_rows()]
    flat = [v for r in summary for v in r if v is not None]
    assert next(r[:2] for r in summary if r[0] == "expiring") == ["expiring", 2]
    assert "SIMs per group" in flat
    assert ["G1000001", 4, 4, 1, 0, 2, 0, 1] in [r[:8] for r in summary]
    assert book["Summary"]._charts  # the counts per flag as a chart


def test_the_csv_is_the_fleet_sheet_only(tmp_path: Path) -> None:
    path = tmp_path / "fleet.csv"
    write_fleet(path, build_report(mixed(), TODAY, 7))
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == [c.header for c in fleet.FLEET_COLUMNS]
    assert [r[0] for r in rows[1:]] == [
        "8988303000000000010", "8988303000000000028", "8988303000000000036",
        "8988303000000000044",
    ]  # fmt: skip
    assert rows[1][4:6] == ["2026-12-02", "3"]
    assert rows[4][8] == "not_found"
    assert not list(tmp_path.glob("*.totals.csv"))


def test_a_failed_look_up_shows_why_and_no_flag() -> None:
    sim = replace(
        answers(outcome="failed", card=None, plans=None, reason_code="SYSTEM_BUSY"),
        reason="the server was busy",
    )
    [row] = build_report([sim], TODAY, 7).rows
    assert (row.flags, row.outcome, row.reason) == ((), "failed", "the server was busy")


def test_the_reporters_summary_line_is_read_back_for_stderr(tmp_path: Path) -> None:
    report = build_report(mixed(), TODAY, 7)
    (tmp_path / fleet.FLEET_JSON).write_text(json.dumps(report.to_json()))
    assert (
        fleet.summary_line_in(tmp_path) == "4 SIMs, 3 flagged (no_plan 1, expiring 1, not_found 1)"
    )
    (tmp_path / fleet.FLEET_JSON).write_text("[1]")
    assert fleet.summary_line_in(tmp_path) == ""
    assert fleet.summary_line_in(tmp_path / "missing") == ""


def test_sims_from_a_file_count_under_no_group() -> None:
    report = build_report([answers(group_id=""), answers(row=3, group_id="", plans=None)], TODAY)
    assert report.by_group() == [["(none)", 2, 1, 1, 0, 0, 0, 0]]
