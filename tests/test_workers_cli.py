"""`lf-bulk enqueue`, `partners`, `jobs`, `worker --init` and the pieces under them (issue #16):
checks that run before anything is queued, the partners table and the credential rules."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from lf_bulk.errors import ConfigError, InvalidSetting, QuotaExhausted, RunLocked, RunStopped
from lf_bulk.sandbox.seed import PILOT_GROUP
from lf_bulk.settings import Settings
from lf_bulk.sources import read_iccids
from lf_bulk.workers import partners
from lf_bulk.workers.spec import JobCommand, JobSpec, partner_lock

from clihelp import expect, invoke, write_list

VALID = ["89852420180910300011", "89852420180910300029", "89852420180910300037"]


@pytest.fixture
def store(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("LF_BULK_STORE", pg_url)
    return pg_url


def cli(home: Path, *args: str) -> list[str]:
    return ["--home", str(home), "--no-progress", *args]


def queued(store: str) -> int:
    with psycopg.connect(store) as db:
        found = db.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
        if found is None or found[0] is None:
            return 0
        row = db.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()
    return int(row[0]) if row else 0


def add_partner(home: Path) -> None:
    expect(invoke(cli(home, "partners", "add", "acme", "--env", "uat",
                      "--base-url", "http://127.0.0.1:9")), 0)  # fmt: skip


# ---------------------------------------------------------------- the spec of a job


def test_a_spec_travels_as_json_and_gives_back_the_rows_as_read(tmp_path: Path) -> None:
    path = tmp_path / "l.csv"
    path.write_text("iccid\n" + "\n".join([*VALID, "123", VALID[0]]) + "\n")
    table = read_iccids(path)
    spec = JobSpec.of(JobCommand.ADD, "acme", "r1", table, {"group": "G1"})

    back = JobSpec.from_json(json.loads(json.dumps(spec.to_json())))

    assert back == spec
    rows = back.table().rows
    assert [(r.row, r.raw, r.reason) for r in rows] == [
        (r.row, r.raw, r.reason) for r in table.rows
    ]
    assert back.table().counts == table.counts


def test_the_queueing_lock_ignores_the_run_id_but_not_the_input(tmp_path: Path) -> None:
    table = read_iccids(write_list(tmp_path / "a.csv", VALID))
    other = read_iccids(write_list(tmp_path / "b.csv", VALID[:2]))
    first = JobSpec.of(JobCommand.ADD, "acme", "r1", table, {"group": "G1"})
    again = JobSpec.of(JobCommand.ADD, "acme", "r2", table, {"group": "G1"})
    smaller = JobSpec.of(JobCommand.ADD, "acme", "r3", other, {"group": "G1"})
    removal = JobSpec.of(JobCommand.REMOVE, "acme", "r4", table, {"group": "G1"})

    assert first.queueing_lock() == again.queueing_lock()
    assert len({first.queueing_lock(), smaller.queueing_lock(), removal.queueing_lock()}) == 3
    assert partner_lock("acme") != partner_lock("acme2")


def test_a_spec_of_another_version_is_refused() -> None:
    with pytest.raises(InvalidSetting, match="spec version"):
        JobSpec.from_json({"version": 99})


# ---------------------------------------------------------------- retries of a job


def test_a_job_stopped_by_the_quota_waits_for_the_next_utc_day() -> None:
    from lf_bulk.workers.app import LOCKED_ATTEMPTS, QUOTA_MARGIN, QUOTA_WAIT_PRIORITY, JobRetries

    class Job:
        attempts = 0

    midnight = datetime(2026, 11, 30, tzinfo=UTC)
    stop = QuotaExhausted("spent", resets_at=midnight, source="ledger")
    decision = JobRetries().get_retry_decision(exception=stop, job=Job())  # type: ignore[arg-type]
    assert decision is not None and decision.retry_at == midnight + QUOTA_MARGIN
    assert decision.priority == QUOTA_WAIT_PRIORITY < 0

    locked = JobRetries().get_retry_decision(exception=RunLocked("busy"), job=Job())  # type: ignore[arg-type]
    assert locked is not None and locked.retry_at is not None
    Job.attempts = LOCKED_ATTEMPTS
    assert JobRetries().get_retry_decision(exception=RunLocked("busy"), job=Job()) is None  # type: ignore[arg-type]
    assert JobRetries().get_retry_decision(exception=RunStopped("gone"), job=Job()) is None  # type: ignore[arg-type]


# ---------------------------------------------------------------- partner codes


def test_the_partner_code_comes_from_the_environment_first(tmp_path: Path) -> None:
    env = {"LF_BULK_PARTNER_CODE_ACME_EU": "code-from-env"}
    assert partners.partner_code("acme-eu", tmp_path, env) == "code-from-env"


def test_the_partner_code_comes_from_a_private_credentials_file(tmp_path: Path) -> None:
    path = tmp_path / partners.CREDENTIALS_FILE
    path.write_text('[partner_codes]\nacme = "code-from-file"\n')
    path.chmod(0o600)
    assert partners.partner_code("acme", tmp_path, {}) == "code-from-file"

    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        partners.partner_code("acme", tmp_path, {})


def test_a_missing_partner_code_says_where_to_put_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="LF_BULK_PARTNER_CODE_ACME") as caught:
        partners.partner_code("acme", tmp_path, {})
    assert "credentials.toml" in str(caught.value)


def test_a_partner_url_with_a_password_or_the_embedded_sandbox_is_refused() -> None:
    with pytest.raises(InvalidSetting, match="password") as caught:
        partners.Partner("acme", "uat", "https://user:secret@api.example")
    assert "secret" not in str(caught.value)
    with pytest.raises(InvalidSetting, match="cannot be shared"):
        partners.Partner("acme", "sandbox")


def test_partner_settings_override_the_workers_and_keep_its_home(tmp_path: Path) -> None:
    partner = partners.Partner("acme", "uat", "http://127.0.0.1:9", daily_quota=900,
                               quota_reserve=50)  # fmt: skip
    settings = partner.settings(Settings(home=tmp_path, rate_per_second=4.0), "the-code")
    assert (settings.env, settings.base_url, settings.partner_code) == (
        "uat", "http://127.0.0.1:9", "the-code",
    )  # fmt: skip
    assert (settings.daily_quota, settings.quota_reserve) == (900, 50)
    assert (settings.home, settings.rate_per_second) == (tmp_path, 4.0)
    assert "the-code" not in repr(settings)


# ---------------------------------------------------------------- the commands


def test_without_a_postgresql_store_the_worker_commands_say_what_to_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LF_BULK_STORE", raising=False)
    done = expect(invoke(cli(tmp_path, "partners", "list")), 2)
    assert "--store postgresql://" in done.stderr


def test_partners_add_list_remove(store: str, tmp_path: Path) -> None:
    add_partner(tmp_path)
    listed = expect(invoke(cli(tmp_path, "partners", "list")), 0)
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["name"] == "acme" and row["daily_quota"] == 5_000
    with psycopg.connect(store) as db:
        columns = {r[0] for r in db.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'partners'"
        )}  # fmt: skip
    assert not any("code" in column for column in columns)  # the credential is never stored
    expect(invoke(cli(tmp_path, "partners", "remove", "acme")), 0)
    assert expect(invoke(cli(tmp_path, "partners", "list", "--names")), 0).stdout == ""
    expect(invoke(cli(tmp_path, "partners", "remove", "acme")), 2)


def test_enqueue_queues_a_job_with_its_rows_and_refuses_a_duplicate_trigger(
    store: str, tmp_path: Path
) -> None:
    add_partner(tmp_path)
    file = write_list(tmp_path / "l.csv", VALID)
    args = cli(tmp_path, "enqueue", "--partner", "acme", "sims", "add", PILOT_GROUP, str(file))

    job = int(expect(invoke(args), 0).stdout.strip())
    file.unlink()  # the rows travel with the job: the worker needs no file

    with psycopg.connect(store) as db:
        (lock, spec) = db.execute(
            "SELECT lock, args->'spec' FROM procrastinate_jobs WHERE id = %s", (job,)
        ).fetchone()  # type: ignore[misc]
    assert lock == "lf-bulk partner acme"
    assert [row[2] for row in JobSpec.from_json(spec).rows] == VALID

    write_list(tmp_path / "l.csv", VALID)
    again = expect(invoke(args), 2)
    assert "waiting in the queue already" in again.stderr
    assert queued(store) == 1
    listed = expect(invoke(cli(tmp_path, "jobs", "list")), 0)
    assert json.loads(listed.stdout.splitlines()[0])["status"] == "todo"


def test_enqueue_checks_the_file_now_and_queues_nothing_on_a_bad_row(
    store: str, tmp_path: Path
) -> None:
    add_partner(tmp_path)
    file = write_list(tmp_path / "l.csv", [*VALID, "89852420180910300046"])
    reports = tmp_path / "refused"
    done = expect(invoke(cli(tmp_path, "enqueue", "--partner", "acme", "sims", "add",
                             PILOT_GROUP, str(file))), 2)  # fmt: skip
    assert "bad_checksum" in done.stderr or "invalid" in done.stderr
    assert queued(store) == 0
    assert not reports.exists()


def test_enqueue_for_an_unknown_partner_queues_nothing(store: str, tmp_path: Path) -> None:
    file = write_list(tmp_path / "l.csv", VALID)
    done = expect(invoke(cli(tmp_path, "enqueue", "--partner", "nobody", "sims", "add",
                             PILOT_GROUP, str(file))), 2)  # fmt: skip
    assert "no partner named 'nobody'" in done.stderr
    assert queued(store) == 0


def test_worker_init_creates_the_job_tables_once(store: str, tmp_path: Path) -> None:
    assert "created" in expect(invoke(cli(tmp_path, "worker", "--init")), 0).stderr
    assert "present already" in expect(invoke(cli(tmp_path, "worker", "--init")), 0).stderr


def test_help_of_the_worker_commands_loads_neither_procrastinate_nor_psycopg() -> None:
    probe = (
        "import sys\nfrom jobs.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules}), file=sys.stderr)"
    )
    for args in (["--help"], ["enqueue", "--help"], ["worker", "--help"]):
        done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        loaded = done.stderr.splitlines()[-1]
        assert "'procrastinate'" not in loaded and "'psycopg'" not in loaded, args


def job_spec(store: str, job: int) -> JobSpec:
    with psycopg.connect(store) as db:
        row = db.execute("SELECT args->'spec' FROM procrastinate_jobs WHERE id = %s", (job,))
        (spec,) = row.fetchone()  # type: ignore[misc]
    return JobSpec.from_json(spec)


def test_enqueue_reconcile_records_apply_only_when_typed(store: str, tmp_path: Path) -> None:
    add_partner(tmp_path)
    desired = tmp_path / "desired.csv"
    desired.write_text("iccid,group\n" + "".join(f"{i},{PILOT_GROUP}\n" for i in VALID))
    base = cli(tmp_path, "enqueue", "--partner", "acme", "reconcile", str(desired))

    applied = int(expect(invoke([*base, "--apply", "--max-changes", "10"]), 0).stdout)
    looked = int(expect(invoke([*base, "--max-removal-ratio", "0.05"]), 0).stdout)

    assert job_spec(store, applied).options["apply"] is True
    assert job_spec(store, applied).options["max_changes"] == 10
    assert job_spec(store, looked).options["apply"] is False
    assert job_spec(store, applied).command is JobCommand.RECONCILE


@pytest.mark.parametrize(
    "extra", [["--dry-run"], ["--no-wait"], ["--report-dir", "elsewhere"], ["--timeout", "5"]]
)
def test_enqueue_refuses_what_a_worker_cannot_do(
    store: str, tmp_path: Path, extra: list[str]
) -> None:
    file = write_list(tmp_path / "l.csv", VALID)
    done = expect(invoke(cli(tmp_path, "enqueue", "--partner", "acme", "sims", "remove",
                             PILOT_GROUP, str(file), *extra)), 2)  # fmt: skip
    assert f"enqueue takes no {extra[0]}" in done.stderr
    assert queued(store) == 0


def test_enqueue_status_of_groups_leaves_the_members_to_the_worker(
    store: str, tmp_path: Path
) -> None:
    add_partner(tmp_path)
    job = int(expect(invoke(cli(tmp_path, "enqueue", "--partner", "acme", "sims", "status",
                                "--group", PILOT_GROUP)), 0).stdout)  # fmt: skip
    spec = job_spec(store, job)
    assert spec.command is JobCommand.STATUS
    assert spec.options["groups"] == [PILOT_GROUP] and spec.rows == ()
    done = expect(invoke(cli(tmp_path, "enqueue", "--partner", "acme", "sims", "status")), 2)
    assert "give one of FILE" in done.stderr


def test_a_job_waiting_for_tomorrows_quota_holds_back_no_later_job_of_its_partner(
    store: str,
) -> None:
    from lf_bulk.workers.app import QUOTA_WAIT_PRIORITY, ensure_schema

    ensure_schema(store)
    lock = partner_lock("acme")
    with psycopg.connect(store, autocommit=True) as db:
        insert = (
            "INSERT INTO procrastinate_jobs (queue_name, task_name, lock, args, priority, "
            "scheduled_at) VALUES ('default', 'lf_bulk.run_command', %s, '{}', %s, %s) "
            "RETURNING id"
        )
        tomorrow = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
        waiting = db.execute(insert, (lock, QUOTA_WAIT_PRIORITY, tomorrow)).fetchone()
        later = db.execute(insert, (lock, 0, None)).fetchone()
        worker = db.execute(
            "INSERT INTO procrastinate_workers DEFAULT VALUES RETURNING id"
        ).fetchone()
        assert waiting and later and worker
        fetched = db.execute(
            "SELECT id FROM procrastinate_fetch_job_v2(NULL, %s)", (worker[0],)
        ).fetchone()
    assert fetched is not None and fetched[0] == later[0]


def test_procrastinates_log_lines_never_carry_a_jobs_iccids() -> None:
    import logging

    from lf_bulk.workers.app import TASK_NAME, HideJobArguments

    call = f"{TASK_NAME}[7](spec={{'rows': [[2, '{VALID[0]}', 'x)', None, {{}}]]}})"
    lines = [
        f"Starting job {call}",
        f"Job {call} ended with status: Error, lasted 0.1 s",
        f"Waiting for job to finish: worker: {call} (started 3.000 s ago)",
    ]
    for line in lines:
        record = logging.LogRecord("procrastinate.worker", logging.ERROR, "", 0, line, None, None)
        record.job = {"id": 7, "task_kwargs": {"spec": VALID}, "call_string": call}
        HideJobArguments().filter(record)
        assert VALID[0] not in record.getMessage()
        assert f"{TASK_NAME}[7]" in record.getMessage()
        assert VALID[0] not in repr(record.job)


def test_without_the_workers_extra_the_commands_say_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setenv("LF_BULK_STORE", "postgresql://lfbulk@db.internal/lfbulk")
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "procrastinate" else real(name, *a),
    )
    done = expect(invoke(cli(tmp_path, "worker")), 2)
    assert "pip install 'lf-bulk[workers]'" in done.stderr


def test_partners_add_checks_the_urls_as_a_job_would(store: str, tmp_path: Path) -> None:
    done = expect(invoke(cli(tmp_path, "partners", "add", "acme", "--env", "uat",
                             "--base-url", "http://api.example.com")), 1)  # fmt: skip
    assert "http://api.example.com" in done.stderr
    assert expect(invoke(cli(tmp_path, "partners", "list", "--names")), 0).stdout == ""


def test_enqueue_without_a_partner_says_so(store: str, tmp_path: Path) -> None:
    file = write_list(tmp_path / "l.csv", VALID)
    done = expect(invoke(cli(tmp_path, "enqueue", "sims", "add", PILOT_GROUP, str(file))), 2)
    assert "enqueue needs --partner NAME" in done.stderr
    assert queued(store) == 0
