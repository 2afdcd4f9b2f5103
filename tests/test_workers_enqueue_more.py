"""`lf-bulk enqueue renewals cancel`, `enqueue orders create` and `enqueue orders export`: the
spec each queues (checked as the command checks it) and what a worker's job does with it, in
process (issue #16)."""

from __future__ import annotations

import contextlib
import csv
import time
from collections import Counter
from pathlib import Path

import openpyxl
import psycopg
import pytest

from lf_bulk import orders, runs, topups
from lf_bulk.errors import QuotaExhausted, RunStopped
from lf_bulk.sandbox import cards, seed
from lf_bulk.sandbox.server import SandboxServer
from lf_bulk.settings import SANDBOX_PARTNER_CODE, Settings
from lf_bulk.sources import InputTable, read_iccids
from lf_bulk.workers import partners
from lf_bulk.workers.app import EXPORT_NAME, JobRunner, connect, paying_lock
from lf_bulk.workers.spec import JobCommand, JobSpec

from clihelp import expect, invoke, subprocess_cli, write_list
from conftest import MakeSandbox
from inprocess import accepted_counts

VALID = ["89852420180910300011", "89852420180910300029", "89852420180910300037"]
ORDER_HEADER = ["iccid", "package_code", "periods", "amount", "currency", "pay_id"]


@pytest.fixture
def store(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("LF_BULK_STORE", pg_url)
    return pg_url


def cli(home: Path, *args: str) -> list[str]:
    return ["--home", str(home), "--no-progress", "enqueue", "--partner", "acme", *args]


def add_partner(home: Path) -> None:
    expect(invoke(["--home", str(home), "partners", "add", "acme", "--env", "uat",
                   "--base-url", "http://127.0.0.1:9"]), 0)  # fmt: skip


def job_spec(store: str, job: int) -> JobSpec:
    with psycopg.connect(store) as db:
        row = db.execute("SELECT args->'spec' FROM procrastinate_jobs WHERE id = %s", (job,))
        (spec,) = row.fetchone()  # type: ignore[misc]
    return JobSpec.from_json(spec)


def queued(store: str) -> int:
    with psycopg.connect(store) as db:
        found = db.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
        if found is None or found[0] is None:
            return 0
        row = db.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()
    return int(row[0]) if row else 0


def write_orders(path: Path, rows: list[tuple[str, str, int, str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(ORDER_HEADER)
        for n, (iccid, package, periods, amount, currency) in enumerate(rows):
            writer.writerow([iccid, package, periods, amount, currency, f"pi_job_{n}"])
    return path


def sandbox_orders(server: SandboxServer, path: Path, count: int) -> Path:
    """`count` top-ups of distinct active cards of the sandbox, at their plans' prices."""
    rows = []
    for iccid in server.state.iccids_with(card_status=cards.CARD_ACTIVE, limit=count):
        card = server.state.card(iccid)
        assert card is not None
        plan = cards.plans_for(card["area"])[0]
        rows.append((iccid, plan.package_code, 1, plan.price, plan.currency))
    return write_orders(path, rows)


# ---------------------------------------------------------------- enqueue: the spec queued


def test_enqueue_renewals_cancel_sends_only_with_yes_typed_here(store: str, tmp_path: Path) -> None:
    add_partner(tmp_path)
    file = write_list(tmp_path / "l.csv", VALID)

    plan = job_spec(
        store, int(expect(invoke(cli(tmp_path, "renewals", "cancel", str(file))), 0).stdout)
    )
    sent = job_spec(
        store,
        int(expect(invoke(cli(tmp_path, "renewals", "cancel", str(file), "--yes")), 0).stdout),
    )

    assert plan.command is sent.command is JobCommand.CANCEL_RENEWALS
    assert plan.options["yes"] is False and sent.options["yes"] is True
    assert [row[2] for row in sent.rows] == VALID
    for extra in (["--timeout", "5"], ["--report-dir", str(tmp_path / "r")]):
        refused = expect(invoke(cli(tmp_path, "renewals", "cancel", str(file), *extra)), 2)
        assert f"enqueue takes no {extra[0]}" in refused.stderr
    assert queued(store) == 2


def test_enqueue_renewals_cancel_takes_no_yes_from_a_config_file(
    store: str, tmp_path: Path
) -> None:
    add_partner(tmp_path)
    file = write_list(tmp_path / "l.csv", VALID)
    config = tmp_path / "c.toml"
    config.write_text("[enqueue.renewals.cancel]\nyes = true\n")

    # A configuration error (exit 1), as for `renewals cancel` itself: nothing is queued.
    done = expect(
        invoke(["--config", str(config), *cli(tmp_path, "renewals", "cancel", str(file))]), 1
    )

    assert "'enqueue.renewals.cancel.yes' cannot be set in a config file" in done.stderr
    assert queued(store) == 0


def test_enqueue_orders_create_fixes_the_order_numbers_and_never_queues_a_payment_twice(
    store: str, tmp_path: Path
) -> None:
    add_partner(tmp_path)
    file = write_orders(tmp_path / "o.csv", [(VALID[0], "PKG-EU-1", 1, "9.90", "EUR"),
                                             (VALID[1], "PKG-EU-1", 2, "19.80", "EUR")])  # fmt: skip
    args = cli(tmp_path, "orders", "create", str(file))

    spec = job_spec(store, int(expect(invoke(args), 0).stdout))

    assert spec.command is JobCommand.CREATE_ORDERS
    numbers = spec.options["order_nos"]
    assert sorted(numbers) == ["2", "3"] and len(set(numbers.values())) == 2
    # The worker checks the rows again with the numbers fixed here, not new ones.
    again = topups.orders_of(spec.table(), make_order_no=lambda row: numbers[str(row)])
    assert [r.top_up.order_no for r in again.rows if r.top_up] == [numbers["2"], numbers["3"]]
    waiting = expect(invoke(args), 2)
    assert "pay_id pi_job_0 and 1 more was enqueued before" in waiting.stderr
    assert "nothing is paid twice" in waiting.stderr
    # Even once its job has run: its run is the one to continue.
    with psycopg.connect(store, autocommit=True) as db:
        db.execute("UPDATE procrastinate_jobs SET status = 'succeeded'")
    ran = expect(invoke(args), 2)
    assert f"run {spec.run_id}" in ran.stderr and f"runs resume {spec.run_id}" in ran.stderr
    # Another file with one of those payments among new ones (--skip-invalid or not).
    mixed = write_orders(tmp_path / "m.csv", [(VALID[2], "PKG-EU-1", 1, "9.90", "EUR"),
                                              (VALID[1], "PKG-EU-1", 2, "19.80", "EUR")])  # fmt: skip
    mixed.write_text(mixed.read_text().replace("pi_job_0", "pi_new_0"))
    again = expect(invoke(cli(tmp_path, "orders", "create", str(mixed), "--skip-invalid")), 2)
    assert "row 3: pay_id pi_job_1 was enqueued before" in again.stderr
    assert queued(store) == 1
    other = write_orders(tmp_path / "p.csv", [(VALID[2], "PKG-EU-1", 1, "9.90", "EUR")])
    other.write_text(other.read_text().replace("pi_job_0", "pi_other_0"))
    expect(invoke(cli(tmp_path, "orders", "create", str(other))), 0)
    assert queued(store) == 2


def test_two_enqueues_of_one_payment_at_once_queue_it_once(store: str, tmp_path: Path) -> None:
    # Check-then-queue under the partner's paying lock: the second enqueue waits for the first
    # to queue its job, then finds it, instead of both finding nothing and both paying.
    add_partner(tmp_path)
    file = write_orders(tmp_path / "o.csv", [(VALID[0], "PKG-EU-1", 1, "9.90", "EUR")])
    args = cli(tmp_path, "orders", "create", str(file))
    with psycopg.connect(store, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (paying_lock("acme"),))
        enqueues = [subprocess_cli(args) for _ in range(2)]
        time.sleep(1.0)
        assert [e.poll() for e in enqueues] == [None, None] and queued(store) == 0  # both wait
    for e in enqueues:
        e.communicate(timeout=60)
    assert sorted(e.returncode for e in enqueues) == [0, 2] and queued(store) == 1


def test_enqueue_orders_create_checks_every_row_now(store: str, tmp_path: Path) -> None:
    add_partner(tmp_path)
    file = write_orders(tmp_path / "o.csv", [(VALID[0], "PKG-EU-1", 1, "9.999", "EUR")])

    bad = expect(invoke(cli(tmp_path, "orders", "create", str(file))), 2)
    dry = expect(invoke(cli(tmp_path, "orders", "create", str(file), "--dry-run")), 2)

    assert "row 2: bad_amount" in bad.stderr and "nothing was sent" in bad.stderr
    assert "enqueue takes no --dry-run" in dry.stderr
    assert queued(store) == 0


def test_enqueue_orders_export_of_a_file_or_a_group(store: str, tmp_path: Path) -> None:
    add_partner(tmp_path)
    file = write_list(tmp_path / "k.csv", VALID)

    of_file = job_spec(store, int(expect(invoke(cli(tmp_path, "orders", "export", str(file),
                                                  "--timezone", "Europe/London")), 0).stdout))  # fmt: skip
    of_group = job_spec(store, int(expect(invoke(cli(tmp_path, "orders", "export", "--group",
                                                   seed.DEMO_GROUP)), 0).stdout))  # fmt: skip

    assert of_file.command is of_group.command is JobCommand.EXPORT_ORDERS
    assert [row[2] for row in of_file.rows] == VALID
    assert of_file.options == {"group": None, "timezone": "Europe/London"}
    assert of_group.rows == () and of_group.options["group"] == seed.DEMO_GROUP
    for extra, said in ((["-o", "x.xlsx"], "--output"), (["--from-pushes"], "--from-pushes")):
        refused = expect(invoke(cli(tmp_path, "orders", "export", str(file), *extra)), 2)
        assert f"enqueue takes no {said}" in refused.stderr
    assert "give either FILE" in expect(invoke(cli(tmp_path, "orders", "export")), 2).stderr
    assert queued(store) == 2


def test_enqueue_sims_add_with_verify_chooses_the_verification_run_id_now(
    store: str, tmp_path: Path
) -> None:
    add_partner(tmp_path)
    file = write_list(tmp_path / "l.csv", VALID)
    args = cli(tmp_path, "sims", "add", seed.PILOT_GROUP, str(file), "--verify")

    spec = job_spec(store, int(expect(invoke(args), 0).stdout))
    again = expect(invoke(args), 2)
    plain = job_spec(store, int(expect(invoke(args[:-1]), 0).stdout))

    assert spec.options["verify"] is True and spec.options["verify_run_id"] != spec.run_id
    assert "waiting in the queue already" in again.stderr  # its own ids make no new job
    assert "verify_run_id" not in plain.options
    assert queued(store) == 2


def test_enqueue_sims_verify_queues_the_rows_checked_now(store: str, tmp_path: Path) -> None:
    add_partner(tmp_path)
    file = write_list(tmp_path / "l.csv", VALID)

    spec = job_spec(
        store, int(expect(invoke(cli(tmp_path, "sims", "verify", str(file))), 0).stdout)
    )
    bad = write_list(tmp_path / "b.csv", [*VALID, "89852420180910300046"])
    refused = expect(invoke(cli(tmp_path, "sims", "verify", str(bad))), 2)

    assert spec.command is JobCommand.VERIFY and [row[2] for row in spec.rows] == VALID
    assert "bad_checksum" in refused.stderr
    assert queued(store) == 1


def test_enqueue_payments_check_queues_the_pay_ids_checked_now(store: str, tmp_path: Path) -> None:
    add_partner(tmp_path)
    file = tmp_path / "p.csv"
    file.write_text("pay_id\npi_1\npi_2\n")
    bad = tmp_path / "b.csv"
    bad.write_text("pay_id\npi_1\npi_1\n")

    spec = job_spec(
        store, int(expect(invoke(cli(tmp_path, "payments", "check", str(file))), 0).stdout)
    )
    refused = expect(invoke(cli(tmp_path, "payments", "check", str(bad))), 2)
    output = expect(invoke(cli(tmp_path, "payments", "check", str(file), "-o", "x.xlsx")), 2)

    assert spec.command is JobCommand.CHECK_PAYMENTS
    assert topups.pay_ids_of(spec.table()).counts.valid == 2
    assert "duplicate" in refused.stderr
    assert "enqueue takes no --output" in output.stderr
    assert queued(store) == 1


def test_enqueue_sims_plans_and_renewals_list_of_a_group_or_a_file(
    store: str, tmp_path: Path
) -> None:
    add_partner(tmp_path)
    file = write_list(tmp_path / "l.csv", VALID)
    plans = cli(tmp_path, "sims", "plans", "--group", seed.DEMO_GROUP, "--area", "欧洲")

    of_group = job_spec(store, int(expect(invoke(plans), 0).stdout))
    of_file = job_spec(
        store, int(expect(invoke(cli(tmp_path, "renewals", "list", str(file))), 0).stdout)
    )
    neither = expect(invoke(cli(tmp_path, "renewals", "list")), 2)

    assert of_group.command is JobCommand.PLANS and of_group.rows == ()
    assert of_group.options["groups"] == [seed.DEMO_GROUP] and of_group.options["area"] == "欧洲"
    assert of_file.command is JobCommand.LIST_RENEWALS and of_file.options["from_file"] is True
    assert [row[2] for row in of_file.rows] == VALID
    assert "give one of FILE" in neither.stderr
    assert queued(store) == 2


# ---------------------------------------------------------------- the job, on a worker


@pytest.mark.parametrize(
    ("command", "workbook", "extra"),
    [
        (JobCommand.LIST_RENEWALS, "renewals.xlsx", {}),
        (JobCommand.PLANS, "plans.xlsx", {"area": None}),
    ],
)
def test_a_plans_or_renewals_job_of_a_group_writes_its_workbook_in_the_report_folder(
    runner: JobRunner, make_sandbox: MakeSandbox, command: JobCommand, workbook: str,
    extra: dict[str, object],
) -> None:  # fmt: skip
    server = make_sandbox("rate=400,concurrency=8")
    for_sandbox(runner, server)
    options = {"groups": [seed.STAFF_GROUP], "all_groups": False, "from_file": False,
               "skip_invalid": False, "max_age": 0.0, **extra}  # fmt: skip
    spec = JobSpec.of(command, "acme", "rows-1", InputTable("", None, "", []), options)

    done = runner.run(spec)

    assert done["run_id"] == "rows-1" and done["exit_code"] in (0, 3)
    assert (runner.report_root / "rows-1" / workbook).exists()
    with (runner.report_root / "rows-1" / "items.csv").open() as handle:
        assert len(handle.readlines()) == len(server.state.members(seed.STAFF_GROUP)) + 1


def test_a_payments_check_job_writes_the_payments_workbook_in_its_report_folder(
    runner: JobRunner, make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    server = make_sandbox("rate=400,concurrency=8")
    for_sandbox(runner, server)
    paid = [o for o in server.state.orders(seed.PARTNER) if o["pay_id"]][:2]
    file = tmp_path / "p.csv"
    file.write_text("pay_id\n" + "".join(f"{o['pay_id']}\n" for o in paid))
    table = topups.read_pay_id_table(file)
    spec = JobSpec.of(JobCommand.CHECK_PAYMENTS, "acme", "pay-1", table, {"skip_invalid": False})

    assert runner.run(spec) == {"run_id": "pay-1", "exit_code": 0}

    book = openpyxl.load_workbook(runner.report_root / "pay-1" / "payments.xlsx", read_only=True)
    cells = {cell for row in book["Payments"].iter_rows(values_only=True) for cell in row}
    assert {o["pay_id"] for o in paid} <= cells


def test_a_verify_job_verifies_each_card_once_under_its_run_id(
    runner: JobRunner, make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    server = make_sandbox("rate=400,concurrency=8")
    for_sandbox(runner, server)
    active = server.state.iccids_with(card_status=cards.CARD_ACTIVE, limit=3)
    table = read_iccids(write_list(tmp_path / "v.csv", active))
    spec = JobSpec.of(JobCommand.VERIFY, "acme", "verify-1", table, {"skip_invalid": False})

    assert runner.run(spec) == {"run_id": "verify-1", "exit_code": 0}
    assert runner.run(spec) == {"run_id": "verify-1", "exit_code": 0}

    with (runner.report_root / "verify-1" / "items.csv").open() as handle:
        assert {row["outcome"] for row in csv.DictReader(handle)} == {"verified"}


@pytest.fixture
def runner(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> JobRunner:
    monkeypatch.setenv("LF_BULK_PARTNER_CODE_ACME", SANDBOX_PARTNER_CODE)
    settings = Settings(
        home=tmp_path / "home", store_url=pg_url, rate_per_second=200, retry_deadline=1.0
    )
    return JobRunner(settings, pg_url, tmp_path / "reports", say=lambda line: None)


def runs_status(runner: JobRunner, run_id: str) -> str:
    settings = runner.settings
    with contextlib.closing(runs.open_journal(settings.home, settings.store_url)) as journal:
        return str(journal.run(run_id).status)


def for_sandbox(runner: JobRunner, server: SandboxServer) -> None:
    with connect(runner.store_url) as db:
        partners.save(db, partners.Partner("acme", "uat", server.base_url))


def test_a_renewals_cancel_job_cancels_once_and_tried_again_sends_nothing(
    runner: JobRunner, make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    server = make_sandbox("rate=400,concurrency=8")
    for_sandbox(runner, server)
    renewing = server.state.iccids_with(renewal=True, limit=3)
    table = read_iccids(write_list(tmp_path / "r.csv", renewing))
    spec = JobSpec.of(JobCommand.CANCEL_RENEWALS, "acme", "cancel-1", table,
                      {"yes": True, "skip_invalid": False})  # fmt: skip

    assert runner.run(spec) == {"run_id": "cancel-1", "exit_code": 0}
    cancelled = server.state.cancelled_renewals()
    assert sorted(cancelled) == sorted(renewing)
    assert runner.run(spec) == {"run_id": "cancel-1", "exit_code": 0}
    assert server.state.cancelled_renewals() == cancelled
    with (runner.report_root / "cancel-1" / "items.csv").open() as handle:
        assert {row["outcome"] for row in csv.DictReader(handle)} == {"cancelled"}


def test_an_orders_job_pays_the_numbers_fixed_at_enqueue_once_however_often_it_runs(
    runner: JobRunner, make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    server = make_sandbox("rate=400,concurrency=8")
    for_sandbox(runner, server)
    table = topups.read_order_table(sandbox_orders(server, tmp_path / "o.csv", 4))
    numbers = {str(row.row): f"LFB-job-{row.row}" for row in table.rows}
    spec = JobSpec.of(JobCommand.CREATE_ORDERS, "acme", "orders-1", table,
                      {"skip_invalid": False, "order_nos": numbers})  # fmt: skip

    assert runner.run(spec) == {"run_id": "orders-1", "exit_code": 0}
    assert runner.run(spec) == {"run_id": "orders-1", "exit_code": 0}  # its worker died after

    made = Counter(o["purchase_order_id"] for o in server.state.orders(seed.PARTNER))
    assert {n: made[n] for n in numbers.values()} == dict.fromkeys(numbers.values(), 1)


def test_an_orders_export_job_writes_the_workbook_in_its_report_folder(
    runner: JobRunner, make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    server = make_sandbox("rate=400,concurrency=8")
    for_sandbox(runner, server)
    ordered = runner.run(JobSpec.of(
        JobCommand.CREATE_ORDERS, "acme", "orders-2",
        topups.read_order_table(sandbox_orders(server, tmp_path / "o.csv", 2)),
        {"skip_invalid": False, "order_nos": {"2": "LFB-x-2", "3": "LFB-x-3"}},
    ))  # fmt: skip
    assert ordered["exit_code"] == 0
    keys = tmp_path / "k.csv"
    keys.write_text("purchase_order_id\nLFB-x-2\nLFB-x-3\n")
    spec = JobSpec.of(JobCommand.EXPORT_ORDERS, "acme", "export-1", orders.read_key_table(keys),
                      {"group": None, "timezone": "UTC"})  # fmt: skip

    assert runner.run(spec) == {"run_id": "export-1", "exit_code": 0}

    book = openpyxl.load_workbook(runner.report_root / "export-1" / EXPORT_NAME, read_only=True)
    cells = {cell for row in book["Orders"].iter_rows(values_only=True) for cell in row}
    assert {"LFB-x-2", "LFB-x-3"} <= cells


def test_an_orders_export_job_of_a_group_reads_its_members_when_it_runs(
    runner: JobRunner, make_sandbox: MakeSandbox
) -> None:
    server = make_sandbox("rate=400,concurrency=8")
    for_sandbox(runner, server)
    empty = InputTable("", None, "", [])
    spec = JobSpec.of(JobCommand.EXPORT_ORDERS, "acme", "export-2", empty,
                      {"group": seed.STAFF_GROUP, "timezone": "UTC"})  # fmt: skip

    assert runner.run(spec) == {"run_id": "export-2", "exit_code": 0}

    book = openpyxl.load_workbook(runner.report_root / "export-2" / EXPORT_NAME, read_only=True)
    first = next(book["Orders"].iter_rows(values_only=True))
    assert f"group {seed.STAFF_GROUP}" in str(first[0])


def verify_job(
    runner: JobRunner, make_sandbox: MakeSandbox, tmp_path: Path, faults: str, run_id: str,
    *, cards_: int,
) -> tuple[SandboxServer, JobSpec]:  # fmt: skip
    """A verify job of `cards_` active cards, on a sandbox with `faults`."""
    server = make_sandbox(f"rate=400,concurrency=8,{faults}")
    for_sandbox(runner, server)
    active = server.state.iccids_with(card_status=cards.CARD_ACTIVE, limit=cards_)
    table = read_iccids(write_list(tmp_path / "v.csv", active))
    return server, JobSpec.of(JobCommand.VERIFY, "acme", run_id, table, {"skip_invalid": False})


def test_a_look_up_job_stopped_by_the_quota_waits_for_the_next_day_and_resumes_its_run(
    runner: JobRunner, make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # A look-up run (verify, status, renewals, top-ups) stops cleanly for the quota (exit 5);
    # its job must then wait for the next UTC day like an add's, not end as if done.
    server, spec = verify_job(runner, make_sandbox, tmp_path, "daily_quota=2", "verify-q", cards_=5)

    with pytest.raises(QuotaExhausted) as stopped:
        runner.run(spec)
    assert "verify-q" in str(stopped.value) and stopped.value.resets_at is not None

    for _ in range(5):
        server.state.new_day()
        try:
            assert runner.run(spec) == {"run_id": "verify-q", "exit_code": 0}
            break
        except QuotaExhausted:
            continue
    else:
        raise AssertionError("the run never finished")
    with (runner.report_root / "verify-q" / "items.csv").open() as handle:
        assert {row["outcome"] for row in csv.DictReader(handle)} == {"verified"}


def test_a_job_whose_run_ends_not_finished_fails_and_leaves_the_run_to_resume(
    runner: JobRunner, make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # Every call fails (5xx): the SIMs stay pending and the run ends not finished. The job must
    # fail (the job list shows it), not end as done with the run still open.
    _, spec = verify_job(runner, make_sandbox, tmp_path, "5xx=1", "verify-5xx", cards_=2)

    with pytest.raises(RunStopped) as stopped:
        runner.run(spec)
    assert "verify-5xx" in str(stopped.value) and "runs resume verify-5xx" in str(stopped.value)
    assert runs_status(runner, "verify-5xx") == "not_finished"


def add_with_verify(
    runner: JobRunner, make_sandbox: MakeSandbox, tmp_path: Path, run_id: str, *, quota: int
) -> tuple[SandboxServer, list[str], JobSpec]:
    """An add job with --verify of six active, ungrouped cards, on a sandbox allowing `quota`
    requests a day; its verification run is `<run_id>-verify`."""
    server = make_sandbox(f"rate=400,concurrency=8,daily_quota={quota}")
    for_sandbox(runner, server)
    ungrouped = set(server.state.ungrouped_sims(3_000))
    active = server.state.iccids_with(card_status=cards.CARD_ACTIVE, limit=1_000)
    wanted = [i for i in active if i in ungrouped][:6]
    table = read_iccids(write_list(tmp_path / "v.csv", wanted))
    options = {"group": seed.PILOT_GROUP, "batch_size": 10, "skip_invalid": False,
               "verify_run_id": f"{run_id}-verify"}  # fmt: skip
    return server, wanted, JobSpec.of(JobCommand.ADD, "acme", run_id, table, options)


def test_an_add_job_with_verify_checks_the_cards_first_under_ids_chosen_at_enqueue(
    runner: JobRunner, make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    server, wanted, spec = add_with_verify(runner, make_sandbox, tmp_path, "add-v", quota=5)

    # Day one: the quota stops the verification; the job waits for tomorrow, nothing was added.
    with pytest.raises(QuotaExhausted):
        runner.run(spec)
    assert server.state.mutation_log() == []
    for _ in range(6):  # each next day resumes the verification, then the add: never again
        server.state.new_day()
        with connect(runner.store_url) as db:  # our clock past the reset too: the server's
            db.execute("DELETE FROM server_spent")  # "spent until" mark has expired
        try:
            assert runner.run(spec) == {"run_id": "add-v", "exit_code": 0}
            break
        except QuotaExhausted:
            continue
    else:
        raise AssertionError("the job never finished")

    assert accepted_counts(server.state) == Counter(dict.fromkeys(wanted, 1))
    with runs.open_journal(runner.settings.home, runner.store_url) as journal:
        assert sorted(run.run_id for run in journal.runs()) == ["add-v", "add-v-verify"]


def test_an_add_job_whose_verification_was_cancelled_sends_nothing(
    runner: JobRunner, make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # The quota stops the verification; the operator cancels it. The job, tried again, must not
    # take the cancelled verification "as it ended" and add the cards it never verified.
    server, _, spec = add_with_verify(runner, make_sandbox, tmp_path, "add-c", quota=2)
    with pytest.raises(QuotaExhausted):
        runner.run(spec)
    settings = runner.settings
    with contextlib.closing(runs.open_journal(settings.home, settings.store_url)) as journal:
        runs.cancel(journal, settings, "add-c-verify")
    server.state.new_day()
    with connect(runner.store_url) as db:
        db.execute("DELETE FROM server_spent")

    with pytest.raises(RunStopped, match="add-c-verify ended cancelled"):
        runner.run(spec)
    assert server.state.mutation_log() == []
