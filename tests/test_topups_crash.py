"""kill -9 during `orders create`, then `runs resume`: one order per row at the sandbox, every row
reported once, with the user's order numbers and with generated ones."""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from lf_bulk.sandbox import cards, seed
from tests.clihelp import (
    FAST_SERVER,
    base_args,
    expect,
    invoke,
    read_items,
    read_summary,
    subprocess_cli,
    wait_for_run,
)
from tests.conftest import MakeSandbox
from tests.storehelp import journal_at

# Every test here runs on both stores (the journal, the answer cache and the locks in SQLite
# files, or in PostgreSQL); the PostgreSQL half of the kill trials runs in `make chaos`.
pytestmark = pytest.mark.usefixtures("each_store")
LONG_ON_POSTGRESQL = pytest.mark.parametrize(
    "each_store", ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)], indirect=True
)

HEADER = "iccid,package_code,periods,amount,currency,pay_id,order_no\n"


def sending_order(home: Path, run_id: str) -> bool:
    with journal_at(home / "journal.db") as journal:
        calls = journal.calls(run_id)
    return any(
        c.call == "create_order" and c.state == "sending" for cs in calls.values() for c in cs
    )


def crash_trial(make_sandbox: MakeSandbox, tmp_path: Path, trial: int, *, given: bool,
                rows: int = 60, faults: str = "", when_sending: bool = False) -> None:  # fmt: skip
    rng = random.Random(trial)
    server = make_sandbox(f"{FAST_SERVER},rate=40,{faults}".rstrip(","), sims=400)
    sims = server.state.iccids_with(card_status=cards.CARD_ACTIVE, limit=rows)
    lines, totals = [], Counter[str]()
    for n, sim in enumerate(sims):
        card = server.state.card(sim)
        assert card is not None
        plan = cards.plans_for(card["area"])[0]
        totals[plan.currency] += 1
        order_no = f"T{trial}-{n}" if given else ""
        lines.append(f"{sim},{plan.package_code},1,{plan.price},{plan.currency},pi_{trial}_{n},"
                     f"{order_no}\n")  # fmt: skip
    source = tmp_path / "orders.csv"
    source.write_text(HEADER + "".join(lines))
    home, report = tmp_path / "home", tmp_path / "report"
    args = [*base_args(home, server.base_url), "--rate", "10"]
    job = subprocess_cli([*args, "orders", "create", str(source), "--report-dir", str(report)])
    run_id = wait_for_run(home)
    if when_sending:  # right after an order went out, before its (held) answer came back
        deadline = time.time() + 20
        while not sending_order(home, run_id) and time.time() < deadline:
            time.sleep(0.02)
    else:
        time.sleep(rng.uniform(0.2, 1.5))
    job.send_signal(signal.SIGKILL)
    job.wait()
    with journal_at(home / "journal.db") as journal:
        assert journal.run(run_id).status != "finished", "the kill came after the end"

    resumed = expect(invoke([*args, "runs", "resume", run_id]), 0)

    assert resumed.stdout.strip() == str(report)
    items = read_items(report)
    assert [i["iccid"] for i in items] == sims  # every row once, in input order
    assert {i["outcome"] for i in items} <= {"created"}
    # The sandbox's orders: one per row, kill or no kill (its call log may miss a call whose
    # connection the kill closed while the answer was held; its orders table does not).
    ours = [o for o in server.state.orders(seed.PARTNER) if o["pay_id"].startswith(f"pi_{trial}_")]
    assert Counter(o["sim_id"] for o in ours) == Counter(dict.fromkeys(sims, 1))
    assert {o["purchase_order_id"] for o in ours} == {i["order_no"] for i in items}
    calls = server.state.vshop_calls("SynOrderInfo")
    assert not [c for c in calls if c.code == "DUPLICATE_ORDER_NO"]  # never sent again
    assert len({i["order_no"] for i in items}) == rows
    if given:
        assert [i["order_no"] for i in items] == [f"T{trial}-{n}" for n in range(rows)]
    summary = read_summary(report)
    assert {c: t["orders"] for c, t in summary["totals"].items()} == dict(totals)
    assert sum(Decimal(t["amount"]) for t in summary["totals"].values()) > 0
    with journal_at(home / "journal.db") as journal:
        assert journal.run(run_id).status == "finished"


@LONG_ON_POSTGRESQL
def test_kill_nine_during_orders_create_then_resume_makes_one_order_per_row(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    crash_trial(make_sandbox, tmp_path, 1, given=True, rows=12)


@LONG_ON_POSTGRESQL
def test_kill_nine_while_the_sandbox_holds_an_order_answer_then_resume(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # `hold`: the order is made and its answer kept back, so a kill lands between "Linksfield
    # has the order" and "the journal knows it".
    crash_trial(make_sandbox, tmp_path, 2, given=False, rows=4, faults="hold=1s", when_sending=True)


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(100, 124))
def test_kill_nine_orders_create_chaos(
    make_sandbox: MakeSandbox, tmp_path: Path, trial: int
) -> None:
    faults = ("", "drop=0.1,busy=0.05", "hold=1s")[trial % 3]
    crash_trial(make_sandbox, tmp_path, trial, given=trial % 2 == 0, rows=60, faults=faults,
                when_sending=trial % 4 == 0)  # fmt: skip
