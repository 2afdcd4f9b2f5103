"""`lf-bulk orders export` end to end: CliRunner against the real sandbox over 127.0.0.1."""

from __future__ import annotations

import csv
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import openpyxl
import pytest
from click.testing import CliRunner, Result

from jobs import context
from jobs.cli import cli
from lf_bulk.client import LinksfieldClient
from lf_bulk.sandbox import seed
from lf_bulk.sandbox.server import SandboxServer

from clihelp import served_sandbox_args

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")

MakeSandbox = Callable[..., SandboxServer]  # the `make_sandbox` fixture of conftest.py
FAST = "rate=1000,concurrency=20"
WORLD = 10_000
VALID_ICCID = "89852420180910340793"


def run(args: Sequence[str], *, expect: int = 0, stdin: bytes | None = None) -> Result:
    """Invoke the CLI; on an unexpected exit code, fail showing everything it printed."""
    result = CliRunner().invoke(cli, ["--no-progress", *args], input=stdin)
    unexpected = result.exception is not None and not isinstance(result.exception, SystemExit)
    if result.exit_code != expect or unexpected or "Traceback" in result.stderr:
        raise AssertionError(
            f"exit {result.exit_code} (expected {expect}) for {list(args)}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}\n"
            f"--- exception\n{result.exception!r}"
        )
    return result


def against(server: SandboxServer, *args: str) -> list[str]:
    return [*served_sandbox_args(server.base_url), "--rate", "1000", "--max-in-flight", "16", *args]


@pytest.fixture
def fast_sandbox(make_sandbox: MakeSandbox) -> SandboxServer:
    return make_sandbox(FAST, sims=WORLD)


@pytest.fixture
def no_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any attempt to reach the API fail the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the API must not be called")

    monkeypatch.setattr(context, "open_session", refuse)
    monkeypatch.setattr(LinksfieldClient, "find_orders", refuse)


def write_csv(path: Path, rows: Sequence[Sequence[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows(rows)
    return path


def sheet_rows(path: Path, name: str) -> list[dict[str, Any]]:
    sheet = openpyxl.load_workbook(path)[name]
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    return [dict(zip([str(h) for h in rows[0]], row, strict=True)) for row in rows[1:]]


def totals_of(found: Sequence[dict[str, Any]]) -> dict[tuple[str, str], tuple[int, Decimal]]:
    totals: dict[tuple[str, str], tuple[int, Decimal]] = defaultdict(lambda: (0, Decimal(0)))
    for order in found:
        key = (order["currency"], order["pay_status"])
        count, amount = totals[key]
        totals[key] = (count + 1, amount + Decimal(order["amount"]))
    return dict(totals)


def sheet_totals(path: Path) -> dict[tuple[str, str], tuple[int, Decimal]]:
    return {
        (row["Currency"], row["Pay status"]): (row["Orders"], Decimal(str(row["Amount"])))
        for row in sheet_rows(path, "Totals")
        if row["Totals by"] == "currency and pay status"
    }


# ---------------------------------------------------------------- usage and bad input


def test_help_names_the_keys_and_outputs() -> None:
    text = run(["orders", "export", "--help"]).stdout
    for word in ("purchase_order_id", "--group", "--timezone", ".csv", "Not found"):
        assert word in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["orders", "export"], "either FILE or --group"),
        (["orders", "export", "x.csv", "--group", "G1"], "either FILE or --group"),
        (["orders", "export", "--group", "G1", "-o", "out.txt"], "use a .xlsx or .csv"),
        (["orders", "export", "--group", "G1", "--timezone", "Mars/Olympus"], "unknown time zone"),
    ],
)
def test_usage_errors_exit_2_before_any_lookup(no_api: None, args: list[str], message: str) -> None:
    assert message in run(args, expect=2).stderr


def test_a_file_without_key_columns_exits_2_naming_them(tmp_path: Path, no_api: None) -> None:
    path = write_csv(tmp_path / "sims.csv", [["msisdn", "amount"], ["447700900123", "1.00"]])
    result = run(["orders", "export", str(path), "-o", str(tmp_path / "o.xlsx")], expect=2)
    assert str(path) in result.stderr and "Columns seen: 'msisdn', 'amount'" in result.stderr
    assert not (tmp_path / "o.xlsx").exists()


def test_a_file_whose_keys_are_all_invalid_exits_2(tmp_path: Path, no_api: None) -> None:
    path = write_csv(tmp_path / "sims.csv", [["iccid"], ["89852420180910340794"]])
    result = run(["orders", "export", str(path), "-o", str(tmp_path / "o.xlsx")], expect=2)
    assert "row 2: bad_checksum" in result.stderr


# ---------------------------------------------------------------- exports


def test_mixed_file_exports_found_orders_and_reports_the_rest(
    tmp_path: Path, fast_sandbox: SandboxServer
) -> None:
    world = fast_sandbox.state.orders(seed.PARTNER)
    first, second, third = world[0], world[10], world[20]
    path = write_csv(
        tmp_path / "keys.csv",
        [
            ["purchase_order_id", "order_id", "iccid"],
            ["", first["order_id"], ""],
            ["", "", third["sim_id"]],
            ["", "LF000000000", ""],
            ["", "", "8985242018091034079"],
            [second["purchase_order_id"], "", ""],
        ],
    )
    out = tmp_path / "out" / "orders.xlsx"
    result = run(against(fast_sandbox, "orders", "export", str(path), "-o", str(out)))
    assert result.stdout.strip() == str(out)
    assert "1 row(s) of" in result.stderr and "invalid key" in result.stderr
    assert "Times are in UTC" in result.stderr

    rows = sheet_rows(out, "Orders")
    exported = {row["order_id"] for row in rows}
    assert {first["order_id"], third["order_id"]} <= exported
    assert len(exported) == len(rows)
    assert all(row["sim_id"].isdigit() and len(row["sim_id"]) in (19, 20) for row in rows)
    assert all(isinstance(row["created_at"], datetime) for row in rows)
    not_found = sheet_rows(out, "Not found")
    assert [(r["Row"], r["Key"], r["Reason"]) for r in not_found] == [
        (4, "LF000000000", "not_found"),
        (5, "8985242018091034079", "bad_checksum"),
    ]


def test_group_export_lists_the_orders_of_every_sim(
    tmp_path: Path, fast_sandbox: SandboxServer
) -> None:
    members = set(fast_sandbox.state.members(seed.PILOT_GROUP))
    expected = [o for o in fast_sandbox.state.orders(seed.PARTNER) if o["sim_id"] in members]
    out = tmp_path / "pilot.xlsx"
    run(against(fast_sandbox, "orders", "export", "--group", seed.PILOT_GROUP, "-o", str(out)))
    rows = sheet_rows(out, "Orders")
    assert sorted(row["order_id"] for row in rows) == sorted(o["order_id"] for o in expected)
    assert {row["lookup_kind"] for row in rows} == {"sim_id"}
    assert sheet_totals(out) == totals_of(expected)
    silent = members - {o["sim_id"] for o in expected}
    assert {r["Key"] for r in sheet_rows(out, "Not found")} == silent


def test_unknown_group_is_a_clear_error(tmp_path: Path, fast_sandbox: SandboxServer) -> None:
    result = run(
        against(
            fast_sandbox, "orders", "export", "--group", "G404", "-o", str(tmp_path / "x.xlsx")
        ),
        expect=2,  # a usage error: nothing was exported
    )
    assert "API error 1004" in result.stderr  # the code itself, not digits of a time or path


def test_csv_output_puts_orders_in_the_file_its_path_on_stdout_and_totals_beside_it(
    tmp_path: Path, fast_sandbox: SandboxServer
) -> None:
    world = fast_sandbox.state.orders(seed.PARTNER)[:30]
    path = write_csv(
        tmp_path / "ids.csv", [["order_id"], *[[o["order_id"]] for o in world], ["NO"]]
    )
    out = tmp_path / "orders.csv"
    result = run(against(fast_sandbox, "orders", "export", str(path), "-o", str(out)))
    with out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["order_id"] for row in rows] == [o["order_id"] for o in world]
    assert [row["amount"] for row in rows] == [o["amount"] for o in world]
    assert result.stdout.splitlines() == [str(out)]
    with (tmp_path / "orders.totals.csv").open(newline="", encoding="utf-8") as handle:
        totals = [r for r in csv.DictReader(handle) if r["totals_by"] == "currency and pay status"]
    expected = {k: (n, f"{a:.2f}") for k, (n, a) in totals_of(world).items()}
    assert {(r["currency"], r["pay_status"]): (int(r["orders"]), r["amount"]) for r in totals} == (
        expected
    )
    for (currency, status), (count, amount) in expected.items():
        noun = "order" if count == 1 else "orders"
        assert f"total {currency} {status}: {count} {noun}, {amount}" in result.stderr
    missing = tmp_path / "orders.not-found.csv"
    assert "NO,not_found" in missing.read_text(encoding="utf-8")


def test_default_output_is_a_timestamped_workbook_in_the_current_directory(
    tmp_path: Path, fast_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    order = fast_sandbox.state.orders(seed.PARTNER)[0]
    stdin = f"order_id\n{order['order_id']}\n".encode()
    result = run(
        against(fast_sandbox, "orders", "export", "-", "--timezone", "Europe/London"), stdin=stdin
    )
    written = Path(result.stdout.strip())
    assert written.parent == Path(".") and written.name.startswith("orders-")
    assert written.suffix == ".xlsx" and (tmp_path / written).is_file()
    note = openpyxl.load_workbook(tmp_path / written)["Orders"]["A1"].value
    assert "Times are in Europe/London" in str(note)


@pytest.mark.slow
def test_5000_order_ids_at_the_contract_rate_limit(
    tmp_path: Path, make_sandbox: MakeSandbox
) -> None:
    """Issue 5 acceptance as specified: 10 requests/s, 3 in flight, so about 8.5 minutes."""
    server = make_sandbox("", sims=seed.DEFAULT_SIMS)
    world = server.state.orders(seed.PARTNER)
    chosen = world[:: len(world) // 5000][:5000]
    assert len(chosen) == 5000 and {o["currency"] for o in chosen} == {"GBP", "EUR", "USD"}
    path = write_csv(tmp_path / "ids.csv", [["order_id"], *[[o["order_id"]] for o in chosen]])
    out = tmp_path / "orders.xlsx"
    started = time.monotonic()
    # 5,000 look-ups are more than a day's quota leaves after its reserve: allow the day's worth.
    quota = ["--daily-quota", "5000", "--quota-reserve", "0"]
    result = run(
        [
            *served_sandbox_args(server.base_url),
            *quota,
            "orders",
            "export",
            str(path),
            "-o",
            str(out),
        ]
    )
    elapsed = time.monotonic() - started
    click.echo(f"\n5000 lookups: {elapsed:.1f}s, {5000 / elapsed:.2f} lookups/s", err=True)
    assert "5000 orders from 5000 lookups" in result.stderr
    assert sheet_totals(out) == totals_of(chosen)
    assert not sheet_rows(out, "Not found")
