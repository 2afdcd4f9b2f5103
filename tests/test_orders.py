"""The order export library: keys from real files, lookups on a mock transport and on the real
sandbox over 127.0.0.1, totals to the cent, and the workbook read back with openpyxl."""

from __future__ import annotations

import csv
import re
import threading
import time
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest

from lf_bulk import errors, orders, wire
from lf_bulk.api_values import Order
from lf_bulk.client import LinksfieldClient
from lf_bulk.orders import KeyInput, KeyRow, Lookup, LookupResult
from lf_bulk.pacing import RequestPacer
from lf_bulk.retrying import RetryPolicy
from lf_bulk.sandbox import seed
from lf_bulk.sandbox.server import SandboxServer

UTC = orders.zone_named("UTC")
MakeSandbox = Callable[..., SandboxServer]  # the `make_sandbox` fixture of conftest.py
# Enough budget on both sides that the tests measure our code, not the contract's 10 requests/s.
FAST = "rate=1000,concurrency=20"
WORLD = 10_000  # SIMs: about 390 orders of the sandbox partner

VALID_ICCID = "89852420180910340793"  # the documented example, Luhn-valid


def write_csv(path: Path, rows: Sequence[Sequence[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows(rows)
    return path


def make_order(order_id: str = "LF1", **fields: Any) -> Order:
    values: dict[str, Any] = {
        "order_id": order_id,
        "purchase_order_id": "PO1",
        "sim_id": VALID_ICCID,
        "bundle_id": "DP1",
        "bundle_name": "Bundle 1",
        "periods": 1,
        "amount": "1.00",
        "currency": "GBP",
        "pay_status": "PAID",
        "pay_type": "STRIPE",
        "pay_id": "pi_1",
        "created_at": "2026-01-02 03:04:05",
        "paid_at": "2026-01-02 03:05:00",
        "start_time": "2026-01-02 03:05:00",
        "expire_time": "2026-02-01 03:05:00",
        "auto_renewal": "0",
    }
    values.update(fields)
    return wire.parse_order(values)


def sheet_rows(path: Path, name: str) -> list[dict[str, Any]]:
    """The rows of a sheet as dicts keyed by the header (row 2; row 1 holds the note)."""
    sheet = openpyxl.load_workbook(path)[name]
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    header = [str(cell) for cell in rows[0]]
    return [dict(zip(header, row, strict=True)) for row in rows[1:]]


# ---------------------------------------------------------------- reading keys


def test_first_non_empty_key_wins_and_invalid_rows_keep_their_number(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "keys.csv",
        [
            ["purchase_order_id", "order_id", "iccid"],
            ["PO1", "LF1", VALID_ICCID],
            ["", "LF2", VALID_ICCID],
            ["", "", f" {VALID_ICCID[:4]}-{VALID_ICCID[4:]} "],
            ["", "", "89852420180910340794"],
            ["", "", ""],
            ["", "7.00000001E+15", ""],
            ["", "LF 3", ""],
            ["", "LF2", ""],
        ],
    )
    keys = orders.read_keys(path)
    assert [(r.row, r.kind, r.key, r.reason) for r in keys.rows] == [
        (2, "purchase_order_id", "PO1", None),
        (3, "order_id", "LF2", None),
        (4, "sim_id", VALID_ICCID, None),
        (5, "sim_id", "89852420180910340794", "bad_checksum"),
        (6, "", "", "empty"),
        (7, "order_id", "7.00000001E+15", "numeric_cell"),
        (8, "order_id", "LF 3", "bad_characters"),
        (9, "order_id", "LF2", None),
    ]
    assert keys.lookups == [
        Lookup("purchase_order_id", "PO1"),
        Lookup("order_id", "LF2"),
        Lookup("sim_id", VALID_ICCID),
    ]
    assert [row.row for row in keys.invalid_rows] == [5, 6, 7, 8]


def test_workbook_keys_by_header_alias_and_numeric_iccid_cells(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["Report of March"])
    sheet.append(["Order ID", "ICCID"])
    sheet.append(["LF1", None])
    sheet.append([None, VALID_ICCID])
    sheet.append([None, 89852420180910340793])  # Excel kept it as a number: digits lost
    workbook.save(tmp_path / "keys.xlsx")
    keys = orders.read_keys(tmp_path / "keys.xlsx")
    assert [(r.row, r.kind, r.reason) for r in keys.rows] == [
        (3, "order_id", None),
        (4, "sim_id", None),
        (5, "sim_id", "numeric_cell"),
    ]


def test_one_column_of_order_ids_and_a_headerless_iccid_list(tmp_path: Path) -> None:
    ids = orders.read_keys(write_csv(tmp_path / "ids.csv", [["order_id"], ["LF1"], ["LF2"]]))
    assert ids.lookups == [Lookup("order_id", "LF1"), Lookup("order_id", "LF2")]
    listing = tmp_path / "iccids.txt"
    listing.write_text(f"{VALID_ICCID}\n", encoding="utf-8")
    assert orders.read_keys(listing).lookups == [Lookup("sim_id", VALID_ICCID)]


@pytest.mark.parametrize(
    ("rows", "seen"),
    [
        ([["amount", "currency"], ["1.00", "GBP"]], "'amount', 'currency'"),
        ([["Order reference"], ["LF1"]], "'Order reference'"),
    ],
)
def test_a_file_without_key_columns_names_the_columns_seen(
    tmp_path: Path, rows: list[list[str]], seen: str
) -> None:
    path = write_csv(tmp_path / "other.csv", rows)
    with pytest.raises(errors.InputError) as caught:
        orders.read_keys(path)
    message = str(caught.value)
    assert str(path) in message and "purchase_order_id, order_id, iccid" in message
    assert f"Columns seen: {seen}." in message


def test_a_file_with_no_valid_key_at_all_is_bad_input(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "bad.csv", [["iccid"], ["123"], ["89852420180910340794"]])
    with pytest.raises(errors.InvalidRowsError) as caught:
        orders.read_keys(path)
    assert "row 2: bad_length" in str(caught.value) and "row 3: bad_checksum" in str(caught.value)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(errors.InputError, match="file not found"):
        orders.read_keys(tmp_path / "nope.csv")


def test_group_keys_are_sim_ids_without_row_numbers() -> None:
    keys = orders.group_keys("G1", [VALID_ICCID])
    assert keys.source == "group G1"
    assert keys.rows == [KeyRow(None, "sim_id", VALID_ICCID)]


# ---------------------------------------------------------------- pure parts


def test_api_times_are_naive_in_the_stated_zone() -> None:
    london = orders.zone_named("Europe/London")
    assert orders.parse_api_time("2026-07-01 12:00:00", london) == datetime(2026, 7, 1, 12)
    assert orders.parse_api_time("", london) is None
    # An explicit offset (beyond the contract) is converted into the stated zone.
    assert orders.parse_api_time("2026-07-01T12:00:00Z", london) == datetime(2026, 7, 1, 13)
    with pytest.raises(ValueError):
        orders.parse_api_time("01/07/2026", london)


def test_unknown_time_zone_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        orders.zone_named("Mars/Olympus")


def test_flatten_nests_with_dots_and_lists_as_json() -> None:
    extra = {"channel": "app", "meta": {"a": 1, "b": {"c": [1, "x"]}}, "tags": ["a"], "n": None}
    assert orders.flatten(extra) == {
        "channel": "app",
        "meta.a": "1",
        "meta.b.c": '[1,"x"]',
        "tags": '["a"]',
        "n": "",
    }


def test_money_text_keeps_every_digit() -> None:
    assert orders.money_text(Decimal("12")) == "12.00"
    assert orders.money_text(Decimal("12.3")) == "12.30"
    assert orders.money_text(Decimal("0.125")) == "0.125"
    assert orders.money_text(Decimal("1E+3")) == "1000.00"


def test_totals_are_exact_per_currency_status_and_per_bundle() -> None:
    tenth = [make_order(f"LF{i}", amount="0.10") for i in range(10)]
    others = [
        make_order("LFa", amount="12.36", currency="EUR", pay_status="REFUNDED"),
        make_order("LFb", amount=None, currency="EUR", pay_status="REFUNDED"),
        make_order("LFc", amount="7.50", currency="EUR", pay_status="PAID", bundle_id="DP2"),
    ]
    by_status, by_bundle = orders.total_orders(tenth + others)
    assert [(t.currency, t.pay_status, t.orders, t.amount) for t in by_status] == [
        ("EUR", "PAID", 1, Decimal("7.50")),
        ("EUR", "REFUNDED", 2, Decimal("12.36")),
        ("GBP", "PAID", 10, Decimal("1.00")),  # 0.1 ten times is exactly 1, not 0.9999999999999999
    ]
    assert by_status[1].without_amount == 1
    assert [(t.bundle_id, t.currency, t.orders, t.amount) for t in by_bundle] == [
        ("DP1", "EUR", 2, Decimal("12.36")),
        ("DP1", "GBP", 10, Decimal("1.00")),
        ("DP2", "EUR", 1, Decimal("7.50")),
    ]


def test_an_order_found_by_two_lookups_is_exported_and_counted_once() -> None:
    shared = make_order("LF1", amount="5.00")
    keys = KeyInput(
        "test",
        [
            KeyRow(2, "order_id", "LF1"),
            KeyRow(3, "sim_id", VALID_ICCID),
            KeyRow(4, "order_id", "X"),
        ],
    )
    results = [
        LookupResult(Lookup("order_id", "LF1"), (shared,)),
        LookupResult(Lookup("sim_id", VALID_ICCID), (make_order("LF2"), shared)),
        LookupResult(Lookup("order_id", "X")),
    ]
    export = orders.build_export(keys, results, UTC)
    assert [(e.order.order_id, e.lookup.kind) for e in export.orders] == [
        ("LF1", "order_id"),
        ("LF2", "sim_id"),
    ]
    assert [(t.orders, t.amount) for t in export.by_status] == [(2, Decimal("6.00"))]
    assert [(m.row, m.key, m.reason) for m in export.not_found] == [(4, "X", "not_found")]


# ---------------------------------------------------------------- lookups (mock transport)


class FakeOrderApi:
    """Answers GET /mall/order from a dict of orders; counts requests in flight."""

    def __init__(self, by_key: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
        self.by_key = by_key
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(0.01)
            params = dict(request.url.params)
            if params.get("partnerCode") != seed.PARTNER:
                return envelope("1002", "unknown partner")
            kind = next(k for k in wire.ORDER_KEYS if params.get(k))
            if params[kind] == "bad":
                return envelope("1001", f"invalid {kind}")
            found = self.by_key.get((kind, params[kind]))
            if found is None:
                return envelope("1007", "order not found")
            return envelope("0000", "success", {"orders": found})
        finally:
            with self.lock:
                self.in_flight -= 1

    def client(self, partner: str = seed.PARTNER, max_in_flight: int = 4) -> LinksfieldClient:
        return LinksfieldClient(
            "https://api.test/topup",
            partner,
            transport=httpx.MockTransport(self),
            pacer=RequestPacer(10_000, max_in_flight),
            retry=RetryPolicy(max_attempts=1),
        )


def envelope(code: str, message: str, data: Any = None) -> httpx.Response:
    return httpx.Response(200, json={"code": code, "message": message, "data": data})


def wire_order(order_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "amount": "1.00",
        "currency": "GBP",
        "pay_status": "PAID",
        **fields,
    }


def test_lookups_run_concurrently_within_the_pacer_and_keep_input_order() -> None:
    api = FakeOrderApi({("order_id", f"LF{i}"): [wire_order(f"LF{i}")] for i in range(40)})
    lookups = [Lookup("order_id", f"LF{i}") for i in range(40)] + [
        Lookup("order_id", "missing"),
        Lookup("purchase_order_id", "bad"),
    ]
    seen: list[Lookup] = []
    with api.client(max_in_flight=4) as client:
        results = orders.run_lookups(client, lookups, on_result=lambda r: seen.append(r.lookup))
    assert [r.lookup for r in results] == lookups
    assert sorted(seen, key=lookups.index) == lookups
    assert api.most_in_flight == 4
    assert results[0].orders[0].order_id == "LF0"
    assert results[40] == LookupResult(Lookup("order_id", "missing"))
    assert results[41].rejected == "invalid purchase_order_id"


def test_an_error_for_the_whole_account_stops_the_export() -> None:
    api = FakeOrderApi({})
    lookups = [Lookup("order_id", f"LF{i}") for i in range(50)]
    with api.client(partner="P000000") as client, pytest.raises(errors.UnknownPartner):
        orders.run_lookups(client, lookups)
    assert api.requests < len(lookups)  # the rest were cancelled


@pytest.mark.parametrize("amount", ["12,36", "NaN", "Infinity"])
def test_an_unusable_amount_stops_the_export_naming_the_key(amount: str) -> None:
    api = FakeOrderApi({("order_id", "LF1"): [wire_order("LF1", amount=amount)]})
    with api.client() as client, pytest.raises(errors.EnvelopeError, match="order_id LF1"):
        orders.run_lookups(client, [Lookup("order_id", "LF1")])


# ---------------------------------------------------------------- files


def an_export(tmp_path: Path, zone: str = "UTC") -> orders.OrderExport:
    keys = KeyInput(
        "keys.csv",
        [
            KeyRow(2, "sim_id", "8944500000000000004"),
            KeyRow(3, "order_id", "NOPE"),
            KeyRow(4, "sim_id", "123", "bad_length"),
        ],
    )
    found = (
        make_order(
            "LF1",
            sim_id="8944500000000000004",
            amount="1234.5",
            channel="=cmd",  # fields beyond the contract's
            meta={"shop": "UK"},
        ),
        make_order("LF2", sim_id="8944500000000000004", amount="-12.36", pay_status="REFUNDED"),
        make_order("LF3", sim_id="8944500000000000004", paid_at="yesterday", amount=None),
    )
    results = [
        LookupResult(Lookup("sim_id", "8944500000000000004"), found),
        LookupResult(Lookup("order_id", "NOPE")),
    ]
    return orders.build_export(keys, results, orders.zone_named(zone))


def test_workbook_cells_are_typed_for_finance(tmp_path: Path) -> None:
    export = an_export(tmp_path, "Europe/London")
    path = tmp_path / "out.xlsx"
    orders.write_xlsx(export, path)
    workbook = openpyxl.load_workbook(path)
    assert workbook.sheetnames == ["Orders", "Totals", "Not found"]
    sheet = workbook["Orders"]
    assert "Times are in Europe/London" in str(sheet["A1"].value)
    header = [cell.value for cell in sheet[2]]
    assert header == [*wire.ORDER_FIELDS, "lookup_kind", "lookup_key", "channel", "meta.shop"]
    col = {name: index for index, name in enumerate(header)}
    first, second, third = (list(sheet[row]) for row in (3, 4, 5))
    amount = first[col["amount"]]
    assert amount.data_type == "n" and amount.number_format == "#,##0.00"
    assert Decimal(str(amount.value)) == Decimal("1234.5")
    assert Decimal(str(second[col["amount"]].value)) == Decimal("-12.36")
    assert third[col["amount"]].value is None
    for cell in (first[col["sim_id"]], first[col["lookup_key"]], first[col["order_id"]]):
        assert cell.data_type == "s" and cell.number_format == "@"
    assert first[col["sim_id"]].value == "8944500000000000004"
    created = first[col["created_at"]]
    assert created.value == datetime(2026, 1, 2, 3, 4, 5)
    assert created.number_format == "yyyy-mm-dd hh:mm:ss"
    assert third[col["paid_at"]].value is None  # unreadable: left empty, and warned about
    assert export.warnings and "paid_at 'yesterday'" in export.warnings[0]
    assert first[col["channel"]].value == "'=cmd"  # neutralised, not a formula
    assert first[col["meta.shop"]].value == "UK"
    assert first[col["periods"]].value == 1

    not_found = sheet_rows(path, "Not found")
    assert [(r["Row"], r["Key kind"], r["Key"], r["Reason"]) for r in not_found] == [
        (3, "order_id", "NOPE", "not_found"),
        (4, "sim_id", "123", "bad_length"),
    ]
    totals = sheet_rows(path, "Totals")
    assert [(t["Currency"], t["Pay status"], t["Orders"]) for t in totals][:2] == [
        ("GBP", "PAID", 2),
        ("GBP", "REFUNDED", 1),
    ]
    assert "1 order(s) have no amount" in str(workbook["Totals"]["A1"].value)


def test_amounts_are_stored_as_their_exact_digits(tmp_path: Path) -> None:
    path = tmp_path / "out.xlsx"
    orders.write_xlsx(an_export(tmp_path), path)
    with zipfile.ZipFile(path) as archive:
        names = {name for name in archive.namelist() if name.startswith("xl/worksheets/")}
        xml = "".join(archive.read(name).decode() for name in sorted(names))
    values = set(re.findall(r"<v>([^<]*)</v>", xml))
    assert {"1234.5", "-12.36"} <= values


def test_csv_keeps_exact_amounts_and_api_times(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    export = an_export(tmp_path)
    orders.write_csv(export, path)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["amount"] for row in rows] == ["1234.5", "-12.36", ""]
    assert rows[0]["created_at"] == "2026-01-02 03:04:05"
    assert rows[2]["paid_at"] == "yesterday"
    assert rows[0]["channel"] == "'=cmd" and rows[0]["sim_id"] == "8944500000000000004"
    missing = tmp_path / "missing.csv"
    orders.write_not_found_csv(export, missing)
    assert missing.read_text(encoding="utf-8").splitlines()[1].startswith("3,order_id,NOPE")


# ---------------------------------------------------------------- against the sandbox


@pytest.fixture
def fast_sandbox(make_sandbox: MakeSandbox) -> SandboxServer:
    return make_sandbox(FAST, sims=WORLD)


@pytest.fixture
def fast_client(fast_sandbox: SandboxServer) -> Iterator[LinksfieldClient]:
    pacer = RequestPacer(1000, 16)
    with LinksfieldClient(fast_sandbox.base_url, seed.PARTNER, pacer=pacer) as client:
        yield client


def expected_totals(found: Sequence[dict[str, Any]]) -> dict[tuple[str, str], tuple[int, Decimal]]:
    totals: dict[tuple[str, str], tuple[int, Decimal]] = defaultdict(lambda: (0, Decimal(0)))
    for order in found:
        count, amount = totals[(order["currency"], order["pay_status"])]
        totals[(order["currency"], order["pay_status"])] = (
            count + 1,
            amount + Decimal(order["amount"]),
        )
    return dict(totals)


def exported_totals(export: orders.OrderExport) -> dict[tuple[str, str], tuple[int, Decimal]]:
    return {(t.currency, t.pay_status): (t.orders, t.amount) for t in export.by_status}


def test_totals_of_200_order_ids_match_the_sandbox_to_the_cent(
    tmp_path: Path, fast_sandbox: SandboxServer, fast_client: LinksfieldClient
) -> None:
    world = fast_sandbox.state.orders(seed.PARTNER)
    chosen = world[:: max(1, len(world) // 200)][:200]
    assert len(chosen) == 200 and {o["currency"] for o in chosen} == {"GBP", "EUR", "USD"}
    keys = KeyInput("ids", [KeyRow(i + 2, "order_id", o["order_id"]) for i, o in enumerate(chosen)])
    results = orders.run_lookups(fast_client, keys.lookups)
    export = orders.build_export(keys, results, UTC)
    assert exported_totals(export) == expected_totals(chosen)
    assert not export.not_found

    path = tmp_path / "orders.xlsx"
    orders.write_xlsx(export, path)
    from_sheet = {
        (row["Currency"], row["Pay status"]): (row["Orders"], Decimal(str(row["Amount"])))
        for row in sheet_rows(path, "Totals")
        if row["Totals by"] == orders.BY_STATUS
    }
    assert from_sheet == expected_totals(chosen)


def test_mixed_keys_unknown_id_and_invalid_row(
    tmp_path: Path, fast_sandbox: SandboxServer, fast_client: LinksfieldClient
) -> None:
    world = fast_sandbox.state.orders(seed.PARTNER)
    purchases: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for order in world:
        purchases[order["purchase_order_id"]].append(order)
    # A retried checkout whose newest order is not the paid one: the API answers the paid one.
    same_purchase = next(
        group
        for group in purchases.values()
        if max(group, key=lambda o: o["created_at"])["pay_status"] != "PAID"
        and any(o["pay_status"] == "PAID" for o in group)
    )
    retried = same_purchase[0]
    latest_paid = max(
        (o for o in same_purchase if o["pay_status"] == "PAID"), key=lambda o: o["paid_at"]
    )
    per_sim = Counter(o["sim_id"] for o in world)
    sim = next(
        o["sim_id"] for o in world if per_sim[o["sim_id"]] > 1 and o["sim_id"] != retried["sim_id"]
    )
    # The API lists a SIM's orders newest first.
    of_sim = sorted(
        (o for o in world if o["sim_id"] == sim),
        key=lambda o: (o["created_at"], o["order_id"]),
        reverse=True,
    )
    by_id = next(o for o in world if o["sim_id"] not in (sim, retried["sim_id"]))
    path = write_csv(
        tmp_path / "keys.csv",
        [
            ["purchase_order_id", "order_id", "iccid"],
            [retried["purchase_order_id"], "", ""],
            ["", by_id["order_id"], ""],
            ["", "", sim],
            ["", of_sim[-1]["order_id"], ""],  # also found by the ICCID row: exported once
            ["", "LF999999999", ""],
            ["", "", sim[:-1] + str((int(sim[-1]) + 1) % 10)],
        ],
    )
    keys = orders.read_keys(path)
    export = orders.build_export(keys, orders.run_lookups(fast_client, keys.lookups), UTC)

    expected = [latest_paid, by_id, *of_sim]
    assert [e.order.order_id for e in export.orders] == [o["order_id"] for o in expected]
    assert [(m.row, m.kind, m.reason) for m in export.not_found] == [
        (6, "order_id", "not_found"),
        (7, "sim_id", "bad_checksum"),
    ]
    assert exported_totals(export) == expected_totals(expected)

    out = tmp_path / "orders.xlsx"
    orders.write_xlsx(export, out)
    rows = sheet_rows(out, "Orders")
    assert [(r["order_id"], r["lookup_kind"]) for r in rows][:2] == [
        (latest_paid["order_id"], "purchase_order_id"),
        (by_id["order_id"], "order_id"),
    ]
    assert all(r["sim_id"] == o["sim_id"] for r, o in zip(rows, expected, strict=True))
    assert all(isinstance(r["created_at"], datetime) for r in rows)


def test_group_keys_cover_every_sim_of_the_group(
    fast_sandbox: SandboxServer, fast_client: LinksfieldClient
) -> None:
    members = fast_client.list_members(seed.PILOT_GROUP)
    assert members == fast_sandbox.state.members(seed.PILOT_GROUP)
    keys = orders.group_keys(seed.PILOT_GROUP, members)
    export = orders.build_export(keys, orders.run_lookups(fast_client, keys.lookups), UTC)
    world = fast_sandbox.state.orders(seed.PARTNER)
    expected = {o["order_id"] for o in world if o["sim_id"] in set(members)}
    assert expected and {e.order.order_id for e in export.orders} == expected
    without_orders = set(members) - {o["sim_id"] for o in world}
    assert {m.key for m in export.not_found} == without_orders
    assert all(m.row is None and m.reason == "not_found" for m in export.not_found)
