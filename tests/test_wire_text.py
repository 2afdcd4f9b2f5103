"""Hostile text from the API is cleaned where it arrives: no escape reaches a terminal, no invalid
Unicode wedges a run or crashes a file, no formula reaches a CSV or workbook we write."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import openpyxl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from wirehelp import PARTNER, Canned, hostile_api

from lf_bulk import wire
from lf_bulk.client import LinksfieldClient
from lf_bulk.engine import RunDriver
from lf_bulk.exitcodes import ExitCode
from lf_bulk.journal import Journal, PlannedItem
from lf_bulk.models import Operation
from lf_bulk.pacing import RequestPacer

from clihelp import expect, invoke

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")

ICCID_A = "8944500000396693786"
ICCID_B = "89852420180910340793"
# Raw JSON text: `\ud800` is a lone surrogate once decoded, `\u001b` an ESC, `\u009b` a C1 CSI.
NASTY = r"\u001b[31mred\u001b[0m \ud800 \u009b2J tab\tnl\n"
FORMULA = '=HYPERLINK(\\"http://x.test\\",\\"click\\")'


def envelope(data: str) -> Canned:
    return Canned(f'{{"code":"0000","message":"success","data":{data}}}'.encode())


def assert_clean(text: str) -> None:
    assert "\x1b" not in text and "\x9b" not in text
    assert not any(0xD800 <= ord(c) <= 0xDFFF for c in text)
    text.encode("utf-8")


# ---------------------------------------------------------------- the cleaning itself


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("\x1b[31mG\x1b[0m", "\\x1b[31mG\\x1b[0m"),
        ("a\ud800b", "a\ufffdb"),
        ("\x9b2J", "\\x9b2J"),
        ("\x00\x7f", "\\x00\\x7f"),
        ("line\nnext\ttab\r", "line\\nnext\\ttab\\r"),
        ("\u202egnp.exe", "\\u202egnp.exe"),
        ("欧洲 Zürich 😀", "欧洲 Zürich 😀"),
    ],
    ids=repr,
)
def test_clean_text_makes_controls_visible_and_unicode_valid(raw: str, clean: str) -> None:
    assert wire.clean_text(raw) == clean
    assert wire.clean_text(clean) == clean


def test_every_string_of_an_answer_is_cleaned_keys_included() -> None:
    body = json.loads(
        '{"code":"0000","message":"\\u001b]0;x\\u0007","data":{"\\u001bk":["\\ud800"]}}'
    )
    envelope = wire.parse_envelope(body)
    assert envelope is not None
    assert envelope.message == "\\x1b]0;x\\x07"
    assert envelope.data == {"\\x1bk": ["\ufffd"]}


# ---------------------------------------------------------------- through the commands


def test_groups_list_shows_hostile_names_escaped(tmp_path: Path) -> None:
    groups = f'[{{"group_id":"G1","group_name":"{NASTY}","sim_count":1,"bundles":[]}}]'
    with hostile_api({"/bundle-groups/bundles": envelope(groups)}) as api:
        for fmt in ("table", "json", "csv"):
            result = expect(
                invoke([*api.cli_args(str(tmp_path)), "groups", "list", "--format", fmt]), 0
            )
            assert_clean(result.output)
            assert "\\x1b[31mred" in result.output or "\\u001b" in result.output


def test_groups_list_to_a_csv_file_neutralises_formulas(tmp_path: Path) -> None:
    groups = f'[{{"group_id":"G1","group_name":"{FORMULA}","sim_count":1,"bundles":[]}}]'
    out = tmp_path / "groups.csv"
    with hostile_api({"/bundle-groups/bundles": envelope(groups)}) as api:
        result = expect(invoke([*api.cli_args(str(tmp_path)), "groups", "list", "-o", str(out)]), 0)
    assert result.stdout.strip() == str(out)
    with out.open(newline="", encoding="utf-8") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["group_name"].startswith("'=HYPERLINK(")


def test_members_that_are_not_iccids_are_left_out_and_reported(tmp_path: Path) -> None:
    page = (
        f'{{"group_id":"G1","total":4,"page_no":1,"page_size":1000,'
        f'"iccids":["{ICCID_A}","=1+1","\\u001b[2J","{ICCID_B}"]}}'
    )
    out = tmp_path / "members.csv"
    with hostile_api({"/G1/sims": envelope(page)}) as api:
        args = [*api.cli_args(str(tmp_path)), "groups", "members", "G1", "-o", str(out)]
        result = expect(invoke(args), 0)
    assert out.read_text(encoding="utf-8").splitlines() == ["iccid", ICCID_A, ICCID_B]
    assert "2 member id(s) that are not ICCIDs" in result.stderr
    assert_clean(result.output)


def test_ops_status_prints_hostile_reasons_escaped(tmp_path: Path) -> None:
    result_data = (
        '{"request_id":"R1","operation":"ADD","group_id":"G1","status":"FAILED","total":1,'
        f'"succeeded":0,"failed":1,"results":[{{"iccid":"{ICCID_A}","status":"FAILED",'
        f'"reason_code":"X\\u001b","reason":"{NASTY}"}}]}}'
    )
    with hostile_api({"/async-result/R1": envelope(result_data)}) as api:
        result = expect(invoke([*api.cli_args(str(tmp_path)), "ops", "status", "R1"]), 0)
    assert_clean(result.output)
    (sim,) = json.loads(result.stdout)["results"]
    assert sim["reason"].startswith("\\x1b[31mred")


def test_a_lone_surrogate_in_a_result_reason_no_longer_wedges_the_run(tmp_path: Path) -> None:
    submitted = envelope('{"request_id":"R1","accepted":1}')
    final = envelope(
        '{"request_id":"R1","operation":"ADD","group_id":"G1","status":"FAILED","total":1,'
        f'"succeeded":0,"failed":1,"results":[{{"iccid":"{ICCID_A}","status":"FAILED",'
        '"reason_code":"SIM_NOT_OWNED","reason":"owner \\ud83d unknown \\u001b[2J"}]}'
    )
    with (
        hostile_api({"/G1/sims": submitted, "/async-result/R1": final}) as api,
        Journal(tmp_path / "journal.db") as journal,
        LinksfieldClient(api.base_url, PARTNER, pacer=RequestPacer(200, 4)) as client,
    ):
        run_id = journal.create_run(
            kind="sims",
            operation="ADD",
            group_id="G1",
            items=[PlannedItem(2, ICCID_A, Operation.ADD, "G1")],
            batch_size=5,
        )
        result = RunDriver(journal, client, run_id).drive()
        (item,) = journal.items(run_id)
    assert result.exit_code == ExitCode.SOME_FAILED
    assert item.outcome == "failed"
    assert "owner \ufffd unknown \\x1b[2J" in item.reason


def test_an_undecodable_answer_is_one_clear_line(tmp_path: Path) -> None:
    gzip_lie = Canned(
        b'{"code":"0000","message":"success","data":[]}',
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    with hostile_api({"/bundle-groups/bundles": gzip_lie}) as api:
        result = expect(invoke([*api.cli_args(str(tmp_path)), "groups", "list"]), 1)
    assert "could not be decoded" in result.stderr and "gzip" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------- orders export


ORDER = (
    '{{"order_id":"O1","purchase_order_id":"{formula}","sim_id":"{iccid}",'
    '"bundle_id":"B1","bundle_name":"{nasty}","periods":1,"amount":"12.30","currency":"GBP",'
    '"pay_status":"PAID","pay_type":"@SUM(1)","pay_id":"-2+3","created_at":"2026-11-29 08:00:00",'
    '"{formula}":"x","note\\u001b":"+cmd"}}'
)


def _orders_api() -> Canned:
    order = ORDER.format(formula=FORMULA, iccid=ICCID_A, nasty=NASTY)
    return envelope(f'{{"orders":[{order}]}}')


def test_orders_csv_neutralises_cells_and_headers_and_prints_its_path(tmp_path: Path) -> None:
    keys = tmp_path / "keys.csv"
    keys.write_text("order_id\nO1\n", encoding="utf-8")
    out = tmp_path / "orders.csv"
    with hostile_api({"/mall/order": _orders_api()}) as api:
        args = [*api.cli_args(str(tmp_path)), "orders", "export", str(keys), "-o", str(out)]
        result = expect(invoke(args), 0)
    assert result.stdout.splitlines() == [str(out)]
    assert_clean(result.output)
    with out.open(newline="", encoding="utf-8") as handle:
        header, row = list(csv.reader(handle))
    cells = dict(zip(header, row, strict=True))
    assert all(not h.startswith(("=", "+", "-", "@")) for h in header)
    assert '\'=HYPERLINK("http://x.test","click")' in header
    assert cells["purchase_order_id"].startswith("'=")
    assert cells["pay_type"] == "'@SUM(1)" and cells["pay_id"] == "'-2+3"
    assert cells["note\\x1b"] == "'+cmd"
    assert cells["bundle_name"].startswith("\\x1b[31mred")
    totals = out.with_name("orders.totals.csv").read_text(encoding="utf-8").splitlines()
    assert totals[0].split(",")[:3] == ["totals_by", "currency", "pay_status"]
    assert "currency and pay status,GBP,PAID,,,1,12.30" in totals


def test_orders_workbook_with_hostile_text_is_written_clean(tmp_path: Path) -> None:
    keys = tmp_path / "keys.csv"
    keys.write_text("order_id\nO1\n", encoding="utf-8")
    out = tmp_path / "orders.xlsx"
    with hostile_api({"/mall/order": _orders_api()}) as api:
        args = [*api.cli_args(str(tmp_path)), "orders", "export", str(keys), "-o", str(out)]
        result = expect(invoke(args), 0)
    assert result.stdout.strip() == str(out)
    sheet = openpyxl.load_workbook(out)["Orders"]
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    header = [str(h) for h in rows[0]]
    assert all(not h.startswith(("=", "+", "-", "@")) for h in header)
    cells = dict(zip(header, rows[1], strict=True))
    assert str(cells["purchase_order_id"]).startswith("'=")
    assert str(cells["bundle_name"]).startswith("\\x1b[31mred")


@pytest.mark.parametrize(
    ("canned", "exit_code"),
    [
        # 1004 says the group is unknown: a usage error (exit 2), see jobs/errors.py.
        (Canned(b'{"code":"1004","message":"\\u001b[2Jgone \\ud800","data":null}'), 2),
        (Canned(b"<html>\x1b[2J\x1b]0;pwned\x07 proxy</html>", status=200), 1),
    ],
    ids=["business error", "unrecognised body"],
)
def test_api_messages_reach_the_terminal_escaped(
    tmp_path: Path, canned: Canned, exit_code: int
) -> None:
    with hostile_api({"/G1/sims": canned}) as api:
        args = [*api.cli_args(str(tmp_path)), "groups", "members", "G1"]
        result = expect(invoke(args), exit_code)
    assert_clean(result.output)
    assert "\\x1b[2J" in result.stderr


def test_an_undecodable_answer_to_a_mutating_call_is_not_sent_again() -> None:
    import httpx

    from lf_bulk import errors

    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        # A stream, not content=: httpx would decode content= while building the response.
        return httpx.Response(200, headers=headers, stream=httpx.ByteStream(b'{"code":"0000"}'))

    client = LinksfieldClient(
        "https://api.test/topup",
        PARTNER,
        transport=httpx.MockTransport(handler),
        pacer=RequestPacer(1000, 3, sleep=lambda seconds: None),
        sleep=lambda seconds: None,
    )
    with client, pytest.raises(errors.EnvelopeError, match="could not be decoded"):
        client.add_sims("G1", [ICCID_A])
    assert len(sent) == 1


@given(st.text(alphabet=st.characters(codec=None, exclude_categories=())))
def test_clean_text_always_gives_printable_encodable_idempotent_text(raw: str) -> None:
    clean = wire.clean_text(raw)
    clean.encode("utf-8")
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in clean)
    assert wire.clean_text(clean) == clean
