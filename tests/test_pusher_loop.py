"""The full loop of `make demo`: `orders create` on a pushing sandbox -> Recharge Success pushes
-> `notify serve` -> `notify export`, whose totals per currency equal the top-up totals."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook

from jobs import demo


def test_the_push_loop_balances(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home, reports = tmp_path / "home", tmp_path / "reports"
    lines: list[str] = []

    loop = demo.push_loop(home, reports, say=lines.append)

    expected: dict[str, Decimal] = {}
    for _, amount, currency in demo.TOPUPS:
        expected[currency] = expected.get(currency, Decimal(0)) + Decimal(amount)
    assert loop.exit_code == 0, capsys.readouterr().err
    assert loop.topped_up == expected == {
        "EUR": Decimal("99.90"), "GBP": Decimal("25.50"), "USD": Decimal("12.00")
    }  # fmt: skip
    assert loop.pushed == expected and loop.totals_match
    assert loop.push_counts == {"delivered": len(demo.TOPUPS)}
    walk_through = "\n".join(lines)
    assert "notify serve" in walk_through and "sandbox serve" in walk_through
    assert "--push-url" in walk_through and demo.PUSH_KEY_HEX not in walk_through
    workbook = load_workbook(reports / "pushes.xlsx", read_only=True)
    assert {"Summary", "Pushes"} <= set(workbook.sheetnames)
    assert "orders create" in capsys.readouterr().err


def test_a_loop_that_does_not_balance_is_said(tmp_path: Path) -> None:
    """Totals that differ (or a failed step) never read as a balanced loop."""
    balanced = {"EUR": Decimal("1.00")}
    assert demo.LoopResult(0, balanced, dict(balanced), {}).totals_match
    assert not demo.LoopResult(0, balanced, {"EUR": Decimal("1.01")}, {}).totals_match
    assert not demo.LoopResult(3, balanced, dict(balanced), {}).totals_match
    assert not demo.LoopResult(0, {}, {}, {}).totals_match
