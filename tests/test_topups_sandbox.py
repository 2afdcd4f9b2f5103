"""`orders create` against the real sandbox application (in-process, fake clock) under dropped
answers, 503s and SYSTEM_BUSY: exactly one order per row at the sandbox, totals exact."""

from __future__ import annotations

import csv
import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from lf_bulk import runs, topups
from lf_bulk.exitcodes import ExitCode
from lf_bulk.sandbox import cards, seed
from lf_bulk.settings import Settings
from tests.inprocess import World, open_world

FAULTS = "drop=0.15,5xx=0.05,busy=0.05"
HEADER = ["iccid", "package_code", "periods", "amount", "currency", "pay_id"]


def write_orders(world: World, path: Path, count: int) -> dict[str, Decimal]:
    """`count` top-ups of distinct active cards (price x periods); the expected totals."""
    sims = world.state.iccids_with(card_status=cards.CARD_ACTIVE, limit=count)
    assert len(sims) == count
    totals: dict[str, Decimal] = Counter()  # type: ignore[assignment]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for n, sim in enumerate(sims):
            card = world.state.card(sim)
            assert card is not None
            plan = cards.plans_for(card["area"])[n % 2]
            periods = 1 + n % 3
            amount = Decimal(plan.price) * periods
            totals[plan.currency] += amount
            writer.writerow([sim, plan.package_code, periods, f"{amount:f}", plan.currency,
                             f"pi_topup_{n}"])  # fmt: skip
    return dict(totals)


def one_order_per_row_under_faults(tmp_path: Path, rows: int, fault_seed: int) -> None:
    world = open_world(tmp_path, f"{FAULTS},seed={fault_seed}", sims=rows * 5 // 2 + 100)
    try:
        expected = write_orders(world, tmp_path / "orders.csv", rows)
        settings = Settings(env="uat", base_url="http://sandbox.test", home=tmp_path / "home")
        report = tmp_path / "report"
        result = topups.start_orders(
            world.journal, world.client, settings, topups.read_orders(tmp_path / "orders.csv"),
            report_dir=report,
        )  # fmt: skip
        for _ in range(5):  # a look-up that failed four times in a row waits for a resume
            if result.exit_code != ExitCode.NOT_FINISHED:
                break
            result = runs.drive(world.journal, world.client, result.run_id, settings)
        assert result.exit_code == ExitCode.OK, result
        with (report / "items.csv").open(newline="") as f:
            items = list(csv.DictReader(f))
        assert len(items) == rows and len({i["row"] for i in items}) == rows
        assert {i["outcome"] for i in items} <= {"created", "exists"}
        # The sandbox's own log: each order acted on once, none ever sent again after that.
        calls = world.state.vshop_calls("SynOrderInfo")
        acted = Counter(c.device_code for c in calls if c.acted)
        assert len(acted) == rows and set(acted.values()) == {1}
        assert not [c for c in calls if c.code == "DUPLICATE_ORDER_NO"]
        made = Counter(o["purchase_order_id"] for o in world.state.orders(seed.PARTNER))
        assert all(made[i["order_no"]] == 1 for i in items)
        summary = json.loads((report / "summary.json").read_text())
        assert summary["totals"] == {
            c: {"orders": sum(1 for i in items if i["currency"] == c), "amount": f"{a:f}"}
            for c, a in sorted(expected.items())
        }
        assert sum(1 for c in calls if c.dropped) > 0  # the faults did happen
    finally:
        world.close()


def test_a_hundred_top_ups_under_faults_make_one_order_each(tmp_path: Path) -> None:
    one_order_per_row_under_faults(tmp_path, 100, fault_seed=7)


@pytest.mark.slow
def test_a_thousand_top_ups_under_faults_make_one_order_each(tmp_path: Path) -> None:
    one_order_per_row_under_faults(tmp_path, 1_000, fault_seed=3)
