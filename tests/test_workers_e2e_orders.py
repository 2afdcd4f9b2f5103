"""One `lf-bulk worker` process runs an enqueued top-up file: each order paid once, and the same
file enqueued again is refused (issue #16; the real-worker trial of the money commands)."""

from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from workershelp import start_worker, stop, wait_until

from lf_bulk.sandbox import cards, seed
from lf_bulk.settings import SANDBOX_PARTNER_CODE
from lf_bulk.workers.spec import JobSpec

from clihelp import expect, invoke
from conftest import MakeSandbox


@pytest.mark.slow  # a worker process starting up, then the job: about 5 s
def test_a_worker_pays_an_enqueued_top_up_file_once(
    make_sandbox: MakeSandbox, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LF_BULK_STORE", pg_url)
    server = make_sandbox("rate=400,concurrency=8")
    base = ["--home", str(tmp_path / "home"), "--no-progress"]
    expect(invoke([*base, "partners", "add", "acme", "--env", "uat",
                   "--base-url", server.base_url]), 0)  # fmt: skip
    file = tmp_path / "orders.csv"
    with file.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["iccid", "package_code", "periods", "amount", "currency", "pay_id"])
        for n, iccid in enumerate(server.state.iccids_with(card_status=cards.CARD_ACTIVE, limit=3)):
            card = server.state.card(iccid)
            assert card is not None
            plan = cards.plans_for(card["area"])[0]
            writer.writerow([iccid, plan.package_code, 1, plan.price, plan.currency, f"pi_e2e_{n}"])
    enqueue = [*base, "enqueue", "--partner", "acme", "orders", "create", str(file)]
    job = int(expect(invoke(enqueue), 0).stdout)
    env = {**os.environ, "LF_BULK_PARTNER_CODE_ACME": SANDBOX_PARTNER_CODE}
    worker = start_worker(base, tmp_path / "reports", env, tmp_path / "worker.log")
    try:

        def status() -> str:
            with psycopg.connect(pg_url) as db:
                row = db.execute("SELECT status::text FROM procrastinate_jobs WHERE id = %s",
                                 (job,)).fetchone()  # fmt: skip
            return str(row[0]) if row else ""

        wait_until(lambda: status() in ("succeeded", "failed"), 60, "the job to end")
    finally:
        stop(worker)
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert status() == "succeeded", log

    with psycopg.connect(pg_url) as db:
        (data,) = db.execute("SELECT args->'spec' FROM procrastinate_jobs WHERE id = %s",
                             (job,)).fetchone()  # type: ignore[misc]  # fmt: skip
    spec = JobSpec.from_json(data)
    made = Counter(o["purchase_order_id"] for o in server.state.orders(seed.PARTNER))
    assert {made[n] for n in spec.options["order_nos"].values()} == {1}
    with (tmp_path / "reports" / spec.run_id / "items.csv").open() as handle:
        assert {row["outcome"] for row in csv.DictReader(handle)} == {"created"}
    assert "pi_e2e_0" not in log  # the job's rows stay out of the worker's log
    again = expect(invoke(enqueue), 2)
    assert f"run {spec.run_id}" in again.stderr
