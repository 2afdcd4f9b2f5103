"""The PostgreSQL store: schema versions, locks that die with their holder or stop a run whose
connection was lost, a quota granted exactly across processes, and no password in a URL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import psycopg
import pytest
from storeprocs import REPO

from lf_bulk import locking
from lf_bulk.client import LinksfieldClient
from lf_bulk.engine import RunDriver
from lf_bulk.errors import (
    DatabaseTooNew,
    ForeignDatabase,
    InvalidSetting,
    QuotaExhausted,
    RunLocked,
    RunStopped,
)
from lf_bulk.exitcodes import ExitCode
from lf_bulk.journal import PlannedItem
from lf_bulk.models import Operation
from lf_bulk.pacing import RequestPacer
from lf_bulk.sandbox.seed import PARTNER, PILOT_GROUP
from lf_bulk.sandbox.server import SandboxServer
from lf_bulk.store import Store, open_journal, open_store, refuse_password, shown_url
from lf_bulk.store.postgres import PostgresStore

from clihelp import base_args, invoke
from inprocess import accepted_counts, taken_then_sent_again


def start(mode: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.storeprocs", mode, *args],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def items(count: int) -> list[PlannedItem]:
    return [PlannedItem(n + 2, f"89{n:017d}", "ADD", "G1") for n in range(count)]


def test_the_journal_keeps_its_sql_and_its_answers_on_both_stores(
    store_url: str | None, tmp_path: Path
) -> None:
    with open_journal(store_url, tmp_path / "home") as journal:
        run_id = journal.create_run(
            kind="sims", operation="ADD", group_id="G1", items=items(5), batch_size=2
        )
        journal.verify_run(run_id)  # the integrity digest reads the same on both
        first = journal.batches(run_id)[0]
        journal.mark_sending(run_id, first.batch_id, sent_at=1_700_000_000.25)
        journal.mark_answer_lost(run_id, first.batch_id, "lost", lost_at=1_700_000_000.5)
        journal.record_async_duration(run_id, 1.5)

        lost = journal.batches(run_id)[0]
        # A double, not PostgreSQL's 4-byte REAL: an epoch time to the millisecond.
        assert lost.submitted_at == 1_700_000_000.5
        assert lost.state == "answer_lost"
        assert journal.lost_due(run_id, 1_700_000_001.0) == [lost]
        assert journal.next_due(run_id, 0) == (0.0, None, 1_700_000_000.5)
        assert journal.rows_follow_item_ids(run_id)
        assert journal.async_durations(run_id) == [1.5]
        assert journal.outcome_counts(run_id) == {"pending": 5}
        assert journal.newest_unfinished().run_id == run_id  # type: ignore[union-attr]


def test_a_schema_is_made_once_and_recorded_with_its_version(pg_url: str) -> None:
    PostgresStore(pg_url).close()
    PostgresStore(pg_url).close()  # a second start finds it made
    with psycopg.connect(pg_url) as db:
        versions = dict(db.execute("SELECT kind, version FROM lf_bulk_meta").fetchall())
    assert versions == {"journal": 4, "quota ledger": 1, "pacer": 1, "answer cache": 1}


def test_an_older_journal_schema_is_migrated_in_order(pg_url: str) -> None:
    PostgresStore(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as db:
        db.execute("DROP INDEX batches_planned_due")
        db.execute("UPDATE lf_bulk_meta SET version = 3 WHERE kind = 'journal'")
    PostgresStore(pg_url).close()
    with psycopg.connect(pg_url) as db:
        assert db.execute("SELECT to_regclass('batches_planned_due')").fetchone()[0] is not None  # type: ignore[index]
        version = db.execute("SELECT version FROM lf_bulk_meta WHERE kind = 'journal'")
        assert version.fetchone()[0] == 4  # type: ignore[index]


def test_a_newer_schema_is_refused(pg_url: str) -> None:
    PostgresStore(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as db:
        db.execute("UPDATE lf_bulk_meta SET version = 99 WHERE kind = 'journal'")
    with pytest.raises(DatabaseTooNew, match="version 99, newer than this lf-bulk"):
        PostgresStore(pg_url)


def test_tables_lf_bulk_did_not_make_are_refused_untouched(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as db:
        db.execute("CREATE TABLE runs (id INTEGER)")
        db.execute("INSERT INTO runs VALUES (7)")
    with pytest.raises(ForeignDatabase, match=r"tables \(runs\) that lf-bulk's journal did not"):
        PostgresStore(pg_url)
    with psycopg.connect(pg_url) as db:
        assert db.execute("SELECT id FROM runs").fetchall() == [(7,)]


def test_a_killed_holder_frees_its_lock_at_once(pg_url: str) -> None:
    holder = start("hold", pg_url, "run-R")
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        store = open_store(pg_url, Path("/nonexistent"))
        assert store.is_held("run-R")
        with (
            pytest.raises(
                RunLocked,
                match=rf"run R is being driven by another .*\(lf-bulk pid {holder.pid}, test on ",
            ),
            store.lock("run-R", "run R"),
        ):
            pass
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        killed = time.monotonic()
        while store.is_held("run-R"):
            assert time.monotonic() - killed < 5, "the dead holder's lock was never freed"
            time.sleep(0.01)
        with store.lock("run-R", "run R"):
            assert store.is_held("run-R")
        store.close()
    finally:
        holder.kill()
        holder.wait()


def test_a_lost_lock_connection_stops_the_run_before_its_next_write(
    pg_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    with open_journal(pg_url, home) as journal:
        run_id = journal.create_run(
            kind="sims", operation="ADD", group_id="G1", items=items(4), batch_size=2
        )
        store = journal._guard.__self__  # type: ignore[union-attr]  # the store behind it
        from lf_bulk import locking

        with locking.exclusive(home, f"run-{run_id}", f"run {run_id}"):
            pid = store._locks_db.info.backend_pid
            with psycopg.connect(pg_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            # The lock is gone with the session: another driver can take the run now...
            other = open_store(pg_url, home)
            # ...and this one must not send: the write before each send refuses.
            with (
                other.lock(f"run-{run_id}", f"run {run_id}"),
                pytest.raises(RunStopped, match=r"lock of run .* was lost"),
            ):
                journal.mark_sending(run_id, 1)
            other.close()
        assert journal.batches(run_id)[0].state == "planned"


def test_the_days_quota_is_granted_exactly_across_processes(pg_url: str) -> None:
    limit = 90
    takers = [start("quota", pg_url, str(limit)) for _ in range(3)]
    try:
        for taker in takers:
            assert taker.stdout is not None and taker.stdout.readline().strip() == "ready"
        for taker in takers:
            assert taker.stdin is not None
            taker.stdin.write("go\n")
            taker.stdin.flush()
        granted = [int(taker.communicate(timeout=60)[0]) for taker in takers]
    finally:
        for taker in takers:
            taker.kill()
    assert sum(granted) == limit
    assert all(g > 0 for g in granted), granted  # they really competed


def test_a_store_url_never_carries_a_password() -> None:
    with pytest.raises(InvalidSetting, match="carries a password"):
        refuse_password("postgresql://bob:secret@db.example/lf", "--store")
    with pytest.raises(InvalidSetting, match="carries a password"):
        refuse_password("postgresql://bob@db.example/lf?password=secret", "--store")
    refuse_password("postgresql://bob@db.example/lf", "--store")
    assert shown_url("postgresql://bob:secret@db.example:5433/lf") == (
        "postgresql://db.example:5433/lf"
    )


def test_the_command_line_refuses_a_store_password_and_names_where_to_put_it(
    tmp_path: Path,
) -> None:
    result = invoke(
        ["--home", str(tmp_path), "--store", "postgresql://bob:s3cret@db.example/lf", "runs",
         "list"]
    )  # fmt: skip
    assert result.exit_code == 2
    assert "PGPASSWORD" in result.output
    assert "s3cret" not in result.output


def test_a_config_file_may_not_hold_a_store_password(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('store = "postgresql://bob:s3cret@db.example/lf"\n')
    os.chmod(config, 0o600)
    result = invoke(["--config", str(config), "--home", str(tmp_path), "runs", "list"])
    assert result.exit_code == 2
    assert "the config file" in result.output and "s3cret" not in result.output


def test_an_unknown_store_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke(["--home", str(tmp_path), "--store", "mysql://db/lf", "runs", "list"])
    assert result.exit_code == 2
    assert "not a store lf-bulk knows" in result.output


def test_runs_list_over_a_postgresql_store_shows_every_machines_runs(
    pg_url: str, tmp_path: Path
) -> None:
    for machine in ("a", "b"):  # two homes: two machines sharing one store
        with open_journal(pg_url, tmp_path / machine) as journal:
            journal.create_run(
                kind="sims", operation="ADD", group_id=f"G{machine}", items=items(1),
                batch_size=1,
            )  # fmt: skip
    result = invoke(["--home", str(tmp_path / "c"), "--store", pg_url, "runs", "list"])
    assert result.exit_code == 0, result.output
    assert "Ga" in result.output and "Gb" in result.output


def test_a_run_whose_lock_connection_dies_stops_and_another_driver_finishes_it_sending_nothing_twice(
    sandbox: SandboxServer, pg_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    wanted = sandbox.state.ungrouped_sims(12)
    planned = [PlannedItem(n + 2, i, Operation.ADD, PILOT_GROUP) for n, i in enumerate(wanted)]
    posts = 0

    class CuttingTheLock(httpx.HTTPTransport):
        """After the first batch is sent, the store's lock connection dies (a network cut)."""

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            nonlocal posts
            response = super().handle_request(request)
            if request.method == "POST" and request.url.path.endswith("/sims"):
                posts += 1
                if posts == 1:
                    pid = store._locks_db.info.backend_pid
                    with psycopg.connect(pg_url, autocommit=True) as admin:
                        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            return response

    with open_journal(pg_url, home) as journal:
        store = journal._guard.__self__  # type: ignore[union-attr]  # the store behind it
        run_id = journal.create_run(
            kind="sims", operation="ADD", group_id=PILOT_GROUP, items=planned, batch_size=4
        )
        client = LinksfieldClient(
            sandbox.base_url, PARTNER, pacer=RequestPacer(200, 1), transport=CuttingTheLock()
        )
        with (
            client,
            pytest.raises(RunStopped, match="was lost"),
            locking.exclusive(home, f"run-{run_id}", f"run {run_id}"),
        ):
            RunDriver(journal, client, run_id).drive()
    assert posts == 1  # it stopped before sending the next batch

    # Another driver (another machine) takes the run over and finishes it.
    with (
        open_journal(pg_url, tmp_path / "other") as journal,
        LinksfieldClient(sandbox.base_url, PARTNER, pacer=RequestPacer(200, 4)) as client,
        locking.exclusive(tmp_path / "other", f"run-{run_id}", f"run {run_id}"),
    ):
        result = RunDriver(journal, client, run_id).drive()
    assert result.exit_code == ExitCode.OK
    assert accepted_counts(sandbox.state) == Counter(dict.fromkeys(wanted, 1))
    assert taken_then_sent_again(sandbox.state) == {}


def test_sessions_sharing_a_store_share_the_accounts_quota_count_and_pacer(
    sandbox: SandboxServer, pg_url: str, tmp_path: Path
) -> None:
    from lf_bulk.settings import Settings, open_session
    from lf_bulk.store.postgres import SharedPacer

    def settings(home: Path, store: str | None) -> Settings:
        return Settings(
            env="uat", base_url=sandbox.base_url, partner_code=PARTNER, home=home,
            store_url=store, daily_quota=100, quota_reserve=0,
        )  # fmt: skip

    with (
        open_session(settings(tmp_path / "a", pg_url)) as one,
        open_session(settings(tmp_path / "b", pg_url)) as two,
    ):
        assert isinstance(one.client.pacer, SharedPacer)
        assert one.client.pacer.account == two.client.pacer.account  # type: ignore[attr-defined]
        one.client.list_groups()
        two.client.list_groups()
        assert one.quota.used_today() == two.quota.used_today() == 2
    with open_session(settings(tmp_path / "a", None)) as alone:  # the default: its own files
        assert alone.quota.used_today() == 0


def test_doctor_names_the_store_without_its_user(
    sandbox: SandboxServer, pg_url: str, tmp_path: Path
) -> None:
    result = invoke(["--store", pg_url, *base_args(tmp_path, sandbox.base_url), "doctor"])
    line = next(x for x in result.stdout.splitlines() if x.startswith("store"))
    assert "postgresql:///postgres?host=" in line and "from --store" in line
    assert "postgres@" not in line


def test_the_answer_cache_keeps_its_answers_on_both_stores_beside_the_journal(
    store_url: str | None, tmp_path: Path
) -> None:
    from lf_bulk.store import open_answer_cache

    home = tmp_path / "home"
    with open_journal(store_url, home) as journal:  # the journal's own `answers` table too
        run_id = journal.create_run(
            kind="lookup", operation="STATUS", group_id="", items=items(1), batch_size=1,
            lookup=True,
        )  # fmt: skip
        journal.record_answer(run_id, 0, 0, "verify", "{}", fetched_at=1.0, source="api")
    with open_answer_cache(store_url, home) as cache:
        asker = cache.asker("uat https://x", "P-1")
        cache.put(asker, "verify", "8900", '{"value": 1}', time.time())
    with open_answer_cache(store_url, home) as again:  # another run, later
        assert again.asker("uat https://x", "P-1") == asker  # the same salt
        found = again.get(asker, "verify", "8900", max_age=60)
        assert found is not None and found[0] == '{"value": 1}'
    with open_journal(store_url, home) as journal:
        assert [c.call for c in journal.calls(run_id)[0]] == ["verify"]


def test_a_reconciles_group_locks_are_taken_in_the_shared_store(
    pg_url: str, tmp_path: Path
) -> None:
    from lf_bulk.store import bound_locks

    elsewhere = open_store(pg_url, tmp_path / "other-machine")
    with (
        bound_locks(pg_url, tmp_path / "home"),
        locking.exclusive_all(tmp_path / "home", ["group-G1", "group-G2"], "reconcile of G1"),
    ):
        assert elsewhere.is_held("group-G1") and elsewhere.is_held("group-G2")
        with (
            pytest.raises(RunLocked, match="reconcile of G1 is being driven by this lf-bulk"),
            locking.exclusive_all(tmp_path / "home", ["group-G2"], "reconcile of G1"),
        ):
            pass
    assert not elsewhere.is_held("group-G1")
    assert not (tmp_path / "home" / "locks").exists()  # no flock file: the store holds them
    elsewhere.close()


def test_a_reconcile_refused_for_a_locked_group_on_another_machine(
    sandbox: SandboxServer, pg_url: str, tmp_path: Path
) -> None:
    elsewhere = open_store(pg_url, tmp_path / "other-machine")
    desired = tmp_path / "desired.csv"
    desired.write_text(f"iccid,group\n{sandbox.state.ungrouped_sims(1)[0]},{PILOT_GROUP}\n")
    with elsewhere.lock(f"group-{PILOT_GROUP}", "reconcile elsewhere", holder="other"):
        result = invoke(
            ["--store", pg_url, *base_args(tmp_path / "home", sandbox.base_url), "reconcile",
             str(desired), "--report-dir", str(tmp_path / "r")]
        )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "being driven by another lf-bulk process" in result.stderr
    elsewhere.close()


def test_runs_driven_at_once_in_one_process_hold_their_locks_on_their_own_stores(
    pg_url: str, tmp_path: Path
) -> None:
    import threading

    home = tmp_path / "home"  # one worker process, one home, two jobs in two threads
    second_open, first_locked, second_closed = (threading.Event() for _ in range(3))
    seen: list[bool] = []

    def first_job() -> None:
        with open_journal(pg_url, home) as journal:
            second_open.wait(10)  # the other job's store was bound after this one's
            with locking.exclusive(home, "run-A", "run A"):
                first_locked.set()
                second_closed.wait(10)
                journal.runs()
                # Still held: it was taken on this job's store, not the other's (now closed).
                seen.append(open_store(pg_url, tmp_path / "x").is_held("run-A"))

    thread = threading.Thread(target=first_job)
    thread.start()
    with open_journal(pg_url, home):
        second_open.set()
        first_locked.wait(10)
    second_closed.set()
    thread.join(10)
    assert seen == [True]


def test_each_store_keeps_the_locks_quota_and_journal_of_its_kind(store: Store) -> None:
    with store.lock("run-S", "run S"):
        assert store.is_held("run-S")
        store.check_locks()  # held, nothing lost
    assert not store.is_held("run-S")
    ledger = store.quota_ledger("acct", daily_quota=2, reserve=0)
    ledger.take()
    ledger.take()
    with pytest.raises(QuotaExhausted):
        ledger.take()
    ledger.close()
    with store.journal() as journal:
        assert journal.runs() == []


def test_a_config_file_may_name_the_store_without_a_password(pg_url: str, tmp_path: Path) -> None:
    with open_journal(pg_url, tmp_path / "elsewhere") as journal:
        journal.create_run(
            kind="sims", operation="ADD", group_id="GCONF", items=items(1), batch_size=1
        )
    config = tmp_path / "c.toml"
    config.write_text(f"store = {pg_url!r}\n".replace("'", '"'))
    os.chmod(config, 0o600)
    result = invoke(["--config", str(config), "--home", str(tmp_path / "home"), "runs", "list"])
    assert result.exit_code == 0, result.output
    assert "GCONF" in result.stdout
