"""`lf-bulk notify serve|list|export` and `orders export --from-pushes`, as a user runs them."""

from __future__ import annotations

import csv
import json
import os
import shutil
import ssl
from decimal import Decimal
from pathlib import Path

import httpx
import openpyxl
import pytest
from click.testing import CliRunner, Result
from httphelp import http_client, self_signed_certificate
from notifyhelp import KEY_HEX, KEY_ID, event, push, start_receiver

from jobs.cli import cli
from lf_bulk.notify.receiver import parse_keys, running_receiver


def run(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def formula_plan(body: dict[str, object]) -> dict[str, object]:
    data = body["data"]
    assert isinstance(data, dict)
    data["servicePlanShowName"] = "=cmd|' /C calc'!A0"
    return body


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home with four orders pushed, one of them three times, in two currencies."""
    home = tmp_path / "home"
    with (
        running_receiver(home, parse_keys(KEY_ID, KEY_HEX)) as url,
        http_client() as client,
    ):
        for n, body in enumerate(
            [
                event("O1", amount="10.10"),
                event("O2", amount="0.20", iccid="8988247000001234567"),
                event("O1", amount="10.10"),
                event("O3", amount="5", currency="USD"),
                formula_plan(event("O4", amount="1.05")),
                event("O1", amount="10.10"),
            ]
        ):
            body["transactionId"] = f"T{n}"
            assert push(client, url, body).status_code == 200
    return home


def test_list_json_is_one_object_per_order_with_exact_text(home: Path) -> None:
    result = run(["--home", str(home), "notify", "list", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["order_id"] for r in rows] == ["O1", "O2", "O3", "O4"]
    assert rows[0]["amount"] == "10.10" and rows[2]["amount"] == "5.00"
    assert rows[1]["iccid"] == "8988247000001234567"
    assert "total EUR: 3 orders, 11.35" in result.stderr
    assert "total USD: 1 order, 5.00" in result.stderr
    assert "6 deliveries" in result.stderr


def test_list_table_and_time_filters(home: Path) -> None:
    result = run(["--home", str(home), "notify", "list", "--since", "1h"])
    assert result.exit_code == 0 and result.stdout.count("\nO") == 4
    later = run(["--home", str(home), "notify", "list", "--since", "2999-01-01"])
    assert later.exit_code == 0 and "O1" not in later.stdout
    earlier = run(["--home", str(home), "notify", "list", "--until", "2000-01-01T00:00Z"])
    assert "O1" not in earlier.stdout
    bad = run(["--home", str(home), "notify", "list", "--since", "yesterday"])
    assert bad.exit_code == 2 and "not a time" in bad.stderr


def test_export_xlsx_has_text_iccids_exact_amounts_and_totals(home: Path, tmp_path: Path) -> None:
    target = tmp_path / "pushes.xlsx"
    result = run(["--home", str(home), "notify", "export", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(target)
    book = openpyxl.load_workbook(target)
    sheet = book["Pushes"]
    header = [c.value for c in sheet[2]]
    assert header == [
        "order_id", "order_no", "iccid", "plan", "periods", "amount", "currency", "pay_id",
        "pay_time", "start_date", "expire_date", "received_at",
    ]  # fmt: skip
    rows = [[c.value for c in row] for row in sheet.iter_rows(min_row=3)]
    assert [r[0] for r in rows] == ["O1", "O2", "O3", "O4"]  # one row per order
    iccid = sheet.cell(row=3, column=3)
    assert iccid.data_type == "s" and iccid.value == "89852420180910340793"
    assert [Decimal(str(r[5])) for r in rows] == [
        Decimal("10.10"),
        Decimal("0.20"),
        5,
        Decimal("1.05"),
    ]
    assert rows[3][3] == "'=cmd|' /C calc'!A0"  # neutralised
    facts = {
        row[0].value: row[1].value for row in book["Summary"].iter_rows(min_row=3) if row[0].value
    }
    assert Decimal(str(facts["Total EUR"])) == Decimal("11.35")
    assert facts["Orders in USD"] == 1 and facts["Deliveries (re-sends included)"] == 6


def test_export_csv_is_the_rows_alone(home: Path, tmp_path: Path) -> None:
    target = tmp_path / "pushes.csv"
    result = run(["--home", str(home), "notify", "export", "-o", str(target)])
    assert result.exit_code == 0, result.output
    with target.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["order_id"] for r in rows] == ["O1", "O2", "O3", "O4"]
    assert rows[0]["amount"] == "10.10" and rows[3]["plan"].startswith("'=")
    assert "total EUR: 3 orders, 11.35" in result.stderr


def test_orders_export_from_pushes_has_the_order_export_columns_and_totals(
    home: Path, tmp_path: Path
) -> None:
    target = tmp_path / "finance.xlsx"
    result = run(["--home", str(home), "orders", "export", "--from-pushes", "-o", str(target)])
    assert result.exit_code == 0, result.output
    book = openpyxl.load_workbook(target)
    assert book.sheetnames == ["Orders", "Totals", "Not found"]
    orders = book["Orders"]
    header = [c.value for c in orders[2]]
    assert header[:4] == ["order_id", "purchase_order_id", "sim_id", "bundle_id"]
    ids = [row[0].value for row in orders.iter_rows(min_row=3)]
    assert ids == ["O1", "O2", "O3", "O4"]
    totals = {
        (row[1].value, row[2].value): Decimal(str(row[6].value))
        for row in book["Totals"].iter_rows(min_row=3)
        if row[0].value == "currency and pay status"
    }
    assert totals == {("EUR", "PAID"): Decimal("11.35"), ("USD", "PAID"): Decimal("5")}
    csv_target = tmp_path / "finance.csv"
    as_csv = run(["--home", str(home), "orders", "export", "--from-pushes", "--since", "1d", "-o", str(csv_target)])  # fmt: skip
    assert as_csv.exit_code == 0 and "total EUR PAID: 3 orders, 11.35" in as_csv.stderr
    assert run(["--home", str(home), "orders", "export", "--since", "1d"]).exit_code == 2


def test_serve_refuses_plain_http_on_another_address(tmp_path: Path) -> None:
    env = {"LF_BULK_NOTIFY_KEY": KEY_HEX}
    result = run(
        ["--home", str(tmp_path), "notify", "serve", "--host", "0.0.0.0", "--key-id", "k"], env
    )
    assert result.exit_code == 2
    assert "--certfile" in result.stderr and "docs/notify.md" in result.stderr


def test_serve_needs_the_key_from_the_environment_or_a_config_never_a_flag(tmp_path: Path) -> None:
    args = ["--home", str(tmp_path), "notify", "serve", "--key-id", "k"]
    missing = run(args, {"LF_BULK_NOTIFY_KEY": ""})
    assert missing.exit_code == 1 and "LF_BULK_NOTIFY_KEY" in missing.stderr
    flag = run([*args, "--notify-key", KEY_HEX], {"LF_BULK_NOTIFY_KEY": ""})
    assert flag.exit_code == 2 and "No such option" in flag.stderr
    assert "--notify-key" not in run(["notify", "serve", "--help"]).stdout
    secret = "zz-not-hex-secret-value"
    bad = run(args, {"LF_BULK_NOTIFY_KEY": secret})
    assert bad.exit_code == 2 and "not hexadecimal" in bad.stderr and secret not in bad.output
    config = tmp_path / "lf-bulk.toml"
    config.write_text(f'notify_key = "{secret}"\n')
    os.chmod(config, 0o600)
    from_config = run(["--config", str(config), *args], {"LF_BULK_NOTIFY_KEY": ""})
    assert from_config.exit_code == 2 and str(config) in from_config.stderr
    assert secret not in from_config.output


def test_serve_as_a_process_stores_and_its_log_never_holds_the_key(tmp_path: Path) -> None:
    receiver = start_receiver(tmp_path / "home", verbose=True)
    with http_client() as client:
        assert push(client, receiver.url, event("O1")).status_code == 200
        forged = client.post(
            receiver.url, content=b"{}", headers={"x-lf-signature": f"{KEY_ID}/00"}
        )
        assert forged.status_code == 401
    log = receiver.stop()
    assert "receiving pushes at http://127.0.0.1:" in log and "push refused (401" in log
    assert KEY_HEX not in log and KEY_HEX.upper() not in log
    listed = run(["--home", str(tmp_path / "home"), "notify", "list", "--format", "json"])
    assert [r["order_id"] for r in json.loads(listed.stdout)] == ["O1"]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_serve_refuses_certificate_files_it_cannot_use(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    args = ["--home", str(tmp_path / "home"), "notify", "serve", "--key-id", KEY_ID, "--port", "0"]
    env = {"LF_BULK_NOTIFY_KEY": KEY_HEX}
    wrong = run([*args, "--certfile", str(bad), "--keyfile", str(key)], env)
    assert wrong.exit_code == 1 and str(bad) in wrong.stderr and "PEM" in wrong.stderr
    half = run([*args, "--certfile", str(cert)], env)
    assert half.exit_code == 2 and "--keyfile" in half.stderr


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_serve_https_with_certfile_and_keyfile(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    receiver = start_receiver(tmp_path / "home", "--certfile", str(cert), "--keyfile", str(key))
    try:
        assert receiver.url.startswith("https://127.0.0.1:")
        with httpx.Client(verify=ssl.create_default_context(cafile=str(cert))) as client:
            assert push(client, receiver.url, event("O1")).status_code == 200
    finally:
        receiver.stop()
